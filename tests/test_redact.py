"""Credentials in URLs never reach a log, an error line, a printed config or a checkpoint (issue #13 item 7).

The end-to-end tests train against a real moto_server with ``store.endpoint_url=http://admin:<secret>@...``
and then search every byte written (stdout, stderr, every file of the run folder, every object of the
checkpoint) for the secret.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
from pathlib import Path

import pytest

from app.checkpoint.lineage import with_lineage
from app.config import config_hash, load_config
from app.errors import StorageError
from app.redact import RedactingFormatter, has_credentials, redact_data, redact_text
from tests.conftest import s3_client
from tests.train_helpers import ROOT, VENV_BIN, clean_env

SECRET = "Zq9s3cretPW"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://admin:pass@127.0.0.1:9000", "http://***@127.0.0.1:9000"),
        ("https://user@host/path", "https://***@host/path"),
        ("http://a:p@ss@host:1/b", "http://***@host:1/b"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
        ("http://host/p?a=1&b=2", "http://host/p?a=1&b=2"),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA%2F1&X-Amz-Signature=ab12"
            "&X-Amz-Security-Token=tok",
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=***&X-Amz-Signature=***"
            "&X-Amz-Security-Token=***",
        ),
        (
            "oss://b/k?OSSAccessKeyId=AK&Expires=1&Signature=zz",
            "oss://b/k?OSSAccessKeyId=***&Expires=1&Signature=***",
        ),
        ("https://h/x?sig=1;key=2#frag", "https://h/x?sig=***;key=***#frag"),
        (
            "https://h/x?ACCESS_TOKEN=1&client_secret=2&Password=3",
            "https://h/x?ACCESS_TOKEN=***&client_secret=***&Password=***",
        ),
        (
            'Could not connect to the endpoint URL: "http://admin:pw@127.0.0.1:1/bkt?list-type=2"',
            'Could not connect to the endpoint URL: "http://***@127.0.0.1:1/bkt?list-type=2"',
        ),
        ("Invalid endpoint: admin:pw@host:9000", "Invalid endpoint: ***@host:9000"),
        ("no url at 12:03:04, mail me@example.com", "no url at 12:03:04, mail me@example.com"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_text(expected) == expected  # idempotent
    assert has_credentials(text) == (text != expected)


def test_errors_logs_and_lineage_are_redacted() -> None:
    err = StorageError(f"cannot reach http://admin:{SECRET}@h:1/b", hint=f"see https://h/?token={SECRET}")
    assert SECRET not in err.line() and SECRET not in str(err)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "endpoint %s", (f"http://u:{SECRET}@h",), None)
    assert SECRET not in RedactingFormatter("%(message)s").format(record)
    meta = with_lineage({"config": {"store": {"endpoint_url": f"http://u:{SECRET}@h"}}, "parent": None}, 3)
    assert SECRET not in json.dumps(meta)
    assert redact_data({"a": [f"http://u:{SECRET}@h", 1]}) == {"a": ["http://***@h", 1]}


def test_installed_redaction_covers_handlers_added_later_and_tracebacks() -> None:
    import io

    from app import redact

    redact.install()  # what the CLI does at start-up
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    lib = logging.getLogger("a_library_added_after_start")
    lib.addHandler(handler)
    lib.propagate = False
    try:
        lib.warning("connecting to %s", f"http://u:{SECRET}@h:1")
        try:
            raise ValueError(f"http://u:{SECRET}@h:1")
        except ValueError:
            lib.exception("failed")
    finally:
        lib.removeHandler(handler)
    assert "http://***@h:1" in stream.getvalue() and "Traceback" in stream.getvalue()
    assert SECRET not in stream.getvalue()


def test_uncaught_errors_in_threads_are_redacted(capsys, monkeypatch) -> None:
    import threading

    from app import redact

    monkeypatch.setattr(threading, "excepthook", threading.excepthook)  # restored after the test
    monkeypatch.setattr("sys.excepthook", __import__("sys").excepthook)
    redact.install()

    def fail() -> None:
        raise RuntimeError(f"cannot reach http://u:{SECRET}@h:1")

    worker = threading.Thread(target=fail)
    worker.start()
    worker.join()
    err = capsys.readouterr().err
    assert "RuntimeError: cannot reach http://***@h:1" in err and SECRET not in err


def test_config_hash_does_not_depend_on_the_password() -> None:
    one = load_config(None, [f"store.endpoint_url=http://admin:{SECRET}@127.0.0.1:9000"], env={})
    two = load_config(None, ["store.endpoint_url=http://admin:other@127.0.0.1:9000"], env={})
    assert config_hash(one) == config_hash(two)
    assert one.store.endpoint_url.endswith(f"{SECRET}@127.0.0.1:9000")  # still used to connect


def _warmstart(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = clean_env(PYTHONPATH=str(ROOT))
    return subprocess.run(
        [str(VENV_BIN / "warmstart"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def _sets(run_dir: Path, endpoint: str, uri: str, **extra: object) -> list[str]:
    values = {
        "run.dir": str(run_dir),
        "checkpoint.uri": uri,
        "store.endpoint_url": endpoint,
        "store.addressing_style": "path",
        "store.region": "us-east-1",
        "schedule.total_steps": 20,
        "schedule.warmup.steps": 4,
        "checkpoint.every_steps": 10,
        "train.batch_size": 16,
        "train.log_every_steps": 5,
        "train.progress_bar": "off",
        "task.options.width": 4,
        "run.notes": f"mirror at http://reader:{SECRET}@example.com/data",
        "run.data_source": f"https://b.s3.amazonaws.com/d.tar?X-Amz-Signature={SECRET}&X-Amz-Expires=60",
        **extra,
    }
    out: list[str] = []
    for key, value in values.items():
        out += ["--set", f"{key}={value}"]
    return out


def _files_with_secret(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


def test_credentials_in_the_endpoint_never_reach_output_or_checkpoints(tmp_path, s3_server, s3_bucket):
    endpoint = s3_server.replace("http://", f"http://admin:{SECRET}@")
    uri = f"s3://{s3_bucket}/job"
    run_dir = tmp_path / "run"
    sets = _sets(run_dir, endpoint, uri)
    train = _warmstart(["train", "-c", "configs/demo.yaml", *sets], ROOT)
    assert train.returncode == 0, train.stderr[-2000:]
    assert train.stderr.count("put them in the environment") == 1  # warned, once, naming the fields
    assert "run.notes, run.data_source, store.endpoint_url: credentials in a URL" in train.stderr
    printed = [
        _warmstart(["config", "-c", "configs/demo.yaml", *sets, *flag], ROOT) for flag in ([], ["--json"])
    ]
    assert all(p.returncode == 0 for p in printed)
    assert "http://***@127.0.0.1" in printed[0].stdout
    assert json.loads(printed[1].stdout)["store"]["endpoint_url"].startswith("http://***@127.0.0.1")

    client = s3_client(s3_server)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="job/")["Contents"]]
    assert "job/step-00000020/meta.json" in keys
    objects = {key: client.get_object(Bucket=s3_bucket, Key=key)["Body"].read() for key in keys}
    meta = json.loads(objects["job/step-00000020/meta.json"])
    assert meta["config"]["store"]["endpoint_url"].startswith("http://***@127.0.0.1")
    assert meta["data_source"].startswith("https://b.s3.amazonaws.com/d.tar?X-Amz-Signature=***")
    assert meta["parent"] is None or SECRET not in meta["parent"]

    assert [k for k, body in objects.items() if SECRET.encode() in body] == []
    assert _files_with_secret(run_dir) == []
    for proc in (train, *printed):
        assert SECRET not in proc.stdout and SECRET not in proc.stderr
    assert (run_dir / "log.jsonl").exists()


def test_the_error_line_of_an_unreachable_endpoint_is_redacted(tmp_path):
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://admin:{SECRET}@127.0.0.1:{port}"
    run_dir = tmp_path / "run"
    sets = _sets(run_dir, endpoint, "s3://no-server/job", **{"store.max_attempts": 1})
    proc = _warmstart(["train", "-c", "configs/demo.yaml", *sets], ROOT)
    assert proc.returncode == 3, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("warmstart: storage: ") and f"http://***@127.0.0.1:{port}" in last
    assert "Traceback" not in proc.stderr
    assert SECRET not in proc.stderr and SECRET not in proc.stdout
    assert _files_with_secret(run_dir) == []
