"""http(s) ``init.from`` (issue #14, item 3): downloaded once into WARMSTART_CACHE under a lock, resumed with
Range or restarted cleanly, size-checked, pinned by ``init.sha256`` (which is also the pickle opt-in), its
sha256 in the lineage; a 404 or a server that is down is one line, exit 3, naming the URL (credentials
redacted) and the cache path where the file can be placed by hand.

The server is ``http.server`` on 127.0.0.1 in a thread; each test sets what it serves and how it fails,
and the requests it saw (method, path, headers) are asserted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from app.checkpoint.download import cache_path, fetch
from app.cli import main
from app.errors import StorageError
from app.store.config import StoreConfig
from tests.conftest import free_port
from tests.http_helpers import ETAG, Behaviour, Server, serve
from tests.train_helpers import ROOT, clean_env, tiny_overrides

FAST = StoreConfig(
    max_attempts=3, backoff_base_s=0.0, backoff_max_s=0.0, connect_timeout_s=10, read_timeout_s=30
)
FAST_SET = {"store.max_attempts": 2, "store.backoff_base_s": 0, "store.backoff_max_s": 0}


@pytest.fixture
def server() -> Iterator[Server]:
    yield from serve()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("WARMSTART_CACHE", str(root))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return root


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def weights() -> dict[str, bytes]:
    """The digits model's initial weights (changed, so a load is visible) as safetensors and .pdparams."""
    import paddle
    from safetensors.numpy import save

    from app.config import load_config
    from app.tasks.base import build_task

    cfg = load_config(ROOT / "configs/demo.yaml", tiny_overrides(Path("/tmp/unused")), env={})
    with paddle.utils.unique_name.guard():
        net = build_task(cfg.task, 0).build_model()
    arrays = {k: (v.numpy() + 0.25).astype(v.numpy().dtype) for k, v in net.state_dict().items()}
    pickled = Path(os.environ.get("TMPDIR", "/tmp")) / f"init-http-{os.getpid()}.pdparams"
    paddle.save({k: paddle.to_tensor(v) for k, v in arrays.items()}, str(pickled))
    out = {"safetensors": save(dict(arrays)), "pdparams": pickled.read_bytes()}
    pickled.unlink()
    out["arrays"] = arrays  # type: ignore[assignment]
    return out


def _train(tmp_path: Path, capsys: pytest.CaptureFixture, src: str, **extra: object) -> tuple[int, str]:
    sets = {"schedule.total_steps": 2, "schedule.warmup.steps": 1, "train.eval_every_steps": 100,
            "checkpoint.every_steps": 100, "init.from": src, **FAST_SET, **extra}  # fmt: skip
    argv = ["train", "--config", str(ROOT / "configs/demo.yaml")]
    for item in tiny_overrides(tmp_path / "run", **sets):
        argv += ["--set", item]
    code = main(argv)
    return code, capsys.readouterr().err


