"""The lost-peer watchdog's verdicts, the launch post-mortem and the gloo interface choice, without a network:
a fake store stands in for rank 0's TCP store, log folders are written by the test."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.errors import EXIT_PEER_LOST
from app.train import dist, peers, postmortem
from app.train.dist import Dist

WAIT_S = 60  # generous: only bounds a broken test, nothing is timed


class FakeStore:
    """Counters like Paddle's TCPStore ``add``; ranks in ``frozen`` never advance theirs."""

    def __init__(self, advancing: set[int]) -> None:
        self.values: dict[str, int] = {}
        self.advancing = advancing
        self.fail = False

    def add(self, key: str, n: int) -> int:
        if self.fail:
            raise RuntimeError("TCP receive error: Connection reset by peer")
        rank = int(key.rsplit("/", 1)[1])
        if n == 0 and rank in self.advancing:  # another live rank beat meanwhile
            self.values[key] = self.values.get(key, 0) + 1
        self.values[key] = self.values.get(key, 0) + n
        return self.values[key]


@pytest.fixture(autouse=True)
def fast_beats(monkeypatch):
    """Beat and look every 50 ms, so a 0.5 s timeout is ten missed beats."""
    monkeypatch.setattr(peers, "HEARTBEAT_S", 0.05)
    monkeypatch.setattr(peers, "POLL_S", 0.05)
    monkeypatch.setattr(peers, "STORE_ERROR_GRACE_S", 0.1)


def _watch(rank: int, world: int, connect) -> tuple[peers.PeerWatch, list[int], threading.Event]:
    codes: list[int] = []
    died = threading.Event()
    hosts = [f"198.18.0.{11 + r}" for r in range(world)]
    w = peers.PeerWatch(Dist(world, rank), 0.5, "198.18.0.11:9000", hosts, connect=connect)

    def fake_exit(code: int) -> None:
        codes.append(code)
        died.set()

    w.exit = fake_exit
    return w, codes, died


def test_a_peer_whose_heartbeat_stops_is_named_and_the_rank_exits_142(capfd):
    store = FakeStore(advancing={1})  # rank 1 beats, rank 2 is silent
    w, codes, died = _watch(0, 3, lambda *_: store)
    w.committed = 50
    w.start()
    assert died.wait(WAIT_S)
    w.stop()
    assert codes == [EXIT_PEER_LOST]
    line = capfd.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("warmstart: peer-lost: rank 2 (198.18.0.13) lost: no heartbeat for ")
    assert line.endswith(
        "(preempt.peer_timeout_seconds=0.5); rank 0 of 3 stops without saving "
        "(run the launch on every node again: it resumes from the last committed checkpoint (the last save this "
        "rank saw: step-00000050))"
    )


def test_rank_0s_store_closing_the_connection_names_rank_0(capfd):
    store = FakeStore(advancing={0})
    store.fail = True
    w, codes, died = _watch(1, 2, lambda *_: store)
    w.start()
    assert died.wait(WAIT_S)
    w.stop()
    assert codes == [EXIT_PEER_LOST]
    line = capfd.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(
        "warmstart: peer-lost: rank 0 (198.18.0.11) lost: its rendezvous store 198.18.0.11:9000 closed the "
        "connection (TCP receive error: Connection reset by peer)"
    )


def test_rank_0s_store_not_answering_names_rank_0(capfd):
    blocked = threading.Event()

    def connect(*_):  # a cut link: the connection attempt never returns
        blocked.wait(WAIT_S)
        raise OSError("gave up")

    w, codes, died = _watch(1, 2, connect)
    w.start()
    assert died.wait(WAIT_S)
    w.stop(join_s=0)
    blocked.set()
    assert codes == [EXIT_PEER_LOST]
    assert "lost: its rendezvous store 198.18.0.11:9000 did not answer for " in capfd.readouterr().err


def test_no_verdict_once_the_rank_is_leaving_normally():
    store = FakeStore(advancing=set())
    w, codes, died = _watch(0, 2, lambda *_: store)
    w.start()
    w.stop()
    assert not died.wait(2)
    assert codes == []


def test_a_single_process_run_starts_no_watch(monkeypatch):
    monkeypatch.setenv("PADDLE_MASTER", "198.18.0.11:9000")
    assert peers.start(Dist(1, 0), 60) is None


