"""Test-only start-up hook: make one rank of a ``warmstart launch`` finish later than the others.

Tests put this folder first on the PYTHONPATH of the processes they start (``tests.signal_helpers.slow_rank_env``),
so Python imports it at start-up in the supervisor, the launcher and every rank. It does nothing unless
``WS_TEST_SLOW="<rank>@<where>=<until>[,...]"`` is set; then, in the rank whose ``PADDLE_TRAINER_ID`` is
``<rank>`` (``*``: any process, e.g. a plain ``warmstart train``), ``<where>`` first waits ``<until>``: a
number of seconds, or an absolute path (until that file exists, at most 600 s):

- ``exit``: interpreter shutdown (an ``atexit`` function registered before any other, so it runs last);
- ``package.module:function`` or ``package.module:Class.method``: that function, wrapped when its module is
  first imported (so nothing is imported here, and start-up stays as it is).

Each wait writes ``slow <rank> <where>`` to stderr (the rank's worker log) and to ``$WS_TEST_SLOW_LOG``
(if set) when it starts, and ``slow <rank> <where> done`` when it ends.
"""

from __future__ import annotations

import atexit
import functools
import importlib.abc
import importlib.machinery
import os
import sys
import time

SPEC = os.environ.get("WS_TEST_SLOW", "")


def _say(line: str) -> None:
    sys.stderr.write(line)
    sys.stderr.flush()
    also = os.environ.get("WS_TEST_SLOW_LOG")
    if also:
        with open(also, "a", encoding="utf-8") as f:
            f.write(line)


def _wait(where: str, until: str) -> None:
    rank = os.environ.get("PADDLE_TRAINER_ID", "*")
    _say(f"slow {rank} {where}\n")
    if until.startswith("/"):  # a file the test creates
        deadline = time.monotonic() + 600
        while not os.path.exists(until) and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        time.sleep(float(until))
    _say(f"slow {rank} {where} done\n")  # not reached if a signal ended the process meanwhile


def _wrap(owner: object, name: str, where: str, until: str) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def slow(*args: object, **kwargs: object) -> object:
        _wait(where, until)
        return original(*args, **kwargs)

    setattr(owner, name, slow)


class _Patcher(importlib.abc.MetaPathFinder):
    def __init__(self, module: str, attr: str, where: str, until: str) -> None:
        self.module, self.attr, self.where, self.until = module, attr, where, until

    def find_spec(self, fullname: str, path: object, target: object = None) -> object:
        if fullname != self.module:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module: object) -> None:
            run(module)
            *owner_path, name = self.attr.split(".")
            owner = module
            for part in owner_path:
                owner = getattr(owner, part)
            _wrap(owner, name, self.where, self.until)

        spec.loader.exec_module = exec_module
        return spec


def _install(spec: str) -> None:
    rank, _, rest = spec.partition("@")
    where, _, until = rest.rpartition("=")
    if rank != "*" and os.environ.get("PADDLE_TRAINER_ID") != rank:
        return
    if where == "exit":
        atexit.register(_wait, where, until)
        return
    module, _, attr = where.partition(":")
    sys.meta_path.insert(0, _Patcher(module, attr, where, until))


for _spec in filter(None, SPEC.split(",")):
    _install(_spec)