def _one_line(err: str) -> str:
    """The error line: the last line of stderr, and the only ``warmstart:`` one (log lines may precede it)."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert [x for x in lines if x.startswith("warmstart:")] == lines[-1:]
    return lines[-1]


def _final_meta(run: Path) -> dict:
    step = sorted((run / "checkpoints").glob("step-*"))[-1]
    return json.loads((step / "meta.json").read_text())


# -- a real run --------------------------------------------------------------------------------------------
def test_download_is_used_by_a_train_and_cached_for_the_next(tmp_path, server, cache, weights, capsys):
    data = weights["safetensors"]
    server.files["/models/w.safetensors"] = data
    url = server.url("/models/w.safetensors")
    code, err = _train(tmp_path / "a", capsys, url)
    assert code == 0, err
    assert len(server.gets("/models/w.safetensors")) == 1
    dest = cache_path(url)
    assert dest.parent == cache and dest.read_bytes() == data
    assert sorted(p.name for p in cache.iterdir()) == [dest.name, dest.name + ".lock"]
    meta = _final_meta(tmp_path / "a/run")
    assert meta["init_source"] == {"from": url, "mode": "weights", "sha256": _sha(data)}
    assert f"start: warm_start from {url} (sha256 {_sha(data)})" in err
    events = [json.loads(x) for x in (tmp_path / "a/run/log.jsonl").read_text().splitlines()]
    assert [e["sha256"] for e in events if e.get("event") == "warm_start"] == [_sha(data)]
    # the second run reads the cache: no request at all
    code, err = _train(tmp_path / "b", capsys, url)
    assert code == 0, err
    assert len(server.gets("/models/w.safetensors")) == 1
    assert _final_meta(tmp_path / "b/run")["init_source"]["sha256"] == _sha(data)


def test_warm_start_loads_the_downloaded_tensors(tmp_path, server, cache, weights):
    from tests.train_helpers import run_inprocess

    server.files["/w.safetensors"] = weights["safetensors"]
    ov = tiny_overrides(tmp_path, **{"init.from": server.url("/w.safetensors")})
    rc, session = run_inprocess(ov, stop_at=0)
    assert rc == 143  # stopped before any step: the model holds what the warm start put in it
    state = {k: v.numpy() for k, v in session.net.state_dict().items()}
    assert all(np.array_equal(state[k], v) for k, v in weights["arrays"].items())


def test_the_init_source_record_survives_a_resume(tmp_path, server, cache, weights):
    from tests.train_helpers import run_inprocess

    data = weights["safetensors"]
    server.files["/w.safetensors"] = data
    url = server.url("/w.safetensors")
    sets = {
        "init.from": url,
        "schedule.total_steps": 4,
        "schedule.warmup.steps": 1,
        "checkpoint.every_steps": 2,
    }
    ov = tiny_overrides(tmp_path, **sets)
    assert run_inprocess(ov, stop_at=2)[0] == 143
    assert run_inprocess(ov)[0] == 0  # resumes its own checkpoint: init.from is not read again
    metas = [
        json.loads((d / "meta.json").read_text()) for d in sorted((tmp_path / "checkpoints").glob("step-*"))
    ]
    assert [m["step"] for m in metas] == [2, 4]
    assert [m["init_source"] for m in metas] == [{"from": url, "mode": "weights", "sha256": _sha(data)}] * 2
    assert len(server.gets("/w.safetensors")) == 1


def test_ckpt_show_names_the_init_source_and_ckpt_import_reads_a_url(
    tmp_path, server, cache, weights, capsys
):
    data = weights["safetensors"]
    server.files["/w.safetensors"] = data
    url = server.url("/w.safetensors")
    assert main(["ckpt", "import", url, str(tmp_path / "imported")]) == 0
    assert capsys.readouterr().out.startswith(f"imported {url} -> ")
    code, err = _train(tmp_path, capsys, url)
    assert code == 0, err
    assert len(server.gets("/w.safetensors")) == 1  # the import downloaded it; the run used the cache
    assert main(["ckpt", "show", str(tmp_path / "run/checkpoints")]) == 0
    assert f"  init source:  {url} (sha256 {_sha(data)})\n" in capsys.readouterr().out


# -- resume, restart, size ---------------------------------------------------------------------------------
def test_dropped_connection_resumes_with_a_range_request(server, cache, caplog):
    data = os.urandom(300_000)
    server.files["/big.bin"] = data
    server.behaviour["/big.bin"] = Behaviour(drops=[70_000])
    caplog.set_level(logging.INFO)
    got = fetch(server.url("/big.bin"), FAST)
    assert got.sha256 == _sha(data) and got.path.read_bytes() == data and got.downloaded
    first, second = server.gets("/big.bin")
    assert "range" not in first
    assert (second["range"], second["if-range"]) == ("bytes=70000-", ETAG)
    assert "resuming the download of" in caplog.text and "at byte 70000 of 300000" in caplog.text
    assert not got.path.with_name(got.path.name + ".part").exists()


def test_a_server_without_range_support_restarts_cleanly(server, cache, caplog):
    data = os.urandom(200_000)
    server.files["/big.bin"] = data
    server.behaviour["/big.bin"] = Behaviour(ranges=False, drops=[50_000])
    caplog.set_level(logging.INFO)
    got = fetch(server.url("/big.bin"), FAST)
    assert got.sha256 == _sha(data) and got.path.read_bytes() == data
    assert [h.get("range") for h in server.gets("/big.bin")] == [None, "bytes=50000-"]
    assert "the server sent the whole file instead of resuming" in caplog.text


def test_a_changed_file_restarts_instead_of_resuming(server, cache):
    """A partial file whose validator the server no longer matches (If-Range fails) is not appended to."""
    data = os.urandom(100_000)
    dest = cache_path(server.url("/f.bin"))
    dest.parent.mkdir(parents=True)
    dest.with_name(dest.name + ".part").write_bytes(b"x" * 1000)  # an older version's first bytes
    dest.with_name(dest.name + ".part.json").write_text(json.dumps({"etag": '"v0"', "total": 100_000}))
    server.files["/f.bin"] = data
    got = fetch(server.url("/f.bin"), FAST)
    assert got.path.read_bytes() == data
    assert [(h["range"], h["if-range"]) for h in server.gets("/f.bin")] == [("bytes=1000-", '"v0"')]


@pytest.mark.parametrize("side", ['{"etag": 5, "total": 100000}', "[1]", "not json", '{"total": true}', "{}"])
def test_a_part_without_a_usable_validator_restarts_without_range(server, cache, side):
    data = os.urandom(100_000)
    dest = cache_path(server.url("/f.bin"))
    dest.parent.mkdir(parents=True)
    dest.with_name(dest.name + ".part").write_bytes(data[:1000])
    dest.with_name(dest.name + ".part.json").write_text(side)
    server.files["/f.bin"] = data
    assert fetch(server.url("/f.bin"), FAST).path.read_bytes() == data
    assert ["range" in h for h in server.gets("/f.bin")] == [False]


def test_short_body_is_retried_then_a_clear_error(server, cache):
    server.files["/short.bin"] = os.urandom(5000)
    server.behaviour["/short.bin"] = Behaviour(ranges=False, always_short=1000)
    url = server.url("/short.bin")
    with pytest.raises(StorageError) as info:
        fetch(url, FAST)
    assert info.value.exit_code == 3
    assert info.value.line() == (
        f"cannot download {url}: still failing after 3 attempts: the connection ended after 1000 of 5000 "
        f"bytes (Content-Length says 5000) (check the URL and the network, or place the file by hand at "
        f"{cache_path(url)} to use it without network)"
    )
    assert len(server.gets("/short.bin")) == 3
    assert not cache_path(url).exists()


# -- unreachable ---------------------------------------------------------------------------------------------
def test_404_is_one_line_exit_3_naming_url_and_cache_path_then_a_hand_placed_file_works(
    tmp_path, server, cache, weights, capsys
):
    url = server.url("/missing/w.safetensors", auth="alice:hunter2@") + "?token=s3cr3t&v=2"
    shown = server.url("/missing/w.safetensors", auth="***@") + "?token=***&v=2"
    dest = cache_path(url)
    code, err = _train(tmp_path / "a", capsys, url)
    assert (code, _one_line(err)) == (
        3,
        f"warmstart: storage: cannot download {shown}: HTTP 404 Not Found (check the URL and the network, "
        f"or place the file by hand at {dest} to use it without network)",
    )
    assert "hunter2" not in err and "s3cr3t" not in err
    assert len(server.gets("/missing/w.safetensors")) == 1  # a 404 is not retried
    want = "Basic " + base64.b64encode(b"alice:hunter2").decode()
    assert server.gets("/missing/w.safetensors")[0]["authorization"] == want
    assert not (tmp_path / "a/run/checkpoints").exists()
    dest.write_bytes(weights["safetensors"])  # placed by hand: used without network
    code, err = _train(tmp_path / "b", capsys, url, **{"init.sha256": _sha(weights["safetensors"])})
    assert code == 0, err
    assert len(server.gets("/missing/w.safetensors")) == 1
    for text in (
        json.dumps(_final_meta(tmp_path / "b/run")),
        (tmp_path / "b/run/log.jsonl").read_text(),
        err,
    ):
        assert "hunter2" not in text and "s3cr3t" not in text
    assert _final_meta(tmp_path / "b/run")["init_source"]["from"] == shown


@pytest.mark.parametrize(
    ("status", "reason", "gets"), [(403, "Forbidden", 1), (410, "Gone", 1), (503, "Service Unavailable", 3)]
)
def test_http_errors_are_exit_3_and_only_transient_ones_are_retried(server, cache, status, reason, gets):
    server.files["/e.bin"] = b"x"
    server.behaviour["/e.bin"] = Behaviour(status=status)
    url = server.url("/e.bin")
    with pytest.raises(StorageError) as info:
        fetch(url, FAST)
    tried = (
        f"still failing after 3 attempts: HTTP {status} {reason}" if gets > 1 else f"HTTP {status} {reason}"
    )
    assert info.value.exit_code == 3
    assert info.value.message == f"cannot download {url}: {tried}"
    assert len(server.gets("/e.bin")) == gets
    assert not cache_path(url).exists()


def test_server_down_is_exit_3_after_retries(tmp_path, cache, capsys):
    url = f"http://127.0.0.1:{free_port()}/w.safetensors"
    code, err = _train(tmp_path, capsys, url)
    assert code == 3
    assert _one_line(err) == (
        f"warmstart: storage: cannot download {url}: still failing after 2 attempts: [Errno 111] Connection "
        f"refused (check the URL and the network, or place the file by hand at {cache_path(url)} to use it "
        "without network)"
    )


# -- init.sha256 ---------------------------------------------------------------------------------------------
def test_sha256_mismatch_stops_and_moves_the_cached_file_aside(tmp_path, server, cache, weights, capsys):
    data = weights["safetensors"]
    server.files["/w.safetensors"] = data
    url = server.url("/w.safetensors")
    dest = cache_path(url)
    code, err = _train(tmp_path, capsys, url, **{"init.sha256": "0f" * 32})
    assert code == 4
    assert _one_line(err) == (
        f"warmstart: checkpoint: {url} (cached at {dest}) has sha256 {_sha(data)}, but init.sha256 pins "
        f"{'0f' * 32}; the file was not used and was moved to {dest}.rejected (check init.sha256 and the URL; "
        "the next run downloads the file again)"
    )
    assert not dest.exists() and Path(f"{dest}.rejected").read_bytes() == data
    assert not (tmp_path / "run/checkpoints").exists()


def test_a_pickle_is_refused_naming_both_opt_ins_and_a_matching_pin_accepts_it(
    tmp_path, server, cache, weights, capsys
):
    data = weights["pdparams"]
    server.files["/w.pdparams"] = data
    url = server.url("/w.pdparams")
    code, err = _train(tmp_path / "a", capsys, url)
    assert (code, _one_line(err)) == (
        4,
        f"warmstart: checkpoint: {url} is a pickle (found by its content); loading it can run arbitrary "
        "code, so it is refused (if you trust the file, set init.allow_pickle: true (--set "
        f"init.allow_pickle=true) or pin this exact file with init.sha256: {_sha(data)}, or convert it once "
        "with `warmstart ckpt import SRC DEST --allow-pickle` and set init.from: DEST)",
    )
    code, err = _train(tmp_path / "b", capsys, url, **{"init.sha256": _sha(data).upper()})
    assert code == 0, err
    assert f"unpickling {url} (sha256 {_sha(data)}) because init.sha256 pins this file" in err
    assert len(server.gets("/w.pdparams")) == 1


def test_a_local_pickle_is_accepted_by_a_matching_pin_and_refused_by_another(tmp_path, weights, capsys):
    src = tmp_path / "w.pdparams"
    src.write_bytes(weights["pdparams"])
    code, err = _train(tmp_path / "a", capsys, str(src), **{"init.sha256": "1e" * 32})
    assert (code, _one_line(err)) == (
        4,
        f"warmstart: checkpoint: {src} has sha256 {_sha(src.read_bytes())}, but init.sha256 pins {'1e' * 32}; "
        "nothing was loaded (check init.sha256 and init.from)",
    )
    code, err = _train(tmp_path / "b", capsys, str(src), **{"init.sha256": _sha(src.read_bytes())})
    assert code == 0, err
    assert _final_meta(tmp_path / "b/run")["init_source"]["sha256"] == _sha(src.read_bytes())


def test_sha256_on_a_checkpoint_root_is_a_config_error(tmp_path, capsys):
    (tmp_path / "root").mkdir()
    code, err = _train(tmp_path, capsys, str(tmp_path / "root"), **{"init.sha256": "2d" * 32})
    assert code == 2
    assert _one_line(err).startswith("warmstart: config: init.sha256 pins a weights file, but init.from")


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("init.from", "https://example.com/models/", "names no file"),
        ("init.from", "http:///w.pdparams", "names no host"),
        ("init.from", "https://example.com/w.pdparams#v1", "has a #fragment"),
        ("init.sha256", "abc", "is not a sha256 digest"),
        ("checkpoint.uri", "https://example.com/ckpts", "unsupported scheme"),
    ],
)
def test_bad_urls_and_digests_are_config_errors(tmp_path, capsys, key, value, why):
    code, err = _train(tmp_path, capsys, "https://example.com/w.safetensors", **{key: value})
    assert code == 2
    line = _one_line(err)
    assert line.startswith("warmstart: config: ") and why in line


# -- concurrency ---------------------------------------------------------------------------------------------
_FETCH = (
    "import logging,sys;from app.checkpoint.download import fetch;logging.basicConfig(level=logging.INFO);"
)
_FETCH += "f=fetch(sys.argv[1]);print(f.sha256,f.downloaded,flush=True)"


def _lines(stream, out: queue.Queue) -> None:  # noqa: ANN001
    for line in stream:
        out.put(line)


def test_two_processes_download_once(tmp_path, server, cache):
    data = os.urandom(100_000)
    gate = threading.Event()
    server.files["/w.bin"] = data
    server.behaviour["/w.bin"] = Behaviour(gate=gate)
    url = server.url("/w.bin")
    env = clean_env(PYTHONPATH=str(ROOT), WARMSTART_CACHE=str(cache))
    spawn = [sys.executable, "-c", _FETCH, url]
    first = subprocess.Popen(spawn, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = None
    try:
        for _ in range(600):  # the first one holds the lock and is inside the (held) GET
            if server.gets("/w.bin"):
                break
            threading.Event().wait(0.1)
        assert len(server.gets("/w.bin")) == 1
        second = subprocess.Popen(spawn, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_lines, args=(second.stderr, lines), daemon=True).start()
        while "waiting for another process downloading" not in (line := lines.get(timeout=60)):
            pass
        assert str(cache_path(url)) + ".lock" in line
        gate.set()
        outs = [p.communicate(timeout=60)[0] for p in (first, second)]
    finally:
        gate.set()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert (first.returncode, second.returncode) == (0, 0)
    assert sorted(outs) == sorted([f"{_sha(data)} True\n", f"{_sha(data)} False\n"])
    assert len(server.gets("/w.bin")) == 1


def test_a_stalled_server_hits_the_read_timeout_and_is_retried(server, cache):
    gate = threading.Event()  # never set while the client waits: the body never comes
    server.files["/stall.bin"] = b"x" * 1000
    server.behaviour["/stall.bin"] = Behaviour(gate=gate)
    url = server.url("/stall.bin")
    cfg = StoreConfig(
        max_attempts=2, backoff_base_s=0, backoff_max_s=0, connect_timeout_s=300, read_timeout_s=0.5
    )
    with pytest.raises(StorageError) as info:
        fetch(url, cfg)
    assert info.value.message == (
        f"cannot download {url}: still failing after 2 attempts: the connection dropped after 0 bytes "
        "(TimeoutError('timed out'))"
    )
    assert len(server.gets("/stall.bin")) == 2


# -- cache paths ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://h.example/models/r50.pdparams", "r50.pdparams"),
        ("https://h.example/a/..%2F..%2F..%2Fetc%2Fpasswd", "_.._.._etc_passwd"),
        ("https://h.example/a/%2e%2e", "download"),
        ("https://h.example/a/.hidden", "hidden"),
        ("https://h.example/a/w%00x.bin?token=1", "w_x.bin"),
    ],
)
def test_the_cache_path_is_a_flat_name_inside_the_cache(cache, url, name):
    path = cache_path(url)
    assert path.parent == cache
    assert path.name == f"{_sha(url.encode())[:16]}-{name}"


def test_default_cache_folder_follows_xdg(monkeypatch, tmp_path):
    from app.checkpoint.download import cache_root

    monkeypatch.delenv("WARMSTART_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg/warmstart/downloads"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home/.cache/warmstart/downloads"


def test_an_unusable_cache_folder_is_a_storage_error(server, tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("WARMSTART_CACHE", str(tmp_path / "afile/cache"))
    with pytest.raises(StorageError) as info:
        fetch(server.url("/w.bin"), FAST)
    assert info.value.line() == (
        f"cannot create the download cache folder {tmp_path / 'afile/cache'}: Not a directory "
        "(set WARMSTART_CACHE to a writable folder)"
    )
    assert server.gets("/w.bin") == []


# -- a stop request during the download ------------------------------------------------------------------
def test_sigterm_during_a_download_exits_143_keeping_the_part_and_the_next_run_resumes_it(
    tmp_path, server, cache, weights, capsys
):
    """A download can outlast a spot notice: a real SIGTERM to a real `warmstart train` stuck in the body
    ends it at once (143, nothing saved), the bytes received stay in .part, and the next run resumes them."""
    gate = threading.Event()
    data = weights["safetensors"]
    server.files["/slow.safetensors"] = data
    server.behaviour["/slow.safetensors"] = Behaviour(gate=gate, hold_after=1000)
    url = server.url("/slow.safetensors")
    part = Path(str(cache_path(url)) + ".part")
    argv = [sys.executable, "-m", "app.cli", "train", "--config", str(ROOT / "configs/demo.yaml")]
    sets = {"schedule.total_steps": 2, "schedule.warmup.steps": 1, "init.from": url, **FAST_SET}
    for item in tiny_overrides(tmp_path / "run", **sets):
        argv += ["--set", item]
    env = clean_env(PYTHONPATH=str(ROOT), WARMSTART_CACHE=str(cache))
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(1200):  # until the first 1000 bytes are on disk (the server then holds the rest)
            if (part.is_file() and part.stat().st_size == 1000) or proc.poll() is not None:
                break
            threading.Event().wait(0.1)
        assert proc.poll() is None, proc.communicate()[1]
        assert part.stat().st_size == 1000
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)  # the server still holds the body: only the signal ends it
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143
    assert _one_line(err) == (
        f"warmstart: preempted before training started, nothing to save (signal SIGTERM, while downloading "
        f"{url} (what was received stays in {part}; the next run resumes it)); run the same command again"
    )
    assert part.stat().st_size == 1000 and not cache_path(url).exists()
    assert not list((tmp_path / "run").glob("**/manifest.json"))
    gate.set()
    code, _ = _train(tmp_path, capsys, url)
    assert code == 0
    assert server.gets("/slow.safetensors")[-1]["range"] == "bytes=1000-"
    assert _sha(cache_path(url).read_bytes()) == _sha(data)
