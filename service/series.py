"""Load a demand series for the build stage and make it regular: one non-negative value per period.

Input rules for a CSV (`load_csv`), each broken rule is a `DataError` with one line naming the file, the row
(`row N (line N+1)`, the header being line 1) or the date, and the fix:
- the file exists and is readable; the two named columns exist (the message lists the columns present);
- every date parses (ISO 8601 preferred; any single format pandas can infer works); no date appears twice;
- every value is a finite, non-negative number of at most MAX_VALUE; empty values are errors, not zeros;
- a date with a UTC offset counts by its local (wall-clock) date: 2015-01-01T00:00:00+05:00 is 2015-01-01;
- with --frequency D, or when every row has the same time of day, only the date part of a timestamp counts;
- the frequency is daily (D), weekly (W-<day>), monthly (MS or ME) or quarterly (QS or QE), inferred from the
  smallest spacing between dates or given with `--frequency`; every date lies on that frequency's grid;
- after filling gaps, the series holds at least 3 seasons: 2 to fit the seasonal model, 1 to hold out.

Gaps (regularisation rule): a period missing from the grid between the first and the last date is filled by
linear interpolation between its neighbours when the gaps are few: at most 10% of the periods missing and no
single run of missing periods longer than one season. The build prints a warning naming how many periods it
filled. More or longer gaps are an error naming the longest gap: the model would learn the interpolation.
Rows may come in any order; blank lines are ignored.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from service.errors import DataError

# Season length per pandas offset family: a week of days, a year of weeks, months or quarters.
SEASON_LENGTHS = {"D": 7, "W": 52, "M": 12, "Q": 4}
MIN_SEASONS = 3  # 2 seasons so the seasonal difference leaves a season to fit, plus 1 season held out
MAX_FILLED_SHARE = 0.10  # interpolating more than a tenth of the series would make it mostly invented
MAX_VALUE = 1e12  # far above any real demand per period, far below where the model's likelihood overflows
# When more than half the grid is missing the dates were more likely misread (day-first) than really absent.
MOSTLY_MISSING_SHARE = 0.5
SHOWN_VALUE_CHARS = 40  # a value repeated in a message is cut here (a 300-digit number is not readable)
SEPARATORS = {";": "semicolon", "\t": "tab"}  # separators that leave a comma-reading parser one column
FREQUENCY_HELP = "D (daily), W (weekly), M (monthly: MS or ME) or Q (quarterly: QS or QE)"


@dataclass(frozen=True)
class Series:
    """A regular demand series ready to fit, and where it came from."""

    values: pd.Series  # float values on a DatetimeIndex with one entry per period
    frequency: str  # pandas offset alias, e.g. "MS", "D", "W-SUN"
    season_length: int
    source: dict[str, str | None]
    filled: tuple[str, ...] = ()  # ISO dates of the periods filled by interpolation


def season_length(frequency: str) -> int:
    """Periods per season for a pandas offset alias: D 7, W 52, M 12, Q 4."""
    family = _family(frequency)
    if family is None:
        raise DataError(f"frequency {frequency!r} is not supported; use {FREQUENCY_HELP}")
    return SEASON_LENGTHS[family]


def load_builtin() -> Series:
    """The bundled monthly Australian wine sales (pmdarima), Jan 1980 - Aug 1994, 176 months."""
    from pmdarima.datasets import load_wineind  # imported here: only the default input needs pmdarima

    raw = load_wineind(as_series=True)
    index = pd.to_datetime(pd.Index(raw.index), format="%b %Y")
    values = pd.Series(raw.to_numpy(dtype=float), index=pd.DatetimeIndex(index, freq="MS"))
    description = "Australian wine sales by wine makers, bottles <= 1 litre, monthly (pmdarima load_wineind)"
    source: dict[str, str | None] = {"kind": "builtin", "description": description, "path": None}
    return Series(values=values, frequency="MS", season_length=12, source=source)


def load_csv(path: Path, *, date_column: str, value_column: str, frequency: str | None = None) -> Series:
    """Read, check and regularise one date column and one value column of a CSV file."""
    frame = _read_frame(path)
    for flag, column in (("--date-column", date_column), ("--value-column", value_column)):
        if column not in frame.columns:
            present = ", ".join(map(str, frame.columns)) or "none"
            raise DataError(
                f"{path}: no column {column!r} ({flag}); columns present: {present}{_separator_hint(frame)}"
            )
    frame = frame[(frame[date_column] != "") | (frame[value_column] != "")]
    if frame.empty:
        raise DataError(f"{path}: no data rows under the header; add one row per period")
    dates = _parse_dates(path, frame[date_column])
    if _is_daily(frequency) or dates.dt.time.nunique() == 1:
        dates = dates.dt.normalize()  # a time of day carries no period information on a daily or coarser grid
    values = _parse_values(path, frame[value_column], dates)
    _reject_duplicates(path, dates)
    order = np.argsort(dates.to_numpy(), kind="stable")
    series = pd.Series(values.to_numpy()[order], index=pd.DatetimeIndex(dates.to_numpy()[order]))
    labels = pd.Series(frame.index.to_numpy()[order], index=series.index)
    alias = str(to_offset(_resolve_frequency(path, series.index, frequency)).freqstr)  # QS -> QS-JAN
    regular, filled = _regularise(path, series, labels, alias)
    source: dict[str, str | None] = {
        "kind": "csv",
        "description": f"{value_column} by {date_column} from {path.name}",
        "path": str(path),
    }
    return Series(values=regular, frequency=alias, season_length=season_length(alias), source=source, filled=filled)


def check_length(series: Series, *, where: str) -> None:
    """Refuse a series shorter than MIN_SEASONS seasons, saying how many periods it needs."""
    needed = MIN_SEASONS * series.season_length
    have = len(series.values)
    if have < needed:
        raise DataError(
            f"{where}: {have} {series.frequency} periods are too few for a season of {series.season_length}; "
            f"need at least {needed} ({MIN_SEASONS - 1} seasons to fit + {series.season_length} to hold out)"
        )


def _separator_hint(frame: pd.DataFrame) -> str:
    """'; the file looks semicolon-separated ...' when the only column name holds another separator, else ''."""
    if len(frame.columns) != 1:
        return ""
    for separator, name in SEPARATORS.items():
        if separator in str(frame.columns[0]):
            return f"; the file looks {name}-separated: save it comma-separated"
    return ""


def _is_daily(frequency: str | None) -> bool:
    """True when --frequency asks for daily periods."""
    return frequency is not None and _family(frequency.strip().upper()) == "D"


def _row(label: int) -> str:
    """How messages name a data row: its number and its line in the file (the header is line 1)."""
    return f"row {label + 1} (line {label + 2})"


def _read_frame(path: Path) -> pd.DataFrame:
    """The CSV as strings, blank lines kept as empty rows so row numbers match the file's lines."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; check the --data path") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a CSV file; pass the file with --data") from None
    except PermissionError:
        raise DataError(f"{path}: not readable (permission denied); fix its permissions") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; save the CSV as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file; it needs a header and one row per period") from None
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().splitlines()[-1]
        raise DataError(f"{path}: not a well-formed CSV ({detail}); fix the quoting or the column count") from None
    frame.columns = [str(column).strip() for column in frame.columns]
    return frame


