"""Real SIGTERMs to real `warmstart train` processes, for every task kind, and during start-up.

Mid-run: exit 143, the checkpoint of the stopped step is the newest committed one, and resuming from it
gives the same losses and bit-identical final parameters as an uninterrupted run. During start-up (before
the CLI's command modules are imported, or while the task is built): exit 143 with one line, no
traceback, nothing trained or saved. NLP tasks used to die of a SIGTERM: ``import paddlenlp`` resets it
to the default action, and ``import paddle`` installs glog's C++ handler for it.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Event, Thread

import pytest

from tests.signal_helpers import (
    catches_sigterm,
    committed_steps,
    events,
    last_line,
    records,
    start,
    stop,
    train_cmd,
    trained_to,
    wait_until,
)
from tests.train_helpers import (
    ROOT,
    VENV_BIN,
    assert_same_tensors,
    clean_env,
    final_model,
    run_inprocess,
    tiny_overrides,
    train_losses,
)

BEFORE_START = (
    "warmstart: preempted before training started, nothing to save (signal {}); run the same command again"
)


def _opts(base: dict[str, object], extra: dict[str, object]) -> list[str]:
    return [f"{k}={'null' if v is None else v}" for k, v in {**base, **extra}.items()]


def _digits(run: Path, _data: Path | None, **extra: object) -> list[str]:
    return tiny_overrides(run, **{"schedule.total_steps": 800, "schedule.warmup.steps": 20,
                                  "checkpoint.every_steps": 50, "train.eval_every_steps": 300, **extra})  # fmt: skip


def _seq(run: Path, toy: Path, **extra: object) -> list[str]:
    return _opts({
        "run.dir": run, "task.options.model_dir": toy / "bert", "task.options.train_file": toy / "seq/train.csv",
        "task.options.eval_file": toy / "seq/eval.csv", "training_args.max_steps": 120,
        "training_args.save_steps": 10, "train.eval_every_steps": 100, "training_args.logging_steps": 1,
        "train.progress_bar": "off", "training_args.per_device_train_batch_size": 16,
    }, extra)  # fmt: skip


def _tok(run: Path, toy: Path, **extra: object) -> list[str]:
    return _opts({
        "run.dir": run, "task.options.model_dir": toy / "ernie", "task.options.train_file": toy / "ner/train.conll",
        "task.options.eval_file": toy / "ner/eval.conll", "schedule.total_steps": 120,
        "schedule.warmup.steps": 5, "checkpoint.every_steps": 10, "train.eval_every_steps": 100,
        "train.log_every_steps": 1, "train.progress_bar": "off", "train.batch_size": 16,
    }, extra)  # fmt: skip


def _ocr(run: Path, data: Path, **extra: object) -> list[str]:
    return _opts({
        "run.dir": run, "checkpoint.uri": run / "ckpt", "checkpoint.every_steps": 3, "task.options.data_dir": data,
        "task.options.image_shape": "[3, 32, 128]", "task.options.max_text_length": 8,
        "task.options.model.width": 16, "task.options.model.hidden_size": 32,
        "task.options.synthetic.charset": "0123456789", "task.options.synthetic.max_len": 2,
        "task.options.synthetic.n_train": 96, "task.options.synthetic.n_eval": 16,
        "task.options.synthetic.fonts": "[DejaVuSans.ttf]", "schedule.total_steps": 40,
        "schedule.warmup": "{kind: linear, steps: 2, start_lr: 0.0001}", "train.batch_size": 8,
        "train.log_every_steps": 1, "train.progress_bar": "off", "train.eval_every_steps": None,
    }, extra)  # fmt: skip


def _det(run: Path, shapes: Path, **extra: object) -> list[str]:
    return _opts({
        "run.dir": run, "checkpoint.uri": run / "ckpt", "task.options.dataset_dir": shapes,
        "task.options.synthetic": None, "schedule.total_steps": 6, "schedule.warmup.steps": 2,
        "train.batch_size": 2, "train.log_every_steps": 1, "train.progress_bar": "off",
        "train.eval_every_steps": None, "checkpoint.every_steps": 2, "checkpoint.keep_last": 5,
    }, extra)  # fmt: skip


@dataclass(frozen=True)
class Kind:
    config: str
    overrides: Callable[..., list[str]]
    data: str | None  # fixture name
    signal_after: int  # send SIGTERM once this step is logged (after the first periodic checkpoint)
    total: int
    ckpt: str = "checkpoints"


KINDS = {
    "digits": Kind("configs/demo.yaml", _digits, None, 60, 800),
    "ocr_rec": Kind("configs/ocr_rec_small.yaml", _ocr, "ocr_data", 4, 40, "ckpt"),
    "detection": Kind("configs/det_picodet_s.yaml", _det, "shapes", 3, 6, "ckpt"),
    "nlp_seq_cls": Kind("configs/nlp_seq_cls.yaml", _seq, "toy", 12, 120),
    "nlp_token_cls": Kind("configs/nlp_token_cls.yaml", _tok, "toy", 12, 120),
}


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from app.tasks.nlp.synthetic import make_model_dir, write_ner, write_reviews

    root = tmp_path_factory.mktemp("toy")
    make_model_dir(root / "bert", "bert", seed=0)
    make_model_dir(root / "ernie", "ernie", seed=1)
    write_reviews(root / "seq/train.csv", 200, seed=1, negation=0.0)
    write_reviews(root / "seq/eval.csv", 40, seed=2, negation=0.0)
    write_ner(root / "ner/train.conll", 120, seed=5)
    write_ner(root / "ner/eval.conll", 30, seed=6)
    return root


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from app.tasks.det.synth import write_shapes

    return write_shapes(tmp_path_factory.mktemp("shapes"), n_train=12, n_eval=4, size=96, seed=3)


@pytest.fixture(scope="module")
def ocr_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ocr_data")  # rendered by the first run (the in-process reference)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(KINDS))
def test_sigterm_mid_run_saves_exits_143_and_resumes_bit_identically(name, tmp_path, request):
    kind = KINDS[name]
    data = request.getfixturevalue(kind.data) if kind.data else None
    ref, cut = kind.overrides(tmp_path / "ref", data), kind.overrides(tmp_path / "cut", data)
    assert run_inprocess(ref, config=kind.config)[0] == 0

    log = tmp_path / "cut" / "log.jsonl"
    proc = start(train_cmd(kind.config, cut))
    wait_until(proc, trained_to(log, kind.signal_after), f"step {kind.signal_after}")
    code, err = stop(proc)
    assert code == 143, err[-3000:]
    assert "Traceback" not in err
    (preempted,) = events(log, "preempted")
    stopped = preempted["step"]
    assert (preempted["reason"], kind.signal_after <= stopped < kind.total) == ("signal SIGTERM", True)
    assert last_line(err).startswith(
        f"warmstart: preempted: stopped at step {stopped} (signal SIGTERM); checkpoint step-{stopped:08d} committed"
    )
    assert committed_steps(tmp_path / "cut" / kind.ckpt)[-1] == stopped

    rc, session = run_inprocess(cut, config=kind.config)
    assert rc == 0 and session.step == kind.total
    assert [e["step"] for e in events(log, "resume")] == [stopped]
    assert train_losses(log) == train_losses(tmp_path / "ref" / "log.jsonl")
    assert_same_tensors(final_model(cut, config=kind.config), final_model(ref, config=kind.config))


@pytest.mark.parametrize(
    ("command", "signum", "line"),
    [
        ("train", signal.SIGTERM, BEFORE_START.format("SIGTERM")),
        ("train", signal.SIGINT, BEFORE_START.format("SIGINT")),
        (
            "ckpt",
            signal.SIGTERM,
            "warmstart: stopped: signal SIGTERM before warmstart ckpt finished (run it again)",
        ),
    ],
)
def test_signal_during_cli_start_up_exits_143_with_one_line(command, signum, line, tmp_path):
    """Sent as soon as the process catches SIGTERM: the CLI's first act, before paddle is imported."""
    run = tmp_path / "run"
    cmd = train_cmd("configs/demo.yaml", tiny_overrides(run))
    proc = start(cmd if command == "train" else [cmd[0], "ckpt", "ls", str(run / "checkpoints")])
    wait_until(proc, catches_sigterm(proc.pid), "a SIGTERM handler", timeout=60)
    code, err = stop(proc, signum)
    assert code == 143, err[-3000:]
    assert "Traceback" not in err and "C++" not in err
    assert last_line(err) == line
    assert not (run / "checkpoints").exists()
    assert not [r for r in records(run / "log.jsonl") if r.get("kind") == "train"]


