"""Remove credentials from URLs before they are logged, printed, put in an error message or recorded.

One rule for every output: the userinfo of a URL (``http://user:pass@host`` -> ``http://***@host``) and
the values of secret-looking query parameters (presigned-URL signatures, tokens, keys, passwords) are
replaced by ``***``. :func:`redact_text` finds URLs inside free text (error lines, log messages,
tracebacks); :func:`redact_data` applies it to every string of a config dump or a lineage record.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
from typing import Any

__all__ = [
    "MASK",
    "SECRET_PARAMS",
    "redact_url",
    "redact_text",
    "redact_data",
    "has_credentials",
    "RedactingFormatter",
    "install",
]

MASK = "***"

#: Query parameter names (compared lower-case) whose values are secrets. Names that merely *contain*
#: one of :data:`_SECRET_WORDS` (``x-amz-security-token``, ``client_secret``, ``api_key``) count too.
SECRET_PARAMS = frozenset(
    {
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "signature",
        "ossaccesskeyid",
        "awsaccesskeyid",
        "security-token",
        "token",
        "access_token",
        "sig",
        "password",
        "passwd",
        "pwd",
        "secret",
        "key",
        "code",
        "auth",
        "authorization",
        "credential",
        "credentials",
    }
)
_SECRET_WORDS = ("token", "secret", "password", "passwd", "signature", "credential", "apikey", "api_key")

# scheme://[userinfo@]rest -- stops at whitespace and at quotes/brackets that usually end a URL in text.
_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^\s'\"<>`]*)")
# A query parameter inside the URL: name=value, up to the next & ; # or the end of the URL.
_PARAM = re.compile(r"([?&;])([^=&;#]+)=([^&;#]*)")


def _secret_name(name: str) -> bool:
    low = name.strip().lower()
    return low in SECRET_PARAMS or any(word in low for word in _SECRET_WORDS)


def _redact_params(rest: str) -> str:
    def mask(match: re.Match[str]) -> str:
        sep, name, value = match.groups()
        return f"{sep}{name}={MASK}" if value and _secret_name(name) else match.group(0)

    return _PARAM.sub(mask, rest)


def _redact_rest(rest: str) -> str:
    """``rest`` is everything after ``scheme://``: drop the userinfo, then mask secret parameters."""
    authority_end = len(rest)
    for stop in "/?#":
        pos = rest.find(stop)
        if pos != -1:
            authority_end = min(authority_end, pos)
    authority = rest[:authority_end]
    if "@" in authority:
        authority = MASK + "@" + authority.rsplit("@", 1)[1]
    return authority + _redact_params(rest[authority_end:])


def redact_url(url: str) -> str:
    """``url`` without userinfo and secret query values; text that is not a URL comes back unchanged."""
    return redact_text(url)


def redact_text(text: str) -> str:
    """Redact every URL found in ``text`` (also a bare ``user:pass@host`` endpoint)."""
    if "://" in text:
        text = _URL.sub(lambda m: m.group(1) + _redact_rest(m.group(2)), text)
    return _BARE.sub(MASK + "@", text) if "@" in text else text


# A scheme-less endpoint such as ``admin:pass@host:9000`` (botocore names it in its error).
_BARE = re.compile(r"(?<![\w/@:.%*-])[^\s/@:'\"<>`]+:[^\s/@'\"<>`]+@")


def redact_data(value: Any) -> Any:
    """A copy of plain data (dicts, lists, scalars) with every string passed through :func:`redact_text`."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {redact_text(k) if isinstance(k, str) else k: redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v) for v in value]
    return value


def has_credentials(url: str) -> bool:
    """True when ``url`` carries userinfo or a secret-looking query parameter."""
    return redact_text(url) != url


class RedactingFormatter(logging.Formatter):
    """A formatter whose whole output (message, arguments, traceback) is redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def _redacting_excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    """Print an unexpected error's traceback (exit 1, a bug) with URLs redacted."""
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    sys.stderr.write(redact_text(text))
    sys.stderr.flush()


def _redacting_thread_hook(args: threading.ExceptHookArgs) -> None:
    """An uncaught error in a background thread: its traceback, redacted."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "a thread"
    sys.stderr.write(f"Exception in thread {name}:\n")
    _redacting_excepthook(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)


_base_factory = logging.getLogRecordFactory()


def _redacting_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Every log record's message is redacted when it is created, whichever handler later writes it."""
    record = _base_factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format string is logging's to report, as usual
        return record
    redacted = redact_text(message)
    if redacted != message:
        record.msg, record.args = redacted, ()
    if record.exc_info and record.exc_info[0] is not None:  # formatters reuse a cached exc_text
        record.exc_text = redact_text(_PLAIN.formatException(record.exc_info))
    return record


_PLAIN = logging.Formatter()


def install() -> None:
    """Redact every log record (any logger, any handler, e.g. ones a library adds later), the root
    handlers' output including tracebacks, and tracebacks of uncaught errors."""
    logging.setLogRecordFactory(_redacting_record)
    for handler in logging.getLogger().handlers:
        current = handler.formatter or logging.Formatter()
        formatter = RedactingFormatter(current._fmt, current.datefmt)  # noqa: SLF001 (copy its format)
        handler.setFormatter(formatter)
    sys.excepthook = _redacting_excepthook
    threading.excepthook = _redacting_thread_hook
