"""A two-host data-parallel job survives one host's SIGTERM, its loss (kill -9), a cut link, and a restart
on fewer or more hosts; rank 0's host is among the ones stopped and killed. See docs/distributed.md.

``make test`` runs the notice and node-lost scenarios once each (rank 1's host); ``make faults``
(WS_FAULTS_FULL=1) runs every scenario, the notice and kill cases 6 times alternating between rank 1's
and rank 0's host, and writes the figures for docs/reliability.md.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.multinode.cluster import Job, events, kill_host, last_train_step, link, wait_all, wait_step
from tests.multinode.scenario import FULL, committed, latest_state, manifests, record, runs, summary

FULL_ONLY = pytest.mark.skipif(
    not FULL,
    reason="runs under `make faults` (WS_FAULTS_FULL=1); make test runs the notice and node-lost cases",
)
PEER_TIMEOUT_S = 20  #: preempt.peer_timeout_seconds in these tests (default 45)


def _victim(i: int) -> int:
    """Which rank's host the i-th run stops or kills: rank 1's first, then alternating with rank 0's."""
    return 1 - i % 2


def _resume_to_the_end(job: Job, hosts: list, expect_step: int, reference_sha: str) -> bool:
    """Restart on ``hosts``: it resumes from ``expect_step`` and ends bit-identical to the reference."""
    again = job.start(hosts)
    codes, hung = wait_all(again)
    assert codes == [0] * len(hosts) and not hung, again[0].stderr[-3000:]
    assert [e["step"] for e in events(again[0].log, "resume")][-1] == expect_step
    return events(again[0].log, "done")[-1]["params_sha256"] == reference_sha


def test_notice_on_one_node_stops_every_rank_at_one_step_and_resumes_bit_identical(
    net, job_factory, reference_sha
):
    figures = []
    for i in range(runs("notice")):
        job = job_factory(f"notice{i}")
        launches = job.start(net.hosts[:2])
        wait_step(launches, 30 + 17 * i)
        victim = launches[_victim(i)]
        victim.proc.send_signal(signal.SIGTERM)
        codes, hung = wait_all(launches)
        assert codes == [143, 143] and not hung, (codes, victim.stderr[-3000:])
        stops = [[e["step"] for e in events(x.log, "preempted")] for x in launches]
        assert stops[0] == stops[1] and len(stops[0]) == 1, stops  # every rank stopped at the same step
        stopped = stops[0][0]
        saves = [e for e in events(launches[0].log, "checkpoint") if e["step"] == stopped]
        assert len(saves) == 1  # exactly one checkpoint of the stop step (an interval save may have been it)
        assert committed(job)[-1] == stopped
        identical = _resume_to_the_end(job, net.hosts[:2], stopped, reference_sha)
        assert identical
        figures.append(
            {"victim_rank": _victim(i), "stopped": stopped, "steps_lost": 0, "bit_identical": identical}
        )
    record("notice", {"runs": figures, "hangs": 0, "corrupt_loads": 0})


def _lost(job: Job, net, launches, i: int, cut: bool) -> dict:
    """Kill (or cut off) the victim's host mid-run; check the survivors' exit and line; return figures."""
    wait_step(launches, 40 + 13 * i)
    before = manifests(job)
    victim = launches[_victim(i)]
    survivors = [x for x in launches if x is not victim]
    t0 = time.monotonic()
    if cut:
        link(victim.host, up=False)
    else:
        kill_host(victim.host)
    codes, hung = wait_all(launches)
    assert not hung, codes
    watchers = launches if cut else survivors  # a cut-off host is itself a survivor that lost its peer
    for x in watchers:
        assert x.proc.returncode == 142, (x.host.index, x.proc.returncode, x.stderr[-3000:])
        peer = next(p for p in launches if p is not x)
        named = f"warmstart: peer-lost: rank {peer.rank} ({peer.host.ip}) lost: "
        assert any(line.startswith(named) for line in x.lines("warmstart: peer-lost: ")), x.stderr[-3000:]
    after = manifests(job)
    assert all(after.get(step) == body for step, body in before.items())  # committed steps untouched
    if cut:
        link(victim.host, up=True)
    trained = last_train_step(launches[0].log)
    resume_at = max(after)
    return {
        "victim_rank": victim.rank,
        "detect_s": [round(x.ended - t0, 1) for x in watchers],
        "steps_lost": trained - resume_at,
        "resume_at": resume_at,
        "codes": codes,
    }


def test_node_lost_survivor_exits_142_naming_the_peer_and_a_restart_resumes(net, job_factory, reference_sha):
    figures = []
    for i in range(runs("lost")):
        job = job_factory(
            f"lost{i}", **{"preempt.peer_timeout_seconds": PEER_TIMEOUT_S, "checkpoint.keep_last": 100}
        )
        launches = job.start(net.hosts[:2])
        got = _lost(job, net, launches, i, cut=False)
        got["bit_identical"] = _resume_to_the_end(job, net.hosts[:2], got["resume_at"], reference_sha)
        assert got["bit_identical"]
        figures.append(got)
    detect = [t for f in figures for t in f["detect_s"]]
    record("lost", {"runs": figures, "hangs": 0, "corrupt_loads": 0, "peer_timeout_s": PEER_TIMEOUT_S,
                    **summary(detect)})  # fmt: skip