class _FirstPoll(BaseHTTPRequestHandler):
    """A GCP metadata server that never announces a preemption; it marks the watcher's first poll, which
    comes just before the trainer starts building the task."""

    polled = Event()

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        type(self).polled.set()
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"FALSE")


def test_sigterm_while_the_nlp_task_is_built_is_honoured_before_the_first_step(toy, tmp_path):
    _FirstPoll.polled.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FirstPoll)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = clean_env(
            WARMSTART_SPOT_PROVIDER="gcp", WARMSTART_SPOT_ENDPOINT=f"http://127.0.0.1:{server.server_port}"
        )
        proc = start(train_cmd("configs/nlp_token_cls.yaml", _tok(tmp_path / "run", toy)), env)
        wait_until(proc, _FirstPoll.polled.is_set, "a spot poll")
        code, err = stop(proc)
    finally:
        server.shutdown()
    assert code == 143, err[-3000:]
    assert "Traceback" not in err
    assert last_line(err) == BEFORE_START.format("SIGTERM")
    log = tmp_path / "run" / "log.jsonl"
    assert [(e["step"], e["reason"], e["saved"]) for e in events(log, "preempted")] == [
        (0, "signal SIGTERM", False)
    ]
    assert not [r for r in records(log) if r.get("kind") == "train"]
    assert committed_steps(tmp_path / "run" / "checkpoints") == []


