"""Build stage: fit the seasonal demand model, test it on a holdout, write model.pkl and model.json.

    python -m service.build                                    # bundled monthly wine sales (pmdarima)
    python -m service.build --data sales.csv --date-column TransactionDate --value-column PaidAmount
    python -m service.build --data weekly.csv --date-column week --value-column units --frequency W --out model/

Input rules and the gap-filling rule for CSV files are in service/series.py; the model and its holdout test in
service/model.py. Exit codes: 0 built, 1 the model could not be saved or reloaded, 2 usage or data error
(including a series the model's numerics cannot fit, e.g. values on an absurd scale).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

from service.errors import DataError, ModelError
from service.series import Series, check_length, load_builtin, load_csv

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_NAME = "demand-forecast"
MODEL_FILE, META_FILE = "model.pkl", "model.json"  # as service/score.py reads them
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")  # what an Azure ML model name may be
SHOWN_FILLED = 5  # how many filled dates the gap warning lists


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service.build", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="CSV with a date and a demand column (default: bundled wine sales)")
    parser.add_argument("--date-column", help="CSV column holding the period dates (needed with --data)")
    parser.add_argument("--value-column", help="CSV column holding the demand (needed with --data)")
    parser.add_argument("--frequency", help="D, W, M or Q, or a pandas alias such as W-MON (default: inferred)")
    parser.add_argument("--out", type=Path, help="output folder (default: <artifacts>/model)")
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"model name (default: {DEFAULT_NAME})")
    parser.add_argument("--max-horizon", type=int, help="most periods a request may ask for (default: 2 seasons)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each candidate's AIC")
    return parser


def load_series(args: argparse.Namespace) -> tuple[Series, str]:
    """The series the flags ask for, and how messages should name it."""
    if args.data is None:
        for flag, value in (("--date-column", args.date_column), ("--value-column", args.value_column)):
            if value is not None:
                raise DataError(f"{flag} needs --data FILE.csv; without --data the bundled wine sales are used")
        if args.frequency is not None:
            raise DataError("--frequency needs --data FILE.csv; the bundled wine sales are monthly (MS)")
        return load_builtin(), "bundled wine sales"
    if args.date_column is None or args.value_column is None:
        raise DataError(f"--data {args.data} needs --date-column NAME and --value-column NAME")
    series = load_csv(args.data, date_column=args.date_column, value_column=args.value_column, frequency=args.frequency)
    return series, str(args.data)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if not NAME_PATTERN.match(args.name):
        raise DataError(f"--name {args.name!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit")
    series, where = load_series(args)
    check_length(series, where=where)
    max_horizon = args.max_horizon if args.max_horizon is not None else 2 * series.season_length
    if not 1 <= max_horizon <= len(series.values):
        raise DataError(f"--max-horizon {max_horizon}: must be from 1 to the series length ({len(series.values)})")
    if series.filled:
        shown = ", ".join(series.filled[:SHOWN_FILLED]) + (", ..." if len(series.filled) > SHOWN_FILLED else "")
        print(
            f"build: warning: {where}: filled {len(series.filled)} missing {series.frequency} period(s) "
            f"by linear interpolation: {shown}",
            file=sys.stderr,
        )
    if args.out is None:
        from deploy.base import artifacts_dir  # only the default path needs the deploy package

        out = artifacts_dir() / "model"
    else:
        out = args.out
    # Imported only now: statsmodels takes a second to load, and data errors should not wait for it.
    from service import model

    try:
        meta = model.build(series, out=out, name=args.name, max_horizon=max_horizon)
    except OSError as exc:
        raise ModelError(f"cannot write to {out} ({exc.strerror}); pass a writable --out") from None
    except (ValueError, ArithmeticError) as exc:  # numeric breakdown in statsmodels (LinAlgError is a ValueError)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(
            f"{where}: the model could not be fitted to this series: {reason}; check the values' scale and units"
        ) from None
    print(summary(meta, out=out, seconds=time.perf_counter() - started))
    return EXIT_OK


def summary(meta: dict[str, Any], *, out: Path, seconds: float) -> str:
    """The few lines the build prints: what was built, how it did on the holdout, where it went."""
    p, d, q = meta["order"]
    big_p, big_d, big_q, s = meta["seasonal_order"]
    window = meta["training_window"]
    holdout = meta["holdout"]
    mape = "n/a" if holdout["mape"] is None else f"{100 * holdout['mape']:.1f}%"
    mase = "n/a" if holdout["mase"] is None else f"{holdout['mase']:.3f}"
    return "\n".join(
        [
            f"built {meta['name']} {meta['version']}: SARIMA({p},{d},{q})({big_p},{big_d},{big_q})[{s}] on "
            f"{window['periods']} {meta['frequency']} periods {window['start']}..{window['end']} in {seconds:.1f} s",
            f"holdout ({holdout['periods']} periods): MAE {holdout['mae']:.2f}, MAPE {mape}, MASE {mase} "
            f"(seasonal naive MAE {holdout['seasonal_naive_mae']:.2f})",
            f"serves up to {meta['max_horizon']} periods after {meta['last_period']} "
            f"with {100 * meta['interval_level']:.0f}% intervals",
            f"wrote {out / MODEL_FILE} and {out / META_FILE}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    try:
        return run(args)
    except DataError as exc:
        print(f"build: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ModelError as exc:
        print(f"build: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("build: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
