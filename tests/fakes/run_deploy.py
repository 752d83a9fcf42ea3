"""`python -m deploy` with the aci and aks targets wired to a FakeAzure persisted in $FAKE_AZURE_STATE.

    FAKE_AZURE_STATE=/tmp/state.json python tests/fakes/run_deploy.py up --target aci ...

Lets a test run the real command line in its own process (real logging setup, real stdout/stderr) and keep
the fake workspace between calls, exactly as a pipeline runs one command per step.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import deploy.aci
import deploy.aks
from deploy.__main__ import main
from fakes.azureml_v1 import FakeAzure


def run(argv: list[str]) -> int:
    state = Path(os.environ["FAKE_AZURE_STATE"])
    azure = FakeAzure.load(state)
    deploy.aci.TARGET.sdk_factory = azure.sdk
    deploy.aks.TARGET.sdk_factory = azure.sdk
    try:
        return main(argv)
    finally:
        azure.save(state)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
