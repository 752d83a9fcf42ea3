"""Fit the seasonal demand model, test it on a holdout, save it with its model.json (the build stage's core).

The model is a statsmodels SARIMAX:
- season length from the frequency (D 7, W 52, M 12, Q 4), one seasonal difference (D=1);
- d from a KPSS test on the seasonally differenced training data: 1 if it rejects level-stationarity at 5%,
  else 0 with a constant (drift of the seasonal difference);
- (p, q) x (P, Q) from a small candidate set, each fitted to the series and to log1p(series), chosen by AIC on
  the training window (the series minus its last season), converged fits first; a log1p model's AIC gets its
  Jacobian back so both scales compare; a season of 24 periods or more (weekly data) fits one spec only,
  (0,d,1)(0,1,1) on the raw series, as each fit then takes tens of seconds (the state grows with the season);
- holdout: the last season (at least 1 period), MAE, MAPE (a fraction, over non-zero actuals), MASE (MAE over
  the in-sample seasonal-naive MAE; null when that is 0) and the seasonal-naive forecast's MAE on the same periods;
- the served model is refitted on the whole series; reference forecasts come from the saved file, reloaded,
  through `service.score.forecast`, the function the scoring script serves from.
"""

from __future__ import annotations

import json
import logging
import platform
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import statsmodels
from statsmodels.iolib.smpickle import load_pickle
from statsmodels.tsa.statespace import kalman_filter
from statsmodels.tsa.statespace.sarimax import SARIMAX
from statsmodels.tsa.stattools import kpss

from service.errors import ModelError
from service.score import META_FILE, MODEL_FILE, TRANSFORMS, forecast, model_version
from service.series import Series

log = logging.getLogger("service.model")

INTERVAL_LEVEL = 0.95  # the prediction interval the service reports
KPSS_ALPHA = 0.05  # significance level of the stationarity test that decides d
LONG_SEASON = 24  # from this season length on, each fit takes tens of seconds: fit the one spec below
ARMA_CANDIDATES = ((0, 1), (1, 0), (1, 1), (0, 2), (2, 0))  # (p, q)
SEASONAL_CANDIDATES = ((0, 1), (1, 0), (1, 1))  # (P, Q)
LONG_SEASON_SPEC = ((0, 1), (0, 1))  # ((p, q), (P, Q)): the "airline" form, a robust default
MAX_FIT_ITERATIONS = 200  # L-BFGS iterations per fit; the small models here converge well within it
# What the saved results keep: the final state (forecasts need it), not the per-period filter history;
# this cuts model.pkl from ~20 MB to under 1 MB with identical forecasts and intervals.
SERVED_MEMORY = (
    kalman_filter.MEMORY_NO_SMOOTHING
    | kalman_filter.MEMORY_NO_PREDICTED
    | kalman_filter.MEMORY_NO_FILTERED
    | kalman_filter.MEMORY_NO_GAIN
    | kalman_filter.MEMORY_NO_STD_FORECAST
)


@dataclass(frozen=True)
class Spec:
    """One SARIMAX configuration and the transform of the series it is fitted to."""

    order: tuple[int, int, int]
    seasonal_order: tuple[int, int, int, int]
    trend: str
    transform: str

    def label(self) -> str:
        p, d, q = self.order
        big_p, big_d, big_q, s = self.seasonal_order
        drift = " + drift" if self.trend == "c" else ""
        scale = " of log1p" if self.transform == "log1p" else ""
        return f"SARIMA({p},{d},{q})({big_p},{big_d},{big_q})[{s}]{drift}{scale}"

    def model(self, values: np.ndarray) -> SARIMAX:
        """The statsmodels model of this spec on (untransformed) values."""
        endog = np.log1p(values) if self.transform == "log1p" else values
        return SARIMAX(endog, order=self.order, seasonal_order=self.seasonal_order, trend=self.trend)


def candidates(train: np.ndarray, season: int) -> list[Spec]:
    """The specs to compare on the training window: d from KPSS, D=1, small (p, q) and (P, Q), raw and log1p."""
    d = differencing_order(train, season)
    trend = "n" if d else "c"
    if season >= LONG_SEASON:
        (p, q), (big_p, big_q) = LONG_SEASON_SPEC
        return [Spec((p, d, q), (big_p, 1, big_q, season), trend, "none")]
    return [
        Spec((p, d, q), (big_p, 1, big_q, season), trend, transform)
        for transform in TRANSFORMS
        for p, q in ARMA_CANDIDATES
        for big_p, big_q in SEASONAL_CANDIDATES
    ]


def comparable_aic(results: Any, spec: Spec, values: np.ndarray) -> float:
    """AIC on the scale of the data: a log1p model's likelihood gets its Jacobian, sum(log1p(y)), back."""
    aic = float(results.aic)
    if spec.transform == "log1p":
        aic += 2.0 * float(np.log1p(values[int(results.loglikelihood_burn) :]).sum())
    return aic


def differencing_order(train: np.ndarray, season: int) -> int:
    """1 when KPSS rejects level-stationarity of the seasonally differenced series, else 0."""
    seasonal_difference = train[season:] - train[:-season]
    if np.ptp(seasonal_difference) == 0:
        return 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # InterpolationWarning: the p-value is beyond the table, still decisive
        _, p_value, *_ = kpss(seasonal_difference, regression="c", nlags="auto")
    return 1 if p_value < KPSS_ALPHA else 0


