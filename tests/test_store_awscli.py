"""The S3 layout is plain: ``aws s3 cp --recursive`` downloads what S3Store uploaded, byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.store import open_store
from app.store.config import StoreConfig


def test_aws_cli_downloads_what_we_uploaded(
    s3_bucket: str, s3_store_config: StoreConfig, s3_server: str, tmp_path: Path
) -> None:
    store = open_store(f"s3://{s3_bucket}/runs/exp1", s3_store_config)
    files = {
        "step-00000100/model.safetensors": os.urandom(6 * 1024 * 1024 + 7),  # multipart (5 MiB parts)
        "step-00000100/trainer_state.json": b'{"step": 100}',
        "step-00000100/manifest.json": b'{"files": []}',
        "tags/best": b"step-00000100",
    }
    for key, data in files.items():
        src = tmp_path / "src" / key
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(data)
        store.upload_file(src, key)
    dest = tmp_path / "copy"
    aws = Path(sys.executable).with_name("aws")
    result = subprocess.run(
        [str(aws), "s3", "cp", "--recursive", "--only-show-errors", "--endpoint-url", s3_server,
         f"s3://{s3_bucket}/runs/exp1", str(dest)],
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    got = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert got == files