def _parse_dates(path: Path, raw: pd.Series) -> pd.Series:
    """Parse every date (ISO 8601 first, else one inferred format); the first bad row is an error."""
    text = raw.str.strip()
    for index, value in text.items():
        if value == "":
            raise DataError(f"{path} {_row(int(index))}: the date is empty; fill it or delete the row")
    dates = _to_datetime(text, "ISO8601")
    if dates.isna().any():
        inferred = _to_datetime(text, None)
        if inferred.isna().sum() < dates.isna().sum():
            dates = inferred
    bad = dates.isna()
    if bad.any():
        index = int(bad.idxmax())
        raise DataError(
            f"{path} {_row(index)}: {text[index]!r} is not a date; write dates like 2021-03-31 (YYYY-MM-DD)"
        )
    return dates


def _to_datetime(text: pd.Series, date_format: str | None) -> pd.Series:
    """Parse dates, NaT where a value does not parse; a date with a UTC offset keeps its local wall-clock time."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format": the rows that do not parse are reported
        try:
            dates = pd.to_datetime(text, errors="coerce", format=date_format)
        except ValueError:  # mixed UTC offsets: parse one by one so each keeps its own local time
            local = [_local(pd.to_datetime(value, errors="coerce", format=date_format)) for value in text]
            return pd.Series(pd.DatetimeIndex(local), index=text.index)
    return dates.dt.tz_localize(None) if dates.dt.tz is not None else dates


def _local(stamp: pd.Timestamp) -> pd.Timestamp:
    """A timestamp's wall-clock time without its UTC offset (converting would move midnight to another day)."""
    return stamp.tz_localize(None) if stamp is not pd.NaT and stamp.tzinfo is not None else stamp


