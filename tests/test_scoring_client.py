"""The scoring client against a real loopback HTTP server that answers like a service or a cloud front end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from deploy.base import ARTIFACTS_ENV, PROJECT_ROOT, ConfigError, Deployment
from steps.scoring_client import DESCRIPTION_CHARS, REDACTED, ScoringClient, ScoringUnreachable, parse_reply

KEY_ENV = "SCORING_CLIENT_TEST_KEY"
SECRET = "s3cr3t-key-never-printed"

BAD_GATEWAY_PAGE = b"""<html>
<head><title>502 Bad Gateway</title></head>
<body><center><h1>502 Bad Gateway</h1></center></body>
</html>
"""
FORECAST = {"result": [1.5, 2.5], "horizon": 2}
REFUSAL = {"error": {"field": "horizon", "message": "must be >= 1"}}


class Handler(BaseHTTPRequestHandler):
    """Answers by path: what a scoring service, its health route and a failing front end send back."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the test asserts on replies, not logs
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.seen.append({"method": "GET", "path": self.path, "auth": self.headers.get("Authorization")})
        if self.path == "/":
            self._send(200, b"Healthy", "text/plain")
        elif self.path.startswith("/swagger.json"):
            self._send(200, json.dumps({"openapi": "3.1.0"}).encode(), "application/json")
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.seen.append(
            {
                "method": "POST",
                "path": self.path,
                "auth": self.headers.get("Authorization"),
                "content_type": self.headers.get("Content-Type"),
                "body": body,
            }
        )
        if self.path == "/score":
            self._send(200, json.dumps(FORECAST).encode(), "application/json")
        elif self.path == "/bad-gateway":
            self._send(502, BAD_GATEWAY_PAGE, "text/html")
        elif self.path == "/timeout-page":
            self._send(504, b"\n\n  upstream request timeout\nsecond line\n", "text/plain")
        elif self.path == "/empty":
            self._send(503, b"", "text/plain")
        elif self.path == "/refused":
            self._send(400, json.dumps(REFUSAL).encode(), "application/json")
        elif self.path == "/echo-auth":  # a front end whose 500 page repeats the request's headers
            echoed = self.headers.get("Authorization", "")
            page = f"<html><body><h1>500 Internal Server Error</h1> header {echoed}</body></html>\n"
            self._send(500, page.encode(), "text/html")
        elif self.path == "/echo-auth-json":
            echoed = self.headers.get("Authorization", "")
            self._send(500, json.dumps({"message": f"bad header {echoed}"}).encode(), "application/json")
        elif self.path == "/auth":
            ok = self.headers.get("Authorization") == f"Bearer {SECRET}"
            self._send(200 if ok else 401, b'{"ok": true}' if ok else b"Unauthorized", "text/plain")
        else:
            self._send(404, b"not found", "text/plain")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _forget_requests() -> None:
    Handler.seen.clear()


def deployment_at(base: str, path: str = "/score", *, auth: bool = False) -> Deployment:
    return Deployment(
        target="attach",
        name="loopback-test",
        scoring_uri=f"{base}{path}",
        health_uri=f"{base}/",
        swagger_uri=f"{base}/swagger.json?version=3.1",
        auth=auth,
        key_env=KEY_ENV if auth else None,
        model={},
    )


def test_json_reply_is_parsed(server: str) -> None:
    with ScoringClient(deployment_at(server)) as client:
        reply = client.post({"horizon": 2})
    assert reply.status == 200
    assert reply.json == FORECAST
    assert reply.is_json
    assert reply.content_type == "application/json"
    assert Handler.seen[-1]["body"] == b'{"horizon": 2}'
    assert Handler.seen[-1]["content_type"] == "application/json"


def test_html_502_described_by_first_line(server: str) -> None:
    with ScoringClient(deployment_at(server, "/bad-gateway")) as client:
        reply = client.post({"horizon": 2})
    assert reply.status == 502
    assert reply.json is None
    assert not reply.is_json
    assert reply.description == "HTTP 502: 502 Bad Gateway"


def test_text_504_described_by_first_line(server: str) -> None:
    with ScoringClient(deployment_at(server, "/timeout-page")) as client:
        reply = client.post({"horizon": 2})
    assert reply.description == "HTTP 504: upstream request timeout"


def test_empty_body_is_described(server: str) -> None:
    with ScoringClient(deployment_at(server, "/empty")) as client:
        reply = client.post({"horizon": 2})
    assert (reply.status, reply.json, reply.is_json) == (503, None, False)
    assert reply.description == "HTTP 503: (empty body)"


def test_json_error_described_compactly(server: str) -> None:
    with ScoringClient(deployment_at(server, "/refused")) as client:
        reply = client.post({"horizon": 0})
    assert reply.json == REFUSAL
    assert reply.description == 'HTTP 400: {"error":{"field":"horizon","message":"must be >= 1"}}'


