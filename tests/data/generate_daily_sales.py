"""Regenerate daily_sales.csv: a synthetic daily demand series shaped like the original workshop's file.

    .venv/bin/python tests/data/generate_daily_sales.py

One row per day (TransactionDate, PaidAmount), 300 days, weekly seasonality (busy weekends), a slow upward
trend and Gaussian noise, seeded so the file is reproducible.
"""

from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20240501
DAYS = 300
START = "2023-01-02"
WEEKDAY_EFFECT = [-400.0, -300.0, -250.0, -100.0, 350.0, 900.0, 600.0]  # Monday .. Sunday


def main() -> None:
    rng = np.random.default_rng(SEED)
    dates = pd.date_range(START, periods=DAYS, freq="D")
    trend = 5000.0 + 3.0 * np.arange(DAYS)
    weekly = np.array([WEEKDAY_EFFECT[day.weekday()] for day in dates])
    amounts = np.round(trend + weekly + rng.normal(0.0, 180.0, DAYS), 2)
    frame = pd.DataFrame({"TransactionDate": dates.strftime("%Y-%m-%d"), "PaidAmount": amounts})
    frame.to_csv(Path(__file__).with_name("daily_sales.csv"), index=False)


if __name__ == "__main__":
    main()
