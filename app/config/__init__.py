"""Configuration: typed dataclasses and the YAML/env/--set loader."""

from app.config.load import ENV_VARS, config_hash, config_to_yaml, load_config
from app.config.schema import Config

__all__ = ["Config", "ENV_VARS", "load_config", "config_hash", "config_to_yaml"]
