"""The attach target against real HTTP servers this test starts on loopback (and stops)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from deploy.__main__ import main

KEY = "attach-key-Qw8Er4Ty6"
SWAGGER = {"openapi": "3.1.0", "info": {"title": "forecast", "version": "1"}}


class Endpoint:
    """A loopback endpoint in azmlinfsrv's layout: GET / health, GET /swagger.json, POST /score."""

    def __init__(self, *, health_status: int = 200, swagger: bool = True) -> None:
        self.health_status, self.swagger = health_status, swagger
        self.seen: list[tuple[str, str | None]] = []  # (path, Authorization header)
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.seen.append((self.path, self.headers.get("Authorization")))
                if self.path == "/":
                    self.reply(endpoint.health_status, b"Healthy")
                elif self.path.startswith("/swagger.json") and endpoint.swagger:
                    self.reply(200, json.dumps(SWAGGER).encode())
                else:
                    self.reply(404, b"not found")

            def reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def scoring_uri(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/score"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def start_endpoint(request: pytest.FixtureRequest) -> Callable[..., Endpoint]:
    def start(**kwargs: Any) -> Endpoint:
        endpoint = Endpoint(**kwargs)
        endpoint.thread.start()
        request.addfinalizer(endpoint.stop)  # registered right after start
        return endpoint

    return start


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., tuple[int, str, str]]]:
    def call(*argv: str) -> tuple[int, str, str]:
        code = main([*argv, "--artifacts", str(tmp_path)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield call


def test_attach_writes_deployment_after_health(
    start_endpoint: Callable[..., Endpoint], run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCORING_KEY", KEY)
    endpoint = start_endpoint()
    code, out, err = run("up", "--target", "attach", "--scoring-uri", endpoint.scoring_uri, "--key-env", "SCORING_KEY")

    assert code == 0, err
    written = json.loads((tmp_path / "deployment.json").read_text())
    base = endpoint.scoring_uri.removesuffix("score")
    assert (written["target"], written["scoring_uri"], written["health_uri"]) == ("attach", endpoint.scoring_uri, base)
    assert written["swagger_uri"] == f"{base}swagger.json?version=3.1"
    assert (written["auth"], written["key_env"]) == (True, "SCORING_KEY")
    assert ("/", f"Bearer {KEY}") in endpoint.seen, "the health probe sends the key"
    assert KEY not in (tmp_path / "deployment.json").read_text() + out + err


def test_attach_without_key_or_swagger(start_endpoint: Callable[..., Endpoint], run: Any, tmp_path: Path) -> None:
    endpoint = start_endpoint(swagger=False)
    code, _, err = run("up", "--target", "attach", "--scoring-uri", endpoint.scoring_uri)

    assert code == 0, err
    written = json.loads((tmp_path / "deployment.json").read_text())
    assert (written["auth"], written["key_env"], written["swagger_uri"]) == (False, None, None)
    assert endpoint.seen[0] == ("/", None)


def test_attach_unhealthy_endpoint_fails(start_endpoint: Callable[..., Endpoint], run: Any, tmp_path: Path) -> None:
    endpoint = start_endpoint(health_status=401)
    code, _, err = run("up", "--target", "attach", "--scoring-uri", endpoint.scoring_uri)

    base = endpoint.scoring_uri.removesuffix("score")
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        f"deploy: failed: {base} answered 401, not 200; check the scoring URI and --key-env"
    )
    assert not (tmp_path / "deployment.json").exists()


def test_attach_server_error_retries_until_deadline(start_endpoint: Callable[..., Endpoint], run: Any) -> None:
    endpoint = start_endpoint(health_status=503)
    code, _, err = run("up", "--target", "attach", "--scoring-uri", endpoint.scoring_uri, "--timeout", "2")

    assert code == 1
    assert "not healthy within 2 s (last: HTTP 503); check that the endpoint runs" in err.strip().splitlines()[-1]
    assert len(endpoint.seen) >= 2, "a 5xx is retried within the deadline"


def test_attach_nothing_listening_fails(run: Any) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _, err = run("up", "--target", "attach", "--scoring-uri", f"http://127.0.0.1:{port}/score", "--timeout", "1")

    assert code == 1
    assert f"http://127.0.0.1:{port}/ not healthy within 1 s" in err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--scoring-uri", "ftp://127.0.0.1/score"), "--scoring-uri 'ftp://127.0.0.1/score' is not an http(s) URL"),
        (("--scoring-uri", "127.0.0.1:8080/score"), "is not an http(s) URL; pass the full scoring URI"),
        ((), "--target attach needs --scoring-uri URL"),
        (
            ("--scoring-uri", "http://127.0.0.1:9/score", "--key-env", "UNSET_KEY_FOR_TEST"),
            "$UNSET_KEY_FOR_TEST is empty or unset",
        ),
        (("--scoring-uri", "http://127.0.0.1:9/score", "--dry-run"), "--dry-run does not apply to --target attach"),
    ],
    ids=["ftp", "no-scheme", "no-uri", "key-unset", "dry-run"],
)
def test_attach_usage_errors_exit_2(run: Any, argv: tuple[str, ...], message: str) -> None:
    code, _, err = run("up", "--target", "attach", *argv)

    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deploy: error: ") and message in lines[0]


def test_attach_down_forgets_endpoint(start_endpoint: Callable[..., Endpoint], run: Any, tmp_path: Path) -> None:
    endpoint = start_endpoint()
    assert run("up", "--target", "attach", "--scoring-uri", endpoint.scoring_uri)[0] == 0
    code, out, _ = run("down")

    assert code == 0 and out.startswith("removed 127.0.0.1:")
    assert not (tmp_path / "deployment.json").exists()
    assert run("up", "--target", "attach", "--scoring-uri", endpoint.scoring_uri)[0] == 0, "the endpoint still runs"
