"""The bad-input corpus: every case gets exactly one ``warmstart: <kind>: ...`` line on stderr, its
documented exit code, no traceback — and nothing in the existing run (a committed checkpoint root, the
config and weight files) is deleted or overwritten (every file's sha256 compared before and after).

Cases marked ``sub`` run the real ``warmstart`` executable in a subprocess; the others call
``app.cli.main`` in this process (the same code path, minus process start-up).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.cli import main
from tests.conftest import start_moto_server, stop_process
from tests.faults.harness import ROOT, VENV_BIN, clean_env, record, reference, tree_digest

KIND = {2: "config", 3: "storage", 4: "checkpoint", 5: "task"}


@dataclass
class Case:
    id: str
    argv: list[str]
    code: int
    text: str
    sub: bool = False
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # written into the case folder first
    unreadable: str = ""  # a file of the case folder made mode 000


def _files() -> dict[str, bytes]:
    pickled = b"\x80\x04\x95" + b"\0" * 40
    return {
        "huge.safetensors": struct.pack("<Q", 1 << 40) + b"{}",
        "pickle.safetensors": pickled,
        "garbage.safetensors": struct.pack("<Q", 4) + b"\xff\xfe{[",
        "short.safetensors": b"\x01\x02",
        "w.pdparams": pickled,
    }


def _cases() -> list[Case]:
    T = [
        "train",
        "-c",
        "{victim}/ok.yaml",
        "--set",
        "run.dir={case}/run",
        "--set",
        "checkpoint.uri={case}/ck",
    ]
    C = ["config", "-c", "{victim}/ok.yaml", "--print"]
    TV = ["train", "-c", "{victim}/ok.yaml", "--set", "run.dir={case}/run"]  # resumes the victim: must not

    def s(*kv: str) -> list[str]:
        return [a for x in kv for a in ("--set", x)]

    def yaml_case(id_: str, content: bytes, text: str, sub: bool = False) -> Case:
        return Case(
            id_, ["config", "-c", "{case}/bad.yaml", "--print"], 2, text, sub, files={"bad.yaml": content}
        )

    return [
        yaml_case("yaml-unclosed", b"run: {name: x\n", "bad.yaml", sub=True),
        yaml_case("yaml-top-level-list", b"- a\n- b\n", "bad.yaml", sub=True),
        yaml_case("yaml-tab-indent", b"run:\n\tname: x\n", "found character '\\t'"),
        yaml_case("yaml-binary", b"\xff\xfe\x00\x01garbage", "is not UTF-8 text", sub=True),
        yaml_case("yaml-unknown-top-key", b"bogus: 1\n", "bogus: unknown key"),
        Case("unknown-nested-key", C + s("schedule.warmup.stpes=3"), 2, "did you mean 'steps'?", sub=True),
        Case("base-lr-string", T + s("schedule.base_lr=abc"), 2, "schedule.base_lr"),
        Case("batch-float", C + s("train.batch_size=1.5"), 2, "train.batch_size", sub=True),
        Case("total-steps-negative", T + s("schedule.total_steps=-5"), 2, "schedule.total_steps", sub=True),
        Case("total-steps-zero", C + s("schedule.total_steps=0"), 2, "schedule.total_steps", sub=True),
        Case("warmup-ge-total", T + s("schedule.warmup.steps=300"), 2, "warmup", sub=True),
        Case("base-lr-negative", C + s("schedule.base_lr=-0.1"), 2, "schedule.base_lr"),
        Case("optimizer-unknown", C + s("optim.name=adamx"), 2, "optim.name", sub=True),
        Case("uri-gs-scheme", T + s("checkpoint.uri=gs://b/x"), 2, "gs://b/x"),
        Case("uri-s3-no-bucket", T + s("checkpoint.uri=s3://"), 2, "s3://"),
        Case("set-without-equals", C + ["--set", "schedule.base_lr"], 2, "schedule.base_lr"),
        Case("set-unknown-section", C + s("bogus.x=1"), 2, "bogus", sub=True),
        Case("config-missing", ["config", "-c", "{case}/nope.yaml", "--print"], 2, "does not exist", sub=True),
        Case("config-unreadable", ["config", "-c", "{case}/bad.yaml", "--print"], 2, "bad.yaml", sub=True,
             files={"bad.yaml": b"run: {name: x}\n"}, unreadable="bad.yaml"),
        Case("config-dangling-symlink", ["config", "-c", "{case}/link.yaml", "--print"], 2, "link.yaml"),
        Case("config-path-through-a-file", ["config", "-c", "{case}/w.pdparams/x.yaml", "--print"], 2, "x.yaml",
             files=_files()),
        Case("init-from-unreadable", T + s("init.from={case}/garbage.safetensors"), 4, "garbage.safetensors",
             files=_files(), unreadable="garbage.safetensors"),
        Case("config-is-a-folder", ["config", "-c", "{case}", "--print"], 2, "{case}", sub=True),
        Case("batch-zero", C + s("train.batch_size=0"), 2, "train.batch_size"),
        Case("grad-accum-zero", C + s("train.grad_accum_steps=0"), 2, "train.grad_accum_steps"),
        Case("env-var-not-a-number", C, 2, "schedule.total_steps", sub=True, env={"WARMSTART_TOTAL_STEPS": "abc"}),
        Case("warmup-kind-unknown", C + s("schedule.warmup.kind=bogus"), 2, "schedule.warmup.kind"),
        Case("decay-kind-unknown", C + s("schedule.decay.kind=bogus"), 2, "schedule.decay.kind"),
        Case("keep-last-negative", C + s("checkpoint.keep_last=-1"), 2, "checkpoint.keep_last", sub=True),
        Case("secret-in-config", C + s("store.aws_secret_access_key=SECRETVALUE123"), 2, "unknown key", sub=True),
        Case("piecewise-mismatch", C + s("schedule.decay.kind=piecewise"), 2, "piecewise"),
        Case("init-mode-unknown", C + s("init.mode=bogus"), 2, "init.mode"),
        Case("min-fraction-above-1", C + s("init.min_loaded_fraction=2"), 2, "init.min_loaded_fraction"),
        Case("spot-provider-unknown", C + s("preempt.spot.provider=bogus"), 2, "preempt.spot.provider"),
        Case("seed-not-int", C + s("run.seed=x"), 2, "run.seed", sub=True),
        Case("every-steps-zero", C + s("checkpoint.every_steps=0"), 2, "checkpoint.every_steps"),
        Case("missing-bucket-train", T + s("checkpoint.uri=s3://no-such-bucket-ws/run"), 3, "no-such-bucket-ws", env={"S3": "1"}),
        Case("missing-bucket-ls", ["ckpt", "ls", "s3://no-such-bucket-ws/run"], 3, "does not exist", env={"S3": "1"}),
        Case("wrong-credentials-train", T + s("checkpoint.uri=s3://auth-bucket/run"), 3, "InvalidAccessKeyId", env={"AUTH": "1"}),
        Case("wrong-credentials-ls", ["ckpt", "ls", "s3://auth-bucket/run"], 3, "access denied", env={"AUTH": "1"}),
        Case("unreachable-endpoint", T + s("checkpoint.uri=s3://bucket-x/run", "store.endpoint_url=http://127.0.0.1:9",
             "store.max_attempts=2", "store.backoff_base_s=0.01", "store.connect_timeout_s=0.5"), 3, "still failing after 2 attempts"),
        Case("checkpoint-uri-under-a-file", TV + s("checkpoint.uri={victim}/ok.yaml/ckpts"), 3, "ok.yaml"),
        Case("init-from-missing", T + s("init.from={case}/nope"), 4, "nope"),
        Case("init-from-huge-header", T + s("init.from={case}/huge.safetensors"), 4, "100 MiB cap", files=_files()),
        Case("init-from-pickle-named-safetensors", T + s("init.from={case}/pickle.safetensors"), 4, "refusing to unpickle", sub=True, files=_files()),
        Case("init-from-pdparams-without-opt-in", T + s("init.from={case}/w.pdparams"), 4, "--allow-pickle", files=_files()),
        Case("init-from-garbage-header", T + s("init.from={case}/garbage.safetensors"), 4, "garbage header", files=_files()),
        Case("init-from-too-short", T + s("init.from={case}/short.safetensors"), 4, "too short", files=_files()),
        Case("init-from-empty-folder", T + s("init.from={case}"), 4, "no committed checkpoint"),
        Case("init-from-unknown-tag", T + s("init.from={victim}/ckpts#nope"), 4, "no tag 'nope'"),
        Case("verify-empty-folder", ["ckpt", "verify", "{case}"], 4, "no committed checkpoint"),
        Case("show-step-not-committed", ["ckpt", "show", "{victim}/ckpts", "--step", "999"], 4, "step 999"),
        Case("import-without-allow-pickle", ["ckpt", "import", "{case}/w.pdparams", "{victim}/ckpts"], 4, "--allow-pickle", sub=True, files=_files()),
        Case("promote-path-like-tag", ["ckpt", "promote", "{victim}/ckpts", "--tag", "../../x"], 2, "--tag: invalid tag name"),
        Case("resume-other-architecture", TV + s("task.options.width=8"), 4, "shape", sub=True),
    ]  # fmt: skip


CASES = _cases()


@pytest.fixture(scope="module")
def victim(tmp_path_factory) -> Path:
    """An existing run: a committed checkpoint root (steps 35 and 40) and its config."""
    folder = tmp_path_factory.mktemp("victim")
    for step in (35, 40):
        shutil.copytree(reference() / f"step-{step:08d}", folder / "ckpts" / f"step-{step:08d}")
    text = (ROOT / "configs/demo.yaml").read_text()
    text = text.replace("batch_size: 32", "batch_size: 16").replace(
        "  options:\n", "  options:\n    width: 4\n"
    )
    (folder / "ok.yaml").write_text(
        text.replace("checkpoint:\n", f"checkpoint:\n  uri: {folder / 'ckpts'}\n")
    )
    return folder


@pytest.fixture(scope="module")
def servers(s3_server):
    proc, url = start_moto_server({"INITIAL_NO_AUTH_ACTION_COUNT": "1"})
    import boto3

    boto3.session.Session().client("s3", endpoint_url=url, region_name="us-east-1",
                                   aws_access_key_id="boot", aws_secret_access_key="boot").create_bucket(Bucket="auth-bucket")  # fmt: skip
    yield {"S3": s3_server, "AUTH": url}
    stop_process(proc)


_SEEN: dict[str, int] = {}
_SKIPPED: set[str] = set()


def _env_for(case: Case, servers: dict) -> dict[str, str]:
    env: dict[str, str] = {k: v for k, v in case.env.items() if k not in ("S3", "AUTH")}
    for key in ("S3", "AUTH"):
        if key in case.env:
            env.update(WARMSTART_S3_ENDPOINT_URL=servers[key], WARMSTART_S3_ADDRESSING_STYLE="path")
    if "AUTH" in case.env:
        env.update(AWS_ACCESS_KEY_ID="AKIANOTAREALKEY00000", AWS_SECRET_ACCESS_KEY="nope")
        env["AWS_SESSION_TOKEN"] = ""
    return env


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_one_line_its_exit_code_and_touches_nothing(
    case, victim, servers, tmp_path, capsys, monkeypatch
):
    for name, data in case.files.items():
        (tmp_path / name).write_bytes(data)
    if case.id == "config-dangling-symlink":
        (tmp_path / "link.yaml").symlink_to(tmp_path / "gone.yaml")
    if case.unreadable:
        if os.geteuid() == 0:
            _SKIPPED.add(case.id)
            record("badinput", _figures())
            pytest.skip("running as root: file modes do not stop root from reading (run as a normal user)")
        (tmp_path / case.unreadable).chmod(0)
    argv = [a.replace("{victim}", str(victim)).replace("{case}", str(tmp_path)) for a in case.argv]
    text = case.text.replace("{case}", str(tmp_path))
    env = _env_for(case, servers)
    before = tree_digest(victim)
    if case.sub:
        full = {**clean_env(), **env}
        if full.get("AWS_SESSION_TOKEN") == "":
            del full["AWS_SESSION_TOKEN"]
        proc = subprocess.run([str(VENV_BIN / "warmstart"), *argv], cwd=tmp_path, env=full,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        rc, err = proc.returncode, proc.stderr
    else:
        for key in [k for k in os.environ if k.startswith("WARMSTART_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            if value == "":
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)
        monkeypatch.chdir(tmp_path)
        rc = main(argv)
        err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("warmstart: ")]
    assert rc == case.code, err[-3000:]
    assert "Traceback" not in err
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"warmstart: {KIND[case.code]}: ") and text in lines[0], lines[0]
    assert "SECRETVALUE123" not in err
    assert tree_digest(victim) == before  # nothing deleted, nothing overwritten, nothing added
    _SEEN[case.id] = rc
    record("badinput", _figures())


def _figures() -> dict:
    return {"cases": len(CASES), "passed": len(_SEEN), "skipped": sorted(_SKIPPED),
            "subprocess": sum(c.sub for c in CASES),
            "by_exit_code": {str(c): sum(1 for v in _SEEN.values() if v == c) for c in KIND}}  # fmt: skip


def test_corpus_is_large_and_a_third_runs_the_real_executable():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)
    assert sum(c.sub for c in CASES) * 3 >= len(CASES)
    assert {c.code for c in CASES} == {2, 3, 4}