def _parse_values(path: Path, raw: pd.Series, dates: pd.Series) -> pd.Series:
    """Parse every value as a finite, non-negative number; the first bad row is an error."""
    text = raw.str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    for index, value in numbers.items():
        where = f"{path} {_row(int(index))} ({dates[index].date().isoformat()})"
        if text[index] == "":
            raise DataError(f"{where}: the value is empty; fill in the demand (0 if there was none)")
        if not np.isfinite(value):
            raise DataError(f"{where}: value {text[index]!r} is not a finite number; write a plain number")
        if value < 0:
            raise DataError(f"{where}: value {text[index]} is negative; demand cannot be below 0, fix or remove it")
        if value > MAX_VALUE:
            raise DataError(
                f"{where}: value {_short(text[index])} is over {MAX_VALUE:g}, beyond any demand the model can fit; "
                "check the column and its units"
            )
    return numbers.astype(float)


def _short(text: str) -> str:
    """A value from the file cut to a readable length for a message."""
    return text if len(text) <= SHOWN_VALUE_CHARS else text[: SHOWN_VALUE_CHARS - 3] + "..."


def _reject_duplicates(path: Path, dates: pd.Series) -> None:
    """Refuse a date that appears twice, naming the date and both rows."""
    repeated = dates[dates.duplicated(keep=False)]
    if not repeated.empty:
        first = repeated.iloc[0]
        rows = [int(index) for index in repeated.index[repeated == first]]
        raise DataError(
            f"{path}: date {first.date().isoformat()} appears {len(rows)} times "
            f"({', '.join(_row(index) for index in rows)}); keep one row per period (sum them if they are parts)"
        )


def _family(alias: str) -> str | None:
    """D, W, M or Q for a supported pandas offset alias, None otherwise."""
    try:
        offset = to_offset(alias)
    except ValueError:
        return None
    if offset.n != 1:
        return None
    families = (
        (pd.offsets.Day, "D"),
        (pd.offsets.Week, "W"),
        (pd.offsets.MonthBegin, "M"),
        (pd.offsets.MonthEnd, "M"),
        (pd.offsets.QuarterBegin, "Q"),
        (pd.offsets.QuarterEnd, "Q"),
    )
    for kind, family in families:
        if isinstance(offset, kind):
            return family
    return None