def _committed_on_s3(endpoint: str, bucket: str, step_prefix: str) -> bool:
    import boto3

    listing = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=bucket, Prefix=step_prefix)
    return any(o["Key"].endswith("/manifest.json") for o in listing.get("Contents", []))


def test_second_ctrl_c_while_training_stops_at_once_with_exit_130(tmp_path, s3_server, s3_bucket):
    """First SIGINT: finish the step and save. A second one while that save is held up (a proxy in front of
    the S3 server stalls every upload once asked) interrupts at once: exit 130 (not 2, which means "fix
    the command line"), one line saying nothing was saved, and the steps committed before stay intact."""
    from tests.fault_proxy import FaultProxy

    stall, stalled, release = Event(), Event(), Event()

    def rule(seen):  # noqa: ANN001, ANN202
        if stall.is_set() and seen.method in ("PUT", "POST"):
            stalled.set()
            release.wait(120)
        return None

    proxy = FaultProxy(s3_server, rule).start()
    run = tmp_path / "run"
    uri = f"s3://{s3_bucket}/ctrl-c"
    env = clean_env(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    overrides = _digits(run, None, **{"checkpoint.uri": uri, "store.endpoint_url": proxy.url,
                                      "store.addressing_style": "path"})  # fmt: skip
    proc = start(train_cmd("configs/demo.yaml", overrides), env)
    try:
        wait_until(proc, trained_to(run / "log.jsonl", 60), "step 60")
        wait_until(proc, lambda: _committed_on_s3(s3_server, s3_bucket, "ctrl-c/step-00000050"), "step 50")
        stall.set()
        proc.send_signal(signal.SIGINT)
        wait_until(proc, stalled.is_set, "an upload of the preemption save")
        code, err = stop(proc, signal.SIGINT)
    finally:
        release.set()
        proxy.stop()
    assert code == 130, err[-3000:]
    assert "Traceback" not in err
    assert last_line(err).startswith("warmstart: interrupted: stopped at once without saving")
    env.update(WARMSTART_S3_ENDPOINT_URL=s3_server, WARMSTART_S3_ADDRESSING_STYLE="path")
    verify = subprocess.run(
        [str(VENV_BIN / "warmstart"), "ckpt", "verify", uri],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "step 50: OK" in verify.stdout  # the last periodic save before the interrupt
    assert not _committed_on_s3(s3_server, s3_bucket, "ctrl-c/step-0000006")  # the cut-short save: none
