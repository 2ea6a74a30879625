"""Watch a cloud's instance metadata for a spot/preemptible termination notice.

A :class:`SpotWatcher` is a daemon thread that polls one provider's metadata endpoint every
``interval_s`` and calls ``on_notice(reason)`` once when the instance is scheduled to go away; the trainer
then takes the same save-and-exit path as for SIGTERM. Provider formats:

- ``aws`` (IMDSv2): ``PUT /latest/api/token`` (TTL header) gives a session token; then
  ``GET /latest/meta-data/spot/instance-action`` with the token is 404 until a notice is set, then 200
  with ``{"action": "terminate"|"stop"|"hibernate", "time": "...Z"}``.
- ``gcp``: ``GET /computeMetadata/v1/instance/preempted`` with ``Metadata-Flavor: Google`` is ``TRUE``
  or ``FALSE``.
- ``alibaba``: ``GET /latest/meta-data/instance/spot/termination-time`` is 404 until scheduled, then 200
  with a UTC time such as ``2026-11-23T20:00:00Z``.

An unreachable endpoint (a laptop, a non-cloud machine) is expected: it is logged at DEBUG when the
problem first appears or changes, never once per poll, and polling continues. Answers that are neither
"no notice" nor a well-formed notice are logged once as warnings and never trigger a preemption, so a
misconfigured endpoint cannot make every restart exit at once. Nothing a probe raises ends the thread
(a malformed HTTP answer raises ``http.client.HTTPException``, which is not an ``OSError``), and
:class:`SpotKeeper`, checked by the training loop every step, restarts a watcher that ended anyway.
The watcher thread holds SIGTERM/SIGINT so that the main thread, where Python runs handlers, gets them.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime

from app.config.schema import SpotConfig
from app.errors import ConfigError

__all__ = [
    "DEFAULT_ENDPOINTS",
    "Probe",
    "AwsProbe",
    "GcpProbe",
    "AlibabaProbe",
    "ProbeProblem",
    "SpotWatcher",
    "SpotKeeper",
    "make_probe",
    "start_spot_watcher",
]

log = logging.getLogger(__name__)

DEFAULT_ENDPOINTS: dict[str, str] = {
    "aws": "http://169.254.169.254",
    "gcp": "http://metadata.google.internal",
    "alibaba": "http://100.100.100.200",
}

#: Per-request timeout. Metadata services answer in milliseconds; a silent address means "not on that cloud".
REQUEST_TIMEOUT_S = 2.0
AWS_TOKEN_TTL_S = 21600
# Renew the IMDSv2 token this long before it expires, so a poll never uses a token at its deadline.
_AWS_TOKEN_MARGIN_S = 60.0

# Metadata services are link-local: never send these requests through an HTTP(S)_PROXY from the env.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ProbeProblem(Exception):
    """The endpoint answered, but not in the provider's format (wrong status, body or headers)."""