def _resolve_frequency(path: Path, index: pd.DatetimeIndex, requested: str | None) -> str:
    """The pandas offset alias of the series: from --frequency when given, else from the date spacing."""
    if requested is None:
        family, where = _infer_family(path, index), "inferred from the dates"
    elif requested.strip().upper() in SEASON_LENGTHS:
        family, where = requested.strip().upper(), f"--frequency {requested}"
    elif _family(requested) is None:
        raise DataError(f"--frequency {requested!r} is not supported; use {FREQUENCY_HELP}")
    else:
        return str(to_offset(requested).freqstr)  # an anchored alias such as W-MON, MS or QE-DEC, used as given
    if family == "D":
        return "D"
    if family == "W":
        return f"W-{index[0].day_name()[:3].upper()}"
    monthly = family == "M"
    starts = index.is_month_start if monthly else index.is_quarter_start
    ends = index.is_month_end if monthly else index.is_quarter_end
    if starts.all():
        return "MS" if monthly else "QS"
    if ends.all():
        return "ME" if monthly else "QE"
    odd = index[~starts][0]
    unit = "month" if monthly else "quarter"
    raise DataError(
        f"{path}: the series is {unit}ly ({where}) but its dates are not all the first or all the last day of a "
        f"{unit} (e.g. {odd.date().isoformat()}); date every row the same way"
    )


def _infer_family(path: Path, index: pd.DatetimeIndex) -> str:
    """D, W, M or Q from the smallest spacing between consecutive dates (robust to gaps)."""
    if len(index) < 2:
        raise DataError(f"{path}: one row cannot show a frequency; add rows or pass --frequency")
    spacing = np.diff(index.to_numpy()).astype("timedelta64[s]").astype(np.int64)
    smallest = int(spacing.min())
    day = 24 * 3600
    days = smallest / day
    if smallest % day == 0:
        if days == 1:
            return "D"
        if days == 7:
            return "W"
        if 28 <= days <= 31:
            return "M"
        if 89 <= days <= 92:
            return "Q"
    raise DataError(
        f"{path}: cannot infer the frequency: the closest dates are {days:g} days apart; "
        f"pass --frequency with one of {FREQUENCY_HELP}"
    )


def _regularise(path: Path, series: pd.Series, labels: pd.Series, alias: str) -> tuple[pd.Series, tuple[str, ...]]:
    """Put the series on its frequency grid, filling short, rare gaps by linear interpolation."""
    grid = pd.date_range(series.index[0], series.index[-1], freq=alias)
    off_grid = series.index.difference(grid)
    if len(off_grid):
        stray = off_grid[0]
        raise DataError(
            f"{path} {_row(int(labels[stray]))}: date {stray.date().isoformat()} is not on the {alias} grid "
            f"that starts {grid[0].date().isoformat()}; every date must be a whole number of periods apart"
        )
    regular = series.reindex(grid)
    missing = regular.isna().to_numpy()
    if not missing.any():
        return regular, ()
    season = season_length(alias)
    start, length = _longest_run(missing)
    allowed = int(MAX_FILLED_SHARE * len(grid))
    if length > season or missing.sum() > allowed:
        first, last = grid[start].date().isoformat(), grid[start + length - 1].date().isoformat()
        hint = ""
        if missing.sum() > MOSTLY_MISSING_SHARE * len(grid):
            hint = (
                "; most periods are missing, so the dates may be day-first (DD/MM/YYYY: write YYYY-MM-DD) "
                "or the frequency wrong (pass --frequency)"
            )
        raise DataError(
            f"{path}: {int(missing.sum())} of {len(grid)} {alias} periods are missing (at most {allowed} and no gap "
            f"over one season of {season} can be filled); longest gap {first}..{last} ({length} periods): "
            f"add those rows{hint}"
        )
    filled = tuple(date.date().isoformat() for date in grid[missing])
    return regular.interpolate(method="linear"), filled


def _longest_run(mask: np.ndarray) -> tuple[int, int]:
    """Start and length of the longest run of True in a boolean array."""
    best_start, best_length, start = 0, 0, None
    for position, flag in enumerate([*mask.tolist(), False]):
        if flag and start is None:
            start = position
        elif not flag and start is not None:
            if position - start > best_length:
                best_start, best_length = start, position - start
            start = None
    return best_start, best_length
