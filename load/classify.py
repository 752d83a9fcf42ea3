"""Error kinds of a scoring request and the checks that turn a 200 into a failure (no Locust import here)."""

from __future__ import annotations

import json
from typing import Any

# Error kinds, in the order reports list them.
HTTP_4XX, HTTP_5XX, TIMEOUT, CONNECTION, NON_JSON, BAD_BODY, OTHER = (
    "4xx",
    "5xx",
    "timeout",
    "connection",
    "non_json",
    "bad_body",
    "other",
)
KINDS = (HTTP_4XX, HTTP_5XX, TIMEOUT, CONNECTION, NON_JSON, BAD_BODY, OTHER)
FIRST_LINE_CHARS = 120  # enough to recognise an HTML error page or a JSON error message; short in tables
# Exception class names (anywhere in the MRO) from gevent / geventhttpclient, matched by name so this module
# never imports them (importing gevent outside the Locust process would monkey-patch nothing but cost time).
TIMEOUT_NAMES = frozenset({"Timeout", "TimeoutError", "timeout"})
CONNECTION_NAMES = frozenset({"ConnectionError", "HTTPParseError", "HTTPConnectionClosed", "EmptyResponse"})


class BodyError(Exception):
    """A response the service answered but that a caller could not use."""

    kind = OTHER


class NonJsonBody(BodyError):
    """The body is not JSON (an HTML error page from a front end, a truncated answer)."""

    kind = NON_JSON


class BadBody(BodyError):
    """JSON, but without a `result` list of the asked length."""

    kind = BAD_BODY


class BadStatus(BodyError):
    """A status other than 200; the kind follows the status class."""

    def __init__(self, status: int, message: str) -> None:
        """A status and the failure text (status + first line of the body)."""
        super().__init__(message)
        self.status = status
        self.kind = status_kind(status)


def status_kind(status: int) -> str:
    """The error kind of an HTTP status that is not 200."""
    if 400 <= status < 500:
        return HTTP_4XX
    if status >= 500:
        return HTTP_5XX
    return OTHER


def first_line(body: bytes | None, *, secret: str | None = None) -> str:
    """The first non-empty line of a body, shortened, with the secret (if any) blanked out."""
    text = (body or b"").decode("utf-8", errors="replace").strip()
    line = text.splitlines()[0].strip() if text else "(empty body)"
    if secret:
        line = line.replace(secret, "***")
    return line if len(line) <= FIRST_LINE_CHARS else line[: FIRST_LINE_CHARS - 1] + "…"


def check_answer(status: int, body: bytes | None, horizon: int, *, secret: str | None = None) -> BodyError | None:
    """None when a scoring answer is usable, else the failure to report (status + first line, never the key)."""
    if status != 200:
        return BadStatus(status, f"HTTP {status}: {first_line(body, secret=secret)}")
    try:
        answer: Any = json.loads(body or b"")
    except ValueError:
        return NonJsonBody(f"HTTP 200 with a non-JSON body: {first_line(body, secret=secret)}")
    if not isinstance(answer, dict) or "result" not in answer:
        return BadBody(f"HTTP 200 without 'result': {first_line(body, secret=secret)}")
    result = answer["result"]
    if not isinstance(result, list) or len(result) != horizon:
        got = f"{len(result)} values" if isinstance(result, list) else type(result).__name__
        return BadBody(f"HTTP 200 with 'result' of {got}, expected {horizon} values")
    return None


def _names(exc: BaseException) -> set[str]:
    """Class names along an exception's MRO."""
    return {cls.__name__ for cls in type(exc).__mro__}


def classify(status: int, exc: BaseException | None) -> str | None:
    """The error kind of a finished request (None when it succeeded)."""
    if exc is None:
        return None
    if isinstance(exc, BodyError):
        return exc.kind
    if status >= 400:
        return status_kind(status)
    # geventhttpclient wraps the last error of a request it would not retry (POST) as `original`.
    cause = getattr(exc, "original", None)
    cause = cause if isinstance(cause, BaseException) else exc
    names = _names(cause)
    if names & TIMEOUT_NAMES or "timed out" in str(cause):
        return TIMEOUT
    if isinstance(cause, OSError) or names & CONNECTION_NAMES:
        return CONNECTION
    return OTHER


def describe(exc: BaseException | None, *, secret: str | None = None) -> str:
    """A one-line description of a failure for the error examples in results.json."""
    if exc is None:
        return ""
    cause = getattr(exc, "original", None)
    shown = cause if isinstance(cause, BaseException) else exc
    text = str(shown).splitlines()[0] if str(shown) else type(shown).__name__
    if not isinstance(shown, BodyError):
        text = f"{type(shown).__name__}: {text}"
    if secret:
        text = text.replace(secret, "***")
    return text if len(text) <= FIRST_LINE_CHARS * 2 else text[: FIRST_LINE_CHARS * 2 - 1] + "…"