def _request(method: str, url: str, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    """Return ``(status, body)``; HTTP error statuses are returned, connection failures raise OSError."""
    req = urllib.request.Request(url, method=method, headers=headers, data=b"" if method == "PUT" else None)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.read(4096).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(4096).decode("utf-8", "replace")


class Probe:
    """One provider's check: ``check()`` returns a reason when a notice is set, else None."""

    provider = "none"

    def __init__(self, base: str, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout

    def check(self) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError


class AwsProbe(Probe):
    """EC2 IMDSv2: session token, then ``spot/instance-action``."""

    provider = "aws"

    def __init__(self, base: str, timeout: float = REQUEST_TIMEOUT_S) -> None:
        super().__init__(base, timeout)
        self._token: str | None = None
        self._token_deadline = 0.0

    def _fetch_token(self) -> str:
        url = f"{self.base}/latest/api/token"
        headers = {"X-aws-ec2-metadata-token-ttl-seconds": str(AWS_TOKEN_TTL_S)}
        status, body = _request("PUT", url, headers, self.timeout)
        if status != 200 or not body.strip():
            raise ProbeProblem(f"IMDSv2 token request {url} answered HTTP {status}")
        self._token = body.strip()
        self._token_deadline = time.monotonic() + AWS_TOKEN_TTL_S - _AWS_TOKEN_MARGIN_S
        return self._token

    def _token_now(self) -> str:
        if self._token is None or time.monotonic() >= self._token_deadline:
            return self._fetch_token()
        return self._token

    def _get_action(self, token: str) -> tuple[int, str]:
        url = f"{self.base}/latest/meta-data/spot/instance-action"
        return _request("GET", url, {"X-aws-ec2-metadata-token": token}, self.timeout)

    def check(self) -> str | None:
        status, body = self._get_action(self._token_now())
        if status == 401:  # token expired or revoked: one fresh token, one retry
            self._token = None
            status, body = self._get_action(self._token_now())
        if status == 404:
            return None
        if status != 200:
            raise ProbeProblem(f"spot/instance-action answered HTTP {status}")
        return self._parse_action(body)

    @staticmethod
    def _parse_action(body: str) -> str:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not data.get("action"):
            raise ProbeProblem(f"spot/instance-action answered 200 but not the expected JSON: {body[:80]!r}")
        return f"AWS spot instance-action: {data['action']} at {data.get('time', 'unknown time')}"


class GcpProbe(Probe):
    """GCE metadata ``instance/preempted`` (``TRUE``/``FALSE``)."""

    provider = "gcp"

    def check(self) -> str | None:
        url = f"{self.base}/computeMetadata/v1/instance/preempted"
        status, body = _request("GET", url, {"Metadata-Flavor": "Google"}, self.timeout)
        if status != 200:
            raise ProbeProblem(f"instance/preempted answered HTTP {status}")
        value = body.strip().upper()
        if value == "FALSE":
            return None
        if value == "TRUE":
            return "GCP instance preempted (metadata instance/preempted = TRUE)"
        raise ProbeProblem(f"instance/preempted answered {body[:80]!r}, expected TRUE or FALSE")


class AlibabaProbe(Probe):
    """Alibaba ECS ``instance/spot/termination-time`` (404 until a termination is scheduled)."""

    provider = "alibaba"

    def check(self) -> str | None:
        url = f"{self.base}/latest/meta-data/instance/spot/termination-time"
        status, body = _request("GET", url, {}, self.timeout)
        if status == 404:
            return None
        if status != 200:
            raise ProbeProblem(f"spot/termination-time answered HTTP {status}")
        when = body.strip()
        if not _is_timestamp(when):
            raise ProbeProblem(f"spot/termination-time answered {body[:80]!r}, not a UTC time")
        return f"Alibaba ECS spot termination-time: {when}"


def _is_timestamp(text: str) -> bool:
    # Python 3.10's fromisoformat does not accept a trailing "Z".
    try:
        datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return False
    return True


_PROBES: dict[str, type[Probe]] = {"aws": AwsProbe, "gcp": GcpProbe, "alibaba": AlibabaProbe}


def make_probe(provider: str, endpoint: str | None = None, timeout: float = REQUEST_TIMEOUT_S) -> Probe:
    """Build the probe for ``provider`` at ``endpoint`` (None = the provider's standard address)."""
    try:
        cls = _PROBES[provider]
    except KeyError:
        choices = ", ".join(sorted(_PROBES))
        raise ConfigError(f"preempt.spot.provider: unknown provider {provider!r}; one of {choices}") from None
    return cls(endpoint or DEFAULT_ENDPOINTS[provider], timeout)


class SpotWatcher(threading.Thread):
    """Daemon thread: poll ``probe`` every ``interval_s``; on a notice call ``on_notice`` once and stop."""

    def __init__(self, probe: Probe, interval_s: float, on_notice: Callable[[str], None]) -> None:
        super().__init__(name=f"spot-watcher-{probe.provider}", daemon=True)
        self.probe = probe
        self.interval_s = interval_s
        self.on_notice = on_notice
        self.notice: str | None = None
        self.polls = 0
        self._stop_event = threading.Event()
        self._last_problem: str | None = None

    def stop(self, timeout: float | None = 1.0) -> None:
        """Ask the thread to end and wait up to ``timeout`` seconds (a poll in flight may still finish)."""
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._stop_event.is_set()

    def run(self) -> None:
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGTERM, signal.SIGINT))
        while not self._stop_event.is_set():
            reason = self._poll_once()
            if reason is not None and not self._stop_event.is_set():
                self._fire(reason)
                return
            self._stop_event.wait(self.interval_s)

    def _poll_once(self) -> str | None:
        self.polls += 1
        try:
            reason = self.probe.check()
        except ProbeProblem as exc:
            self._note_problem(str(exc), logging.WARNING)
            return None
        except OSError as exc:  # URLError, timeouts, refused connections: not on this cloud, or a blip
            self._note_problem(f"{self.probe.base} unreachable ({_short(exc)})", logging.DEBUG)
            return None
        except Exception as exc:  # e.g. http.client.BadStatusLine from a garbled answer: keep polling
            self._note_problem(f"{self.probe.base} answered unreadably ({type(exc).__name__}: {exc})",
                               logging.WARNING)  # fmt: skip
            return None
        if self._last_problem is not None:
            log.debug("spot metadata (%s) reachable again", self.probe.provider)
            self._last_problem = None
        return reason

    def _note_problem(self, text: str, level: int) -> None:
        # Log when the problem first appears or changes, not on every poll.
        if text != self._last_problem:
            log.log(level, "spot notice check (%s): %s; still polling", self.probe.provider, text)
            self._last_problem = text

    def _fire(self, reason: str) -> None:
        self.notice = reason
        self._stop_event.set()
        log.warning("spot termination notice: %s", reason)
        try:
            self.on_notice(reason)
        except Exception:  # the callback's failure must not vanish silently in a daemon thread
            log.exception("spot notice callback failed")


