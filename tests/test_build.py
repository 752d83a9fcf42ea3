"""The build stage: real statsmodels fits on the bundled series and on CSV files, and its CLI refusals."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels
from statsmodels.iolib.smpickle import load_pickle

from deploy.base import PROJECT_ROOT
from service import build, model, score
from service.errors import DataError, ModelError
from service.series import load_csv

DATA = Path(__file__).parent / "data"
DAILY = DATA / "daily_sales.csv"
CLI_TIMEOUT_S = 300  # a CSV build fits a few dozen small models; minutes would mean something is wrong
USAGE = 2


def run_build(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m service.build ARGS` from the project root."""
    return subprocess.run(
        [sys.executable, "-m", "service.build", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        env={**os.environ, **(env or {})},
        check=False,
    )


def write_csv(folder: Path, lines: list[str], name: str = "sales.csv") -> Path:
    """A CSV file with a TransactionDate,PaidAmount header and the given rows."""
    path = folder / name
    path.write_text("\n".join(["TransactionDate,PaidAmount", *lines]) + "\n")
    return path


def daily_rows(days: int, start: str = "2023-01-02", skip: tuple[int, ...] = ()) -> list[str]:
    """`days` rows of a plausible daily demand, leaving out the day offsets in `skip`."""
    first = date.fromisoformat(start)
    return [f"{first + timedelta(days=i)},{1000 + 50 * (i % 7)}.5" for i in range(days) if i not in skip]


def write_empty(folder: Path) -> Path:
    path = folder / "empty.csv"
    path.write_text("")
    return path


def write_latin1(folder: Path) -> Path:
    path = folder / "latin1.csv"
    path.write_bytes("TransactionDate,PaidAmount\n2023-01-02,10\n2023-01-03,café\n".encode("latin-1"))
    return path


def meta_of(folder: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((folder / "model.json").read_text())
    return result


@pytest.fixture(scope="module")
def daily_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The CLI run on the daily fixture shaped like the original workshop's file."""
    out = tmp_path_factory.mktemp("daily-model")
    done = run_build(
        "--data", str(DAILY), "--date-column", "TransactionDate", "--value-column", "PaidAmount", "--out", str(out)
    )
    return done, out


def test_default_model_json_describes_the_wine_model(default_model: Path) -> None:
    meta = meta_of(default_model)
    assert meta["name"] == "demand-forecast"
    assert meta["version"] == hashlib.sha256((default_model / "model.pkl").read_bytes()).hexdigest()[:12]
    assert datetime.fromisoformat(meta["created_at"]).tzinfo is not None
    assert meta["libraries"] == {
        "python": platform.python_version(),
        "statsmodels": statsmodels.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
    }
    assert meta["source"]["kind"] == "builtin" and meta["source"]["path"] is None
    assert (meta["frequency"], meta["season_length"]) == ("MS", 12)
    assert len(meta["order"]) == 3 and len(meta["seasonal_order"]) == 4
    assert meta["seasonal_order"][1] == 1 and meta["seasonal_order"][3] == 12, "one seasonal difference, s = 12"
    assert meta["transform"] in ("none", "log1p")
    assert meta["training_window"] == {"start": "1980-01-01", "end": "1994-08-01", "periods": 176}
    assert meta["last_period"] == "1994-08-01"
    assert (meta["max_horizon"], meta["interval_level"]) == (24, 0.95)
    assert sorted(meta["reference_forecasts"], key=int) == ["1", "12", "24"]
    for horizon, values in meta["reference_forecasts"].items():
        assert len(values) == int(horizon) and all(np.isfinite(values)) and min(values) >= 0


def test_holdout_metrics_match_a_recomputation(default_model: Path) -> None:
    from pmdarima.datasets import load_wineind

    series = load_wineind(as_series=True).to_numpy(dtype=float)
    train, actual = series[:-12], series[-12:]
    holdout = meta_of(default_model)["holdout"]
    naive_mae = float(np.abs(actual - train[-12:]).mean())
    scale = float(np.abs(train[12:] - train[:-12]).mean())
    assert holdout["periods"] == 12
    assert holdout["seasonal_naive_mae"] == pytest.approx(naive_mae)
    assert holdout["mase"] == pytest.approx(holdout["mae"] / scale)
    assert 0 < holdout["mape"] < 1, "MAPE is a fraction of the actuals; a wine model within 100% is expected"
    assert holdout["mae"] < 2 * naive_mae, "the chosen model should be in the seasonal-naive forecast's league"


def test_reference_forecasts_reproduce_from_the_saved_model(default_model: Path) -> None:
    meta = meta_of(default_model)
    results = load_pickle(str(default_model / "model.pkl"))
    for horizon, expected in meta["reference_forecasts"].items():
        rows = score.forecast(
            results,
            int(horizon),
            last_period=meta["last_period"],
            frequency=meta["frequency"],
            level=meta["interval_level"],
            transform=meta["transform"],
        )
        assert [row["value"] for row in rows] == expected
        raw = np.asarray(results.get_forecast(int(horizon)).predicted_mean)
        independent = np.maximum(np.expm1(raw) if meta["transform"] == "log1p" else raw, 0.0)
        np.testing.assert_allclose(expected, independent, rtol=1e-12)


def test_same_series_builds_the_same_version(default_model: Path, tmp_path: Path) -> None:
    assert build.main(["--out", str(tmp_path), "--name", "again"]) == 0
    assert meta_of(tmp_path)["version"] == meta_of(default_model)["version"]
    assert meta_of(tmp_path)["name"] == "again"


def test_default_out_is_the_artifacts_model_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELEASE_ARTIFACTS", str(tmp_path))
    seen: list[Path] = []

    def stop_before_fitting(series: Any, *, out: Path, name: str, max_horizon: int) -> dict[str, Any]:
        seen.append(out)
        raise ModelError("stopped by the test")

    monkeypatch.setattr(model, "build", stop_before_fitting)
    assert build.main([]) == 1
    assert seen == [tmp_path / "model"]


def test_daily_csv_builds_with_forecasts_from_the_next_day(
    daily_build: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    done, out = daily_build
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", "a clean daily file gives no warning"
    assert "on 300 D periods 2023-01-02..2023-10-28" in done.stdout
    assert "holdout (7 periods): MAE" in done.stdout
    meta = meta_of(out)
    assert (meta["frequency"], meta["season_length"], meta["max_horizon"]) == ("D", 7, 14)
    assert meta["source"] == {
        "kind": "csv",
        "description": "PaidAmount by TransactionDate from daily_sales.csv",
        "path": str(DAILY),
    }
    assert meta["last_period"] == "2023-10-28"
    assert sorted(meta["reference_forecasts"], key=int) == ["1", "7", "14"]
    results = load_pickle(str(out / "model.pkl"))
    rows = score.forecast(results, 14, last_period="2023-10-28", frequency="D", level=0.95, transform=meta["transform"])
    assert [row["period"] for row in rows] == [str(date(2023, 10, 29) + timedelta(days=i)) for i in range(14)]
    assert meta["holdout"]["mase"] < 1, "the weekly pattern is strong: the model should beat seasonal naive"


def test_quarterly_csv_with_a_gap_is_filled_and_warned(tmp_path: Path) -> None:
    quarters = pd.date_range("2010-01-01", periods=40, freq="QS")
    lines = [f"{day.date()},{200 + 30 * (day.quarter % 2) + i}" for i, day in enumerate(quarters) if i != 17]
    path = write_csv(tmp_path, lines)
    done = run_build("--data", str(path), "--date-column", "TransactionDate", "--value-column", "PaidAmount",
                     "--out", str(tmp_path / "model"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == (
        f"build: warning: {path}: filled 1 missing QS-JAN period(s) by linear interpolation: 2014-04-01"
    )
    meta = meta_of(tmp_path / "model")
    assert (meta["frequency"], meta["season_length"], meta["max_horizon"]) == ("QS-JAN", 4, 8)
    assert meta["training_window"]["periods"] == 40


def test_gaps_are_filled_by_linear_interpolation(tmp_path: Path) -> None:
    path = write_csv(tmp_path, ["2023-01-01,10", "2023-01-02,20", "2023-01-05,50", *daily_rows(30, "2023-01-06")])
    series = load_csv(path, date_column="TransactionDate", value_column="PaidAmount")
    assert series.filled == ("2023-01-03", "2023-01-04")
    assert series.values["2023-01-01":"2023-01-05"].tolist() == [10.0, 20.0, 30.0, 40.0, 50.0]


def test_weekly_dates_are_anchored_on_their_weekday(tmp_path: Path) -> None:
    weeks = pd.date_range("2020-01-07", periods=160, freq="W-TUE")
    path = write_csv(tmp_path, [f"{day.date()},{100 + i % 52}" for i, day in enumerate(weeks)])
    series = load_csv(path, date_column="TransactionDate", value_column="PaidAmount")
    assert (series.frequency, series.season_length, len(series.values)) == ("W-TUE", 52, 160)


def test_rows_in_any_order_are_sorted(tmp_path: Path) -> None:
    lines = daily_rows(30)
    path = write_csv(tmp_path, [*reversed(lines), ""])
    series = load_csv(path, date_column="TransactionDate", value_column="PaidAmount")
    assert series.values.index[0] == pd.Timestamp("2023-01-02")
    assert series.values.index.is_monotonic_increasing
    assert series.values.tolist() == [float(line.split(",")[1]) for line in lines]


def test_month_end_dates_keep_month_end_frequency(tmp_path: Path) -> None:
    months = pd.date_range("2015-01-31", periods=48, freq="ME")
    path = write_csv(tmp_path, [f"{day.date()},{100 + i}" for i, day in enumerate(months)])
    assert load_csv(path, date_column="TransactionDate", value_column="PaidAmount").frequency == "ME"


def test_unknown_frequency_alias_is_a_data_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path, daily_rows(30))
    with pytest.raises(DataError, match=r"--frequency 'H' is not supported"):
        load_csv(path, date_column="TransactionDate", value_column="PaidAmount", frequency="H")


BAD_CSV_CASES = [
    pytest.param(["2023-01-02,10", "2023-01-03,11", "2023-13-45,12"], (), "row 3 (line 4): '2023-13-45' is not a date",
                 id="unparsable-date"),
    pytest.param(["2023-01-02,10", ",11"], (), "row 2 (line 3): the date is empty", id="empty-date"),
    pytest.param(["2023-01-02,10", "2023-01-03,11", "2023-01-03,12"], (),
                 "date 2023-01-03 appears 2 times (row 2 (line 3), row 3 (line 4))", id="duplicate-date"),
    pytest.param(["2023-01-02,10", "2023-01-03,abc"], (), "row 2 (line 3) (2023-01-03): value 'abc' is not a finite",
                 id="non-numeric-value"),
    pytest.param(["2023-01-02,10", "2023-01-03,-5"], (), "row 2 (line 3) (2023-01-03): value -5 is negative",
                 id="negative-value"),
    pytest.param(["2023-01-02,10", "2023-01-03,"], (), "row 2 (line 3) (2023-01-03): the value is empty",
                 id="empty-value"),
    pytest.param(["2023-01-02,10", "2023-01-03,NaN"], (), "row 2 (line 3) (2023-01-03): value 'NaN' is not a finite",
                 id="nan-value"),
    pytest.param(["2023-01-02,10", "2023-01-03,inf"], (), "value 'inf' is not a finite number", id="infinite-value"),
    pytest.param(daily_rows(20), (), "20 D periods are too few for a season of 7; need at least 21",
                 id="too-few-rows"),
    pytest.param([f"2023-01-{day:02d},10" for day in (1, 4, 7, 10, 13)], (),
                 "cannot infer the frequency: the closest dates are 3 days apart; pass --frequency",
                 id="frequency-not-inferable"),
    pytest.param(daily_rows(100, skip=tuple(range(40, 49))), (),
                 "longest gap 2023-02-11..2023-02-19 (9 periods)", id="gap-longer-than-a-season"),
    pytest.param(daily_rows(60, skip=(3, 10, 17, 24, 31, 38, 45)), (), "7 of 60 D periods are missing (at most 6",
                 id="too-many-gaps"),
    pytest.param(daily_rows(30), ("--frequency", "W"), "row 2 (line 3): date 2023-01-03 is not on the W-MON grid",
                 id="date-off-the-frequency-grid"),
    pytest.param(daily_rows(30), ("--frequency", "H"), "--frequency 'H' is not supported", id="unsupported-frequency"),
    pytest.param([f"2023-{month:02d}-{2 if month == 1 else 15},10" for month in range(1, 13)], (),
                 "dates are not all the first or all the last day of a month (e.g. 2023-01-02)", id="mid-month-dates"),
    pytest.param(daily_rows(30), ("--max-horizon", "0"), "--max-horizon 0: must be from 1", id="zero-max-horizon"),
    pytest.param([*daily_rows(30), "2023-02-01,1e162"], (), "row 31 (line 32) (2023-02-01): value 1e162 is over 1e+12",
                 id="absurd-value"),
    pytest.param([*daily_rows(30), "2023-02-01,1" + "0" * 302], (), "value 1000000000000000000000000000000000000... is",
                 id="absurd-value-written-out"),
    pytest.param([f"01/{month:02d}/{year},{100 + month}" for year in range(2015, 2019) for month in range(1, 13)], (),
                 "most periods are missing, so the dates may be day-first (DD/MM/YYYY", id="day-first-dates"),
]  # fmt: skip


@pytest.mark.parametrize(("lines", "extra", "expected"), BAD_CSV_CASES)
def test_bad_csv_exits_2_with_one_line(tmp_path: Path, lines: list[str], extra: tuple[str, ...], expected: str) -> None:
    path = write_csv(tmp_path, lines)
    done = run_build("--data", str(path), "--date-column", "TransactionDate", "--value-column", "PaidAmount",
                     "--out", str(tmp_path / "model"), *extra)  # fmt: skip
    assert done.returncode == USAGE, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, f"expected one line, got: {done.stderr!r}"
    assert done.stderr.startswith(f"build: error: {path}") or done.stderr.startswith("build: error: --")
    assert expected in done.stderr
    assert not (tmp_path / "model").exists(), "a refused build writes nothing"


def test_missing_column_lists_the_columns_present(tmp_path: Path) -> None:
    path = tmp_path / "sales.csv"
    path.write_text("Date,Amount\n2023-01-02,10\n")
    done = run_build("--data", str(path), "--date-column", "TransactionDate", "--value-column", "Amount")
    assert done.returncode == USAGE and "Traceback" not in done.stderr
    assert done.stderr == (
        f"build: error: {path}: no column 'TransactionDate' (--date-column); columns present: Date, Amount\n"
    )


@pytest.mark.parametrize(("separator", "name"), [(";", "semicolon"), ("\t", "tab")])
def test_other_separator_is_named_with_the_fix(tmp_path: Path, separator: str, name: str) -> None:
    path = tmp_path / "sales.csv"
    path.write_text(f"date{separator}value\n2023-01-02{separator}10\n")
    done = run_build("--data", str(path), "--date-column", "date", "--value-column", "value")
    assert done.returncode == USAGE and done.stderr.count("\n") == 1
    assert done.stderr.endswith(f"; the file looks {name}-separated: save it comma-separated\n")


def test_utc_offset_dates_keep_their_local_date(tmp_path: Path) -> None:
    months = pd.date_range("2015-01-01", periods=48, freq="MS")
    path = write_csv(tmp_path, [f"{day.date()}T00:00:00+05:00,{100 + i % 12}" for i, day in enumerate(months)])
    series = load_csv(path, date_column="TransactionDate", value_column="PaidAmount")
    assert (series.frequency, series.values.index[0], series.values.index[-1]) == (
        "MS",
        pd.Timestamp("2015-01-01"),
        pd.Timestamp("2018-12-01"),
    )


def test_mixed_utc_offsets_keep_each_local_date(tmp_path: Path) -> None:
    months = pd.date_range("2015-01-01", periods=48, freq="MS")
    offsets = ("+05:00", "-08:00", "Z")
    lines = [f"{day.date()}T00:00:00{offsets[i % 3]},{100 + i % 12}" for i, day in enumerate(months)]
    series = load_csv(write_csv(tmp_path, lines), date_column="TransactionDate", value_column="PaidAmount")
    assert series.frequency == "MS" and series.values.index.equals(months.as_unit(series.values.index.unit))


def test_daily_timestamps_use_their_date_with_frequency_d(tmp_path: Path) -> None:
    first = datetime(2023, 1, 2)
    lines = [f"{first + timedelta(days=i, hours=8 + i % 9, minutes=i % 60)},{100 + i % 7}" for i in range(30)]
    series = load_csv(write_csv(tmp_path, lines), date_column="TransactionDate", value_column="PaidAmount",
                      frequency="D")  # fmt: skip
    assert series.values.index[0] == pd.Timestamp("2023-01-02") and len(series.values) == 30
    assert (series.values.index == series.values.index.normalize()).all()


def test_model_fitting_failure_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def breaks(*args: Any, **kwargs: Any) -> None:
        raise ValueError("cannot convert float NaN to integer")

    monkeypatch.setattr(model, "build", breaks)  # what statsmodels raised on values near 1e162
    path = write_csv(tmp_path, daily_rows(30))
    code = build.main(["--data", str(path), "--date-column", "TransactionDate", "--value-column", "PaidAmount",
                       "--out", str(tmp_path / "model")])  # fmt: skip
    assert code == USAGE
    assert capsys.readouterr().err == (
        f"build: error: {path}: the model could not be fitted to this series: cannot convert float NaN to integer; "
        "check the values' scale and units\n"
    )


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(lambda folder: folder / "nope.csv", "nope.csv: no such file; check the --data path", id="missing"),
        pytest.param(lambda folder: folder, "is a folder, not a CSV file", id="folder"),
        pytest.param(lambda folder: write_empty(folder), "empty.csv: empty file", id="empty"),
        pytest.param(lambda folder: write_latin1(folder), "latin1.csv: not UTF-8 text", id="not-utf8"),
    ],
)
def test_unreadable_file_exits_2_naming_it(tmp_path: Path, make: Any, expected: str) -> None:
    path = make(tmp_path)
    done = run_build("--data", str(path), "--date-column", "TransactionDate", "--value-column", "PaidAmount")
    assert done.returncode == USAGE and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and expected in done.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--data", str(DAILY)], "needs --date-column NAME and --value-column NAME", id="data-no-columns"),
        pytest.param(["--date-column", "x"], "--date-column needs --data FILE.csv", id="column-no-data"),
        pytest.param(["--frequency", "W"], "--frequency needs --data FILE.csv", id="frequency-no-data"),
        pytest.param(["--name", "bad name!"], "--name 'bad name!': use letters", id="bad-name"),
    ],
)
def test_flag_misuse_exits_2_naming_the_flag(args: list[str], expected: str) -> None:
    done = run_build(*args)
    assert done.returncode == USAGE and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and expected in done.stderr
