"""Subcommands of the ``warmstart`` CLI, one module each; every module exposes ``register(subparsers)``."""