class SpotKeeper:
    """Keeps one watcher polling and wired to ``on_notice`` for the whole run (:meth:`check` every step)."""

    def __init__(self, watcher: SpotWatcher, on_notice: Callable[[str], None]) -> None:
        self.watcher = watcher
        self.on_notice = on_notice
        self.restarts = 0

    def check(self) -> None:
        w = self.watcher
        if w.on_notice != self.on_notice:
            log.warning("spot watcher was no longer wired to the stop request; re-wired it")
            w.on_notice = self.on_notice
        if w.stopped or w.is_alive():  # stopped: it fired (or the run is ending) as it should
            return
        log.warning(
            "spot watcher thread had ended after %d polls without a notice; started a new one", w.polls
        )
        self.watcher = SpotWatcher(w.probe, w.interval_s, self.on_notice)
        self.watcher.start()
        self.restarts += 1

    def stop(self) -> None:
        self.watcher.stop()


def _short(exc: OSError) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason if reason is not None else exc) or type(exc).__name__


def start_spot_watcher(
    cfg: SpotConfig,
    on_notice: Callable[[str], None],
    timeout: float = REQUEST_TIMEOUT_S,
) -> SpotWatcher | None:
    """Start watching as configured; None when ``cfg.provider`` is ``"none"``."""
    if cfg.provider == "none":
        return None
    if not cfg.interval_s > 0:
        raise ConfigError(f"preempt.spot.interval_s: must be > 0, got {cfg.interval_s}")
    probe = make_probe(cfg.provider, cfg.endpoint, timeout)
    watcher = SpotWatcher(probe, cfg.interval_s, on_notice)
    watcher.start()
    log.info("watching for %s spot notices at %s every %gs", cfg.provider, probe.base, cfg.interval_s)
    return watcher
