"""Shared fixtures of the suite's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest

# --- build stage (service/build.py): the default model, built once per session -----------------------------


@pytest.fixture(scope="session")
def default_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with model.pkl and model.json built from the bundled wine sales (takes several seconds)."""
    from service import build

    out = tmp_path_factory.mktemp("default-model")
    code = build.main(["--out", str(out)])
    assert code == 0, f"python -m service.build --out {out} exited {code}"
    return out
