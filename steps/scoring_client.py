"""A small HTTP client for a deployed scoring service: score, health and swagger, never leaking the key."""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import requests
import requests.auth

from deploy.base import ConfigError, Deployment

log = logging.getLogger(__name__)

# Connecting to a healthy service takes milliseconds; 5 s only covers a cold cloud front end.
CONNECT_TIMEOUT_S: Final = 5.0
# The longest horizon forecasts in well under a second locally; ACI cold starts can take tens of seconds.
READ_TIMEOUT_S: Final = 60.0
# Long enough to read an error page's first line, short enough for one line in a report.
DESCRIPTION_CHARS: Final = 200
# What a secret echoed back by a server (e.g. an error page repeating the Authorization header) becomes.
REDACTED: Final = "***"

_TAG = re.compile(r"<[^>]*>")


class _UseDeploymentKey:
    """Sentinel: send the deployment's own key (when auth is on)."""

    def __repr__(self) -> str:
        return "DEPLOYMENT_KEY"


DEPLOYMENT_KEY: Final = _UseDeploymentKey()


class _Bearer(requests.auth.AuthBase):
    """Adds `Authorization: Bearer <key>`; its repr hides the key, so tracebacks with locals stay clean."""

    def __init__(self, key: str) -> None:
        self._key = key

    @property
    def key(self) -> str:
        """The key this header sends (for redacting it from replies)."""
        return self._key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._key}"
        return request

    def __repr__(self) -> str:
        return "<Bearer key hidden>"


class ScoringUnreachable(Exception):
    """No HTTP answer at all (refused, timed out, reset); the message says where and what to try."""


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, headers, the body parsed as JSON (or None) and its raw text."""

    status: int
    headers: Mapping[str, str]
    text: str
    json: Any = field(default=None)
    is_json: bool = False

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower case ('' when absent)."""
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    @property
    def description(self) -> str:
        """'HTTP 502: <first line of body>' — safe to print for any body, JSON or an HTML error page."""
        return f"HTTP {self.status}: {self.summary}"

    @property
    def summary(self) -> str:
        """The body shortened to one line: compact JSON, or the first line of text with HTML tags removed."""
        line = json.dumps(self.json, separators=(",", ":")) if self.is_json else _first_text_line(self.text)
        if len(line) > DESCRIPTION_CHARS:
            line = line[: DESCRIPTION_CHARS - 3] + "..."
        return line


def _first_text_line(text: str) -> str:
    """The first non-blank line of a body, with HTML tags stripped (front ends answer 502/504 with a page)."""
    looks_like_html = text.lstrip()[:1] == "<"
    for raw_line in text.splitlines():
        line = html.unescape(_TAG.sub(" ", raw_line)) if looks_like_html else raw_line
        line = " ".join(line.split())
        if line:
            return line
    return "(empty body)"


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by REDACTED, as written and as JSON (or JSON with escaped '/') writes it."""
    for secret in secrets:
        if not secret:
            continue
        escaped = json.dumps(secret)[1:-1]
        for form in sorted({secret, escaped, escaped.replace("/", "\\/")}, key=len, reverse=True):
            text = text.replace(form, REDACTED)
    return text


def parse_reply(status: int, headers: Mapping[str, str], content: bytes, *, secrets: Iterable[str] = ()) -> Reply:
    """Build a Reply from raw parts, secrets redacted; a body that is not JSON gives json=None, never an exception."""
    secrets = tuple(secrets)
    text = redact(content.decode("utf-8", errors="replace"), secrets)
    headers = {name: redact(value, secrets) for name, value in headers.items()}
    try:
        parsed = json.loads(text) if text.strip() else None
        is_json = bool(text.strip())
    except ValueError:
        parsed, is_json = None, False
    return Reply(status=status, headers=dict(headers), text=text, json=parsed, is_json=is_json)


class ScoringClient:
    """Calls one deployment: `post()` to score, `health()`, `swagger()`; the key goes only into the header."""

    def __init__(
        self,
        deployment: Deployment,
        *,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        read_timeout: float = READ_TIMEOUT_S,
    ) -> None:
        self.deployment = deployment
        self._timeout = (connect_timeout, read_timeout)
        self._session = requests.Session()
        # Never pick up proxies or .netrc credentials from the environment: traffic goes only where told.
        self._session.trust_env = False

    def close(self) -> None:
        """Release pooled connections."""
        self._session.close()

    def __enter__(self) -> ScoringClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def post(
        self,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
        key: str | _UseDeploymentKey | None = DEPLOYMENT_KEY,
    ) -> Reply:
        """POST to the scoring URI: `body` is sent as JSON, or `raw` bytes as they are.

        `key` defaults to the deployment's key; pass None to send no Authorization header,
        or another string to send that key instead.
        """
        data = raw if raw is not None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": content_type}
        return self._call("POST", self.deployment.scoring_uri, data=data, headers=headers, auth=self._bearer(key))

    def health(self) -> Reply:
        """GET the health route."""
        return self._call("GET", self.deployment.health_uri, auth=self._bearer(DEPLOYMENT_KEY))

    def swagger(self) -> Reply:
        """GET the published swagger (OpenAPI) document."""
        if not self.deployment.swagger_uri:
            raise ScoringUnreachable(
                f"deployment {self.deployment.name!r} records no swagger_uri; redeploy, or pass --scoring-uri "
                "so the swagger route is derived from it"
            )
        return self._call("GET", self.deployment.swagger_uri, auth=self._bearer(DEPLOYMENT_KEY))

    def _bearer(self, key: str | _UseDeploymentKey | None) -> _Bearer | None:
        value = self.deployment.key() if isinstance(key, _UseDeploymentKey) else key
        return _Bearer(value) if value else None

    def _secrets(self, auth: _Bearer | None) -> tuple[str, ...]:
        """The keys a reply must never show: the one just sent and the deployment's own."""
        sent = [auth.key] if auth else []
        try:
            own = self.deployment.key()
        except ConfigError:  # auth on but no key set: nothing of it can have been sent
            own = None
        return tuple(key for key in (*sent, own) if key)

    def _call(
        self,
        method: str,
        url: str,
        *,
        auth: _Bearer | None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> Reply:
        log.debug("%s %s", method, url)
        try:
            response = self._session.request(
                method, url, data=data, headers=headers, auth=auth, timeout=self._timeout, allow_redirects=False
            )
        except requests.Timeout:
            raise ScoringUnreachable(
                f"{method} {url}: no answer within {self._timeout[1]:.0f} s; check the service is up "
                "(`python -m deploy describe`) and its log"
            ) from None
        except requests.ConnectionError as exc:
            reason = type(exc).__name__
            raise ScoringUnreachable(
                f"{method} {url}: could not connect ({reason}); check the service is running "
                "(`python -m deploy describe`) or redeploy"
            ) from None
        # A front end may echo the Authorization header in an error page: no key reaches a description or log.
        reply = parse_reply(response.status_code, response.headers, response.content, secrets=self._secrets(auth))
        log.debug("%s %s -> %s", method, url, reply.status)
        return reply