def test_raw_bytes_sent_unchanged(server: str) -> None:
    with ScoringClient(deployment_at(server)) as client:
        client.post(raw=b"horizon=3", content_type="text/plain")
    assert Handler.seen[-1]["body"] == b"horizon=3"
    assert Handler.seen[-1]["content_type"] == "text/plain"


def test_health_and_swagger_routes(server: str) -> None:
    with ScoringClient(deployment_at(server)) as client:
        health, swagger = client.health(), client.swagger()
    assert (health.status, health.text, health.is_json) == (200, "Healthy", False)
    assert swagger.json == {"openapi": "3.1.0"}
    assert [r["path"] for r in Handler.seen] == ["/", "/swagger.json?version=3.1"]


def test_no_auth_header_when_auth_off(server: str) -> None:
    with ScoringClient(deployment_at(server)) as client:
        client.post({"horizon": 1})
    assert Handler.seen[-1]["auth"] is None


def test_bearer_key_sent_when_auth_on(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    with ScoringClient(deployment_at(server, "/auth", auth=True)) as client:
        accepted = client.post({"horizon": 1})
        anonymous = client.post({"horizon": 1}, key=None)
        wrong = client.post({"horizon": 1}, key="not-the-key")
    assert [accepted.status, anonymous.status, wrong.status] == [200, 401, 401]
    assert [r["auth"] for r in Handler.seen] == [f"Bearer {SECRET}", None, "Bearer not-the-key"]
    assert SECRET not in accepted.description + anonymous.description + wrong.description


@pytest.mark.parametrize("path", ["/echo-auth", "/echo-auth-json"])
def test_key_echoed_by_an_error_page_is_redacted(server: str, monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    with ScoringClient(deployment_at(server, path, auth=True)) as client:
        own = client.post({"horizon": 1})
        other = client.post({"horizon": 1}, key="another-key/with+slash=")
    assert [r["auth"] for r in Handler.seen] == [f"Bearer {SECRET}", "Bearer another-key/with+slash="]
    for reply in (own, other):
        shown = reply.text + reply.summary + reply.description + json.dumps(reply.json)
        assert SECRET not in shown and "another-key" not in shown
        assert f"header Bearer {REDACTED}" in reply.description
    assert own.description.startswith("HTTP 500: ")


def test_missing_key_names_variable_not_value(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with ScoringClient(deployment_at(server, "/auth", auth=True)) as client, pytest.raises(ConfigError) as caught:
        client.post({"horizon": 1})
    assert f"${KEY_ENV}" in str(caught.value)
    assert Handler.seen == []


def test_refused_connection_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # A port nothing listens on: bind one, then close it before connecting.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(KEY_ENV, SECRET)
    client = ScoringClient(deployment_at(f"http://127.0.0.1:{port}", auth=True))
    with client, pytest.raises(ScoringUnreachable) as caught:
        client.post({"horizon": 1})
    message = str(caught.value)
    assert message.startswith(f"POST http://127.0.0.1:{port}/score: could not connect")
    assert "\n" not in message
    assert SECRET not in message


def test_missing_swagger_uri_is_explained(server: str) -> None:
    deployment = deployment_at(server)
    deployment.swagger_uri = None
    with ScoringClient(deployment) as client, pytest.raises(ScoringUnreachable, match="no swagger_uri"):
        client.swagger()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"x" * 500, "HTTP 500: " + "x" * (DESCRIPTION_CHARS - 3) + "..."),
        (b"<!DOCTYPE html>\n<p>Service&nbsp;Unavailable</p>", "HTTP 500: Service Unavailable"),
        (b"\xff\xfe not utf-8", "HTTP 500: \ufffd\ufffd not utf-8"),
        (b"null", "HTTP 500: null"),
    ],
    ids=["long-text-truncated", "html-entities-decoded", "bad-utf8-replaced", "json-null"],
)
def test_description_of_odd_bodies(content: bytes, expected: str) -> None:
    assert parse_reply(500, {"Content-Type": "text/html"}, content).description == expected


def test_model_dir_without_a_card_is_a_usage_error(tmp_path: Path) -> None:
    # The verify stage's option check (conftest.py): it runs before any deployment is started or reached.
    empty = tmp_path / "no-model"
    empty.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "steps", "-q", "-p", "no:cacheprovider", "--model-dir", str(empty)],
        cwd=PROJECT_ROOT,
        env={**os.environ, ARTIFACTS_ENV: str(tmp_path / "artifacts")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert done.stderr.strip() == f"ERROR: --model-dir {empty} holds no model.json; pass the folder " + (
        "`python -m service.build` wrote"
    )
    assert "passed" not in done.stdout and "skipped" not in done.stdout
