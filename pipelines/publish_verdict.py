"""Hand the judge's verdict to Azure Pipelines: an output variable for the promote condition, a run result.

    python pipelines/publish_verdict.py "$RELEASE_ARTIFACTS/decision.json"

Prints `##vso[task.setvariable variable=verdict;isOutput=true]<verdict>`; a `hold` marks the step
"succeeded with issues", a `reject` fails it (exit 1). A missing or unreadable decision is exit 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

VERDICTS = ("promote", "hold", "reject")
EXIT_OK, EXIT_REJECT, EXIT_USAGE = 0, 1, 2


def publish(path: Path) -> int:
    """Print the logging commands for the decision in `path`; return the step's exit code."""
    try:
        decision = json.loads(path.read_text())
        verdict = decision["verdict"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(
            f"publish_verdict: error: {path}: no readable verdict ({exc}); run `python -m load judge` first",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if verdict not in VERDICTS:
        print(
            f"publish_verdict: error: {path}: verdict {verdict!r} is not one of {', '.join(VERDICTS)}", file=sys.stderr
        )
        return EXIT_USAGE
    print(f"##vso[task.setvariable variable=verdict;isOutput=true]{verdict}")
    reasons = "; ".join(str(reason) for reason in decision.get("reasons") or []) or "no reasons given"
    if verdict == "hold":
        print(f"##vso[task.logissue type=warning]hold: {reasons}")
        print("##vso[task.complete result=SucceededWithIssues;]the judge says hold: not promoted")
    elif verdict == "reject":
        print(f"##vso[task.logissue type=error]reject: {reasons}")
        return EXIT_REJECT
    print(f"verdict: {verdict}")
    return EXIT_OK


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("publish_verdict: error: usage: python pipelines/publish_verdict.py DECISION_JSON", file=sys.stderr)
        return EXIT_USAGE
    return publish(Path(argv[0]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