def _worker_logs(folder: Path, text: str, endpoints: str = "198.18.0.11:6001,198.18.0.12:6002") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "workerlog.0").write_text(text)
    (folder / "backup_env.0.json").write_text(json.dumps({"PADDLE_TRAINER_ENDPOINTS": endpoints}))
    return folder


ABORT = (
    "17:09:00 INFO app.train.dist: joined the process group: rank 0 of 2 (...)\n"
    "terminate called after throwing an instance of 'gloo::IoException'\n"
    "  what():  [/paddle/third_party/gloo/gloo/transport/tcp/pair.cc:576] Read error [198.18.0.12]:25236: "
    "Connection reset by peer\n"
)


def test_a_worker_aborted_by_gloo_is_reported_as_the_lost_peer(tmp_path):
    lost = postmortem.lost_peer(250, _worker_logs(tmp_path, ABORT))
    assert lost is not None and lost.exit_code == EXIT_PEER_LOST
    assert lost.report() == (
        "warmstart: peer-lost: rank 1 (198.18.0.12) lost: gloo reported 'Read error [198.18.0.12]:25236: "
        "Connection reset by peer'; this node's worker ended with code 250 (run the launch on every node "
        "again: it resumes from the last committed checkpoint)"
    )


@pytest.mark.parametrize("code", [0, 2, 3, 4, 5, 130, 142, 143])
def test_codes_with_a_meaning_of_their_own_are_kept(tmp_path, code):
    assert postmortem.lost_peer(code, _worker_logs(tmp_path, ABORT)) is None


def test_a_gloo_error_of_an_earlier_attempt_in_the_same_log_is_not_this_runs(tmp_path):
    text = (
        ABORT
        + "17:20:00 INFO app.train.dist: joined the process group: rank 0 of 2 (...)\nTraceback: a bug\n"
    )
    assert postmortem.lost_peer(1, _worker_logs(tmp_path, text)) is None


def test_gloo_is_pointed_at_the_interface_holding_this_ranks_endpoint(monkeypatch):
    monkeypatch.setattr(socket, "gethostbyname", lambda _name: "127.0.1.1")
    addr = SimpleNamespace(family=socket.AF_INET, address="198.18.0.12")
    monkeypatch.setattr("psutil.net_if_addrs", lambda: {"lo": [], "eth0": [addr]})
    env = {"PADDLE_CURRENT_ENDPOINT": "198.18.0.12:6002"}
    assert dist._gloo_interface(env) == "eth0"
    assert dist._gloo_interface({**env, "GLOO_SOCKET_IFNAME": "ens5"}) is None  # the user's choice stands
    assert dist._gloo_interface({"PADDLE_CURRENT_ENDPOINT": "127.0.0.1:6002"}) is None  # one host
    monkeypatch.setattr(socket, "gethostbyname", lambda _name: "198.18.0.12")
    assert dist._gloo_interface(env) is None  # the host name already resolves to the endpoint


def test_after_a_failed_collective_a_short_silence_is_enough(monkeypatch, capfd):
    """A collective failed (the first sign): SUSPECT_S of silence names the peer, not the full timeout."""
    monkeypatch.setattr(peers, "SUSPECT_S", 0.2)
    store = FakeStore(advancing=set())
    w, codes, died = _watch(0, 2, lambda *_: store)
    w.timeout_s = 3600  # never reached
    w.start()
    w.suspect = True
    assert died.wait(WAIT_S)
    w.stop()
    assert codes == [EXIT_PEER_LOST]
    assert (
        "rank 1 (198.18.0.12) lost: a collective failed, then no heartbeat for 0 s (preempt.peer_timeout_seconds=3600)"
        in capfd.readouterr().err
    )


def test_the_scenarios_skip_with_a_reason_without_root_or_ip(monkeypatch):
    from tests.multinode import netns

    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    assert netns.available() == "multi-node tests need root (ip netns, veth)"
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns.shutil, "which", lambda _name: None)
    assert netns.available() == "the `ip` command (iproute2) is not installed"


def test_leftovers_of_a_crashed_session_are_removed_and_live_ones_kept():
    import subprocess

    from tests.multinode import netns

    why = netns.available()
    if why:
        pytest.skip(why)
    dead = 4_194_305  # above the largest pid_max Linux allows (2**22): no process has this id
    stale, live = f"{netns.PREFIX}{dead}h1", f"{netns.PREFIX}1h9"  # pid 1 always exists
    for ns in (stale, live):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        assert netns.clean_stale() == [stale]
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert stale not in listed and live in listed
    finally:
        for ns in (stale, live):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
