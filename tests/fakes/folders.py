"""What the Azure target tests share: a model and service folder to deploy, and a CLI run's outcome."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

MODEL = {"name": "demand-forecast", "version": "abc123def456"}


@dataclass
class Result:
    """One in-process `python -m deploy` run: exit code, stdout, stderr and the log records."""

    code: int
    out: str
    err: str
    logs: str

    @property
    def last_line(self) -> str:
        lines = self.err.strip().splitlines()
        return lines[-1] if lines else ""


def make_folders(root: Path, *, requirements: str) -> tuple[Path, Path]:
    """A model folder (model.json + a stand-in model.pkl) and a service folder with a trivial entry script."""
    model, service = root / "model", root / "service"
    model.mkdir()
    service.mkdir()
    (model / "model.pkl").write_bytes(b"not really a pickle")
    (model / "model.json").write_text(json.dumps(MODEL))
    (service / "score.py").write_text("def init():\n    pass\n\n\ndef run(raw):\n    return {}\n")
    (service / "requirements.txt").write_text(requirements)
    return model, service
