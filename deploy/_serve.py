"""Run azmlinfsrv bound to loopback only: `python -m deploy._serve --entry_script score.py --port 40123`."""

from __future__ import annotations

from azureml_inference_server_http import amlserver

LOOPBACK = "127.0.0.1"


def main() -> None:
    """Start the real azmlinfsrv code path with only the bind address changed."""
    # HACK: azmlinfsrv 1.5.1 always binds DEFAULT_HOST (0.0.0.0) and has no flag to change it; a local release
    # gate must not expose the model beyond loopback. amlserver.run() reads this module global at call time.
    # Remove this launcher once azmlinfsrv accepts a host option (then call `azmlinfsrv --host 127.0.0.1`).
    amlserver.DEFAULT_HOST = LOOPBACK
    amlserver.run()


if __name__ == "__main__":
    main()
