"""URI parsing: each accepted form picks the right backend; each bad URI is a one-line ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import EXIT_USAGE, ConfigError
from app.store import open_store
from app.store.local import LocalStore
from app.store.registry import parse_uri


def test_folder_forms_open_a_local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for uri, root in [
        (str(tmp_path / "a"), tmp_path / "a"),
        ("rel/ckpts", tmp_path / "rel" / "ckpts"),
        (f"file://{tmp_path}/b", tmp_path / "b"),
        (f"file://localhost{tmp_path}/c%20d", tmp_path / "c d"),
    ]:
        store = open_store(uri)
        assert isinstance(store, LocalStore)
        assert store.root == root
        assert store.uri == uri
        assert store.is_local


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [
        ("s3://my-bucket", "my-bucket", ""),
        ("s3://my-bucket/", "my-bucket", ""),
        ("s3://my.bucket/runs/exp1/", "my.bucket", "runs/exp1"),
        ("oss://abc/x", "abc", "x"),
    ],
)
def test_remote_uris_parse(uri: str, bucket: str, prefix: str) -> None:
    parsed = parse_uri(uri)
    assert (parsed.bucket, parsed.prefix) == (bucket, prefix)
    assert parsed.scheme == uri.split(":")[0]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("gs://bucket/x", "unsupported scheme 'gs://'"),
        ("s3://", "no bucket name"),
        ("oss:///prefix", "no bucket name"),
        ("s3://ab/x", "'ab' must be 3 to 63 characters"),
        ("s3://" + "a" * 64, "must be 3 to 63 characters"),
        ("s3://My_Bucket/x", "may contain only lowercase letters"),
        ("s3://-bucket/x", "must start and end with a letter or digit"),
        ("s3://bucket/a/../b", "may not contain '.', '..'"),
        ("s3:/bucket/x", "malformed or unsupported scheme 's3:'"),
        ("file://host/x", "file:// URIs name no host"),
        ("", "empty"),
    ],
)
def test_bad_uris_are_config_errors(uri: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_store(uri)
    line = str(info.value)
    assert expected in line
    assert repr(uri) in line  # the message names the URI
    assert "s3://bucket/prefix" in line  # ... and what to write instead
    assert "\n" not in line
    assert info.value.exit_code == EXIT_USAGE