@FULL_ONLY
def test_link_cut_both_sides_exit_142_and_a_restart_resumes(net, job_factory, reference_sha):
    figures = []
    for i in range(runs("cut")):
        job = job_factory(
            f"cut{i}", **{"preempt.peer_timeout_seconds": PEER_TIMEOUT_S, "checkpoint.keep_last": 100}
        )
        launches = job.start(net.hosts[:2])
        got = _lost(
            job, net, launches, i, cut=True
        )  # rank 0's host first: it loses the store's clients and S3
        got["bit_identical"] = _resume_to_the_end(job, net.hosts[:2], got["resume_at"], reference_sha)
        assert got["bit_identical"]
        figures.append(got)
    detect = [t for f in figures for t in f["detect_s"]]
    record("cut", {"runs": figures, "hangs": 0, "corrupt_loads": 0, "peer_timeout_s": PEER_TIMEOUT_S,
                   **summary(detect)})  # fmt: skip


def _stop(launches, at: int) -> int:
    wait_step(launches, at)
    launches[0].proc.send_signal(signal.SIGTERM)
    codes, hung = wait_all(launches)
    assert set(codes) == {143} and not hung, launches[0].stderr[-3000:]
    return events(launches[0].log, "preempted")[-1]["step"]


def _rescaled(launch, old: int, new: int, data: dict) -> str:
    want = (f"global batch changed since the checkpoint: {old} -> {new}; LR/warmup rescaled by schedule.scaling "
            f"(lr_rule=")  # fmt: skip
    (line,) = [x for x in launch.worker_log.splitlines() if want in x]
    assert line.endswith(
        f"sample position kept (epoch {data['epoch']}, sample {data['samples_in_epoch']} of the epoch)"
    )
    return line


@FULL_ONLY
def test_fewer_then_more_nodes_on_restart_rescale_lr_and_keep_the_sample_position(net, job_factory):
    job = job_factory("scale")
    first = _stop(job.start(net.hosts[:2]), 40)  # 2 hosts x 8 = 16
    data = latest_state(job)["data"]
    one = job.start(net.hosts[:1])  # 1 host x 8 = 8
    wait_step(one, first + 1)
    line_down = _rescaled(one[0], 16, 8, data)
    one[0].proc.send_signal(signal.SIGTERM)
    codes, hung = wait_all(one)
    assert codes == [143] and not hung
    second = events(one[0].log, "preempted")[-1]["step"]
    resumed = events(one[0].log, "resume")
    assert [(e["step"], e["batch_changed"]) for e in resumed[-1:]] == [(first, True)]
    data = latest_state(job)["data"]
    both = job.start(net.hosts[:2])
    codes, hung = wait_all(both)
    assert codes == [0, 0] and not hung, both[0].stderr[-3000:]
    line_up = _rescaled(both[0], 8, 16, data)
    assert [(e["step"], e["batch_changed"]) for e in events(both[0].log, "resume")][-1] == (second, True)
    assert events(both[0].log, "done")[-1]["step"] == 300
    record("scale", {"runs": [{"stops": [first, second], "down": line_down, "up": line_up}]})


@FULL_ONLY
def test_three_hosts_one_lost_every_survivor_exits_142_with_a_peer_lost_line(net, job_factory):
    """Rank 1's host of three is killed: rank 0 and rank 2 both stop with 142 (no hang) and say which peer
    they lost, and a restart of the three resumes from the last commit."""
    job = job_factory(
        "three", **{"preempt.peer_timeout_seconds": PEER_TIMEOUT_S, "checkpoint.keep_last": 100}
    )
    launches = job.start(net.hosts)
    wait_step(launches, 30)
    before = manifests(job)
    t0 = time.monotonic()
    kill_host(launches[1].host)
    codes, hung = wait_all(launches)
    assert not hung and codes[0] == 142 and codes[2] == 142, codes
    lost = f"rank 1 ({launches[1].host.ip}) lost: "
    named = {x.rank: x.lines("warmstart: peer-lost: rank ") for x in (launches[0], launches[2])}
    assert all(
        any(line.startswith(f"warmstart: peer-lost: {lost}") for line in v) for v in named.values()
    ), named
    after = manifests(job)
    assert all(after.get(step) == body for step, body in before.items())
    again = job.start(net.hosts)
    codes2, hung2 = wait_all(again)
    assert codes2 == [0, 0, 0] and not hung2, again[0].stderr[-3000:]
    assert [e["step"] for e in events(again[0].log, "resume")][-1] == max(after)
    record("three", {"runs": [{"victim_rank": 1, "codes": codes, "detect_s": [round(x.ended - t0, 1) for x in
                     (launches[0], launches[2])], "lines": {str(k): v[-1] for k, v in named.items()}}]})  # fmt: skip