def fit(values: np.ndarray, spec: Spec) -> Any:
    """Fit one spec by maximum likelihood, keeping no filter history; warnings are logged, not shown."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = spec.model(values).fit(disp=False, maxiter=MAX_FIT_ITERATIONS, low_memory=True)
    for warning in caught:
        log.debug("%s: %s", spec.label(), warning.message)
    return results


def select(train: np.ndarray, season: int) -> tuple[Spec, Any]:
    """The candidate with the lowest finite AIC on the training window, converged fits first, and its fit."""
    best: tuple[bool, float, Spec, Any] | None = None
    for spec in candidates(train, season):
        try:
            results = fit(train, spec)
        except (np.linalg.LinAlgError, ValueError) as exc:
            log.info("%s: not fitted (%s)", spec.label(), exc)
            continue
        aic = comparable_aic(results, spec, train)
        converged = bool((results.mle_retvals or {}).get("converged", True))
        log.info("%s: AIC %.1f%s", spec.label(), aic, "" if converged else " (not converged)")
        if np.isfinite(aic) and (best is None or (not converged, aic) < (not best[0], best[1])):
            best = (converged, aic, spec, results)
    if best is None:
        raise ModelError("no candidate model could be fitted; check the series for long constant stretches")
    return best[2], best[3]


def holdout_metrics(actual: np.ndarray, predicted: np.ndarray, train: np.ndarray, season: int) -> dict[str, Any]:
    """MAE, MAPE, MASE of a holdout forecast and the seasonal-naive MAE on the same periods."""
    errors = np.abs(actual - predicted)
    mae = float(errors.mean())
    nonzero = actual != 0
    mape = float((errors[nonzero] / actual[nonzero]).mean()) if nonzero.any() else None
    scale = float(np.abs(train[season:] - train[:-season]).mean())
    naive = np.resize(train[-season:], len(actual))  # the last training season, repeated
    return {
        "periods": len(actual),
        "mae": mae,
        "mape": mape,
        "mase": mae / scale if scale > 0 else None,
        "seasonal_naive_mae": float(np.abs(actual - naive).mean()),
    }


def served_results(values: np.ndarray, spec: Spec) -> Any:
    """Refit the chosen spec on the whole series and keep only what forecasting needs."""
    fitted = fit(values, spec)
    return spec.model(values).filter(fitted.params, conserve_memory=SERVED_MEMORY)


def reference_forecasts(
    model_file: Path, horizons: list[int], *, max_horizon: int, forecast_options: dict[str, Any]
) -> dict[str, list[float]]:
    """Point forecasts of the saved model, reloaded, for each horizon; checks the served table agrees."""
    results = load_pickle(str(model_file))
    kwargs = {"level": INTERVAL_LEVEL, **forecast_options}
    try:
        table = forecast(results, max_horizon, **kwargs)
        references = {str(h): [row["value"] for row in forecast(results, h, **kwargs)] for h in horizons}
    except ValueError as exc:
        raise ModelError(f"{model_file}: {exc}") from None
    for key, values in references.items():
        if values != [row["value"] for row in table[: int(key)]]:
            raise ModelError(f"{model_file}: the {key}-period forecast differs from the served table's first rows")
    return references


def build(series: Series, *, out: Path, name: str, max_horizon: int) -> dict[str, Any]:
    """Select, evaluate, refit and save the model; return model.json's content."""
    values = series.values.to_numpy(dtype=float)
    season = series.season_length
    holdout = max(season, 1)
    train, actual = values[:-holdout], values[-holdout:]
    spec, train_results = select(train, season)
    predicted = np.asarray(train_results.forecast(steps=holdout), dtype=float)
    if spec.transform == "log1p":
        predicted = np.expm1(predicted)
    predicted = np.maximum(predicted, 0.0)  # as served: demand forecasts are clipped at zero
    metrics = holdout_metrics(actual, predicted, train, season)
    results = served_results(values, spec)
    out.mkdir(parents=True, exist_ok=True)
    model_file = out / MODEL_FILE
    partial = out / (MODEL_FILE + ".tmp")
    results.save(str(partial))
    partial.replace(model_file)
    index = series.values.index
    last_period = index[-1].date().isoformat()
    horizons = sorted({1, season, max_horizon} & set(range(1, max_horizon + 1)))
    meta = {
        "name": name,
        "version": model_version(model_file),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "libraries": {
            "python": platform.python_version(),
            "statsmodels": statsmodels.__version__,
            "pandas": pd.__version__,
            "numpy": np.__version__,
        },
        "source": series.source,
        "frequency": series.frequency,
        "season_length": season,
        "order": list(spec.order),
        "seasonal_order": list(spec.seasonal_order),
        "transform": spec.transform,
        "training_window": {
            "start": index[0].date().isoformat(),
            "end": last_period,
            "periods": len(values),
        },
        "last_period": last_period,
        "max_horizon": max_horizon,
        "interval_level": INTERVAL_LEVEL,
        "holdout": metrics,
        "reference_forecasts": reference_forecasts(
            model_file,
            horizons,
            max_horizon=max_horizon,
            forecast_options={"last_period": last_period, "frequency": series.frequency, "transform": spec.transform},
        ),
    }
    partial_meta = out / (META_FILE + ".tmp")
    partial_meta.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    partial_meta.replace(out / META_FILE)
    log.info("model %s: %s", meta["version"], spec.label())
    return meta
