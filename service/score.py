"""Scoring entry script for azureml-inference-server-http: `init()` loads the model, `run()` answers /score.

    azmlinfsrv --entry_script service/score.py --model_dir artifacts/model --port 5001
    curl -s -X POST localhost:5001/score -H 'Content-Type: application/json' -d '{"horizon": 3}'

Deployable on its own with `service/` as the source directory: it imports no project module, only the standard
library, numpy, pandas, statsmodels, jsonschema and the inference server.

Request `{"horizon": N}` or the legacy `{"data": [N]}`, 1 <= N <= max_horizon of model.json, checked against
schemas/request.schema.json (Draft 2020-12) with one stricter rule: the horizon is an integer literal, so 3.0 is
refused like "3" and true. Refusals answer JSON `{"error": {"field": ..., "message": ...}}`: 400 for bad input,
405 for a method other than POST that reaches run() (OPTIONS answers 200 with `Allow`), 413 for a body over
MAX_BODY_BYTES. Client input never causes a 5xx. Behind the real server, 405 for PUT/DELETE/PATCH comes from the
server itself as JSON {"message": ...}, and OPTIONS is the server's CORS preflight (text/html), not run().

Forecasts depend only on the model, so init() computes the max_horizon table once with `forecast()` and run()
answers with its first N rows; the build (service/model.py) checks those equal `forecast(results, N)`. A model
fitted to log1p(demand) (model.json "transform") is mapped back with expm1. Point forecasts and bounds are
clipped at zero (demand is never negative). A model whose table holds NaN or Infinity fails init(), so the
server never starts with it and a response can never carry a non-finite number.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, NamedTuple

import jsonschema
import numpy as np
import pandas as pd
from azureml_inference_server_http.api.aml_request import rawhttp
from azureml_inference_server_http.api.aml_response import AMLResponse
from flask import Request
from pandas.tseries.frequencies import to_offset
from statsmodels.iolib.smpickle import load_pickle

# The server gives handlers only to the "azmlinfsrv" logger (propagation off, root logger bare), so a child
# of it is how these lines reach the server log.
log = logging.getLogger("azmlinfsrv.score")

MODEL_FILE = "model.pkl"
META_FILE = "model.json"
MODEL_DIR_ENV = "AZUREML_MODEL_DIR"
REQUEST_SCHEMA = Path(__file__).resolve().parent / "schemas" / "request.schema.json"
MAX_BODY_BYTES = 64 * 1024  # a forecast request is under 40 bytes; a body this big is a mistake or an attack
MAX_INT_DIGITS = 100  # far beyond any horizon, far below the cost of converting a 60 KB digit string
MAX_QUOTED_CHARS = 40  # how much of a caller's value an error message or log line repeats
MAX_NAMED_FIELDS = 5  # unexpected field names an error lists; a body of thousands of keys must not echo them all
VERSION_CHARS = 12  # model version: this many hex characters of the SHA-256 of model.pkl
REQUIRED_META = ("name", "version", "frequency", "last_period", "max_horizon", "interval_level")
TRANSFORMS = ("none", "log1p")  # how the model saw the series; forecasts are mapped back with the inverse
EXAMPLE = '{"horizon": 3}'
# When a body breaks several rules, report the most basic one first.
RULE_ORDER = {"type": 0, "additionalProperties": 1, "minProperties": 2, "maxProperties": 3}


class ModelNotFoundError(RuntimeError):
    """No usable model under $AZUREML_MODEL_DIR; raised by init() so the server refuses to start."""


class RequestError(Exception):
    """A request the service refuses: HTTP status, the field at fault and what to do."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.status, self.field, self.message = status, field, message


class Served(NamedTuple):
    """What init() prepares for run(): the model's identity, its limits and its forecast table.

    A NamedTuple, not a dataclass: the server loads this file without registering it in sys.modules, and
    dataclasses look their module up there (AttributeError at import).
    """

    name: str
    version: str
    max_horizon: int
    interval_level: float
    table: tuple[dict[str, Any], ...]
    validator: Any  # a jsonschema validator for the request schema


_served: Served | None = None


def forecast(
    results: Any, horizon: int, *, last_period: str, frequency: str, level: float, transform: str = "none"
) -> list[dict[str, Any]]:
    """Forecast `horizon` periods after `last_period`: ISO period, point value and interval, clipped at zero."""
    if transform not in TRANSFORMS:
        raise ValueError(f"transform {transform!r} is not one of {', '.join(TRANSFORMS)}; rebuild the model")
    prediction = results.get_forecast(steps=horizon)
    mean = np.asarray(prediction.predicted_mean, dtype=float)
    bounds = np.asarray(prediction.conf_int(alpha=round(1.0 - level, 10)), dtype=float)
    if transform == "log1p":
        with np.errstate(over="ignore"):  # an overflow becomes inf, refused just below
            mean, bounds = np.expm1(mean), np.expm1(bounds)
    if not (np.isfinite(mean).all() and np.isfinite(bounds).all()):
        raise ValueError(f"the model forecasts non-finite values within {horizon} periods; rebuild it")
    offset = to_offset(frequency)
    periods = pd.date_range(start=pd.Timestamp(last_period) + offset, periods=horizon, freq=offset)
    rows = []
    for period, point, (low, high) in zip(periods, mean.tolist(), bounds.tolist(), strict=True):
        value = max(point, 0.0)
        rows.append(
            {
                "period": period.date().isoformat(),
                "value": value,
                "lower": min(max(low, 0.0), value),
                "upper": max(high, value),
            }
        )
    return rows


def find_model_dir(root: Path) -> Path:
    """The folder holding model.pkl and model.json: root, root/outputs, or one or two folders down."""
    children = _subfolders(root)
    grandchildren = [grandchild for child in children for grandchild in _subfolders(child)]
    levels = [[root], [root / "outputs"], children, grandchildren]
    tried: list[Path] = []
    for level in levels:
        level = [folder for folder in level if folder not in tried]
        tried.extend(level)
        found = [folder for folder in level if (folder / MODEL_FILE).is_file() and (folder / META_FILE).is_file()]
        if len(found) == 1:
            return found[0]
        if found:
            raise ModelNotFoundError(
                f"{len(found)} models under {MODEL_DIR_ENV}={root}: {', '.join(map(str, found))}; "
                f"point {MODEL_DIR_ENV} at one of them"
            )
    raise ModelNotFoundError(
        f"no folder with both {MODEL_FILE} and {META_FILE} under {MODEL_DIR_ENV}={root}; "
        f"tried: {', '.join(map(str, tried))}"
    )


def load_meta(path: Path) -> dict[str, Any]:
    """Read model.json and check it names everything run() needs."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"{path}: not a readable model.json ({exc}); rebuild the model") from None
    missing = [key for key in REQUIRED_META if not isinstance(meta, dict) or key not in meta]
    if missing:
        raise ModelNotFoundError(f"{path}: missing {', '.join(missing)}; rebuild it with python -m service.build")
    return dict(meta)


def model_version(path: Path) -> str:
    """The version a model file gets: the first VERSION_CHARS hex characters of its SHA-256."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:VERSION_CHARS]


def request_validator() -> Any:
    """A Draft 2020-12 validator for the request schema whose integers exclude floats such as 3.0."""
    schema = json.loads(REQUEST_SCHEMA.read_text(encoding="utf-8"))
    base = jsonschema.Draft202012Validator
    base.check_schema(schema)
    checker = base.TYPE_CHECKER.redefine("integer", _is_integer_literal)
    strict = jsonschema.validators.extend(base, type_checker=checker)
    return strict(schema)


def init() -> None:
    """Load the model from $AZUREML_MODEL_DIR and prepare its forecast table; raise if anything is missing."""
    global _served
    configured = os.environ.get(MODEL_DIR_ENV)
    if not configured:
        raise ModelNotFoundError(f"${MODEL_DIR_ENV} is not set; start the server with --model_dir <model folder>")
    folder = find_model_dir(Path(configured))
    meta = load_meta(folder / META_FILE)
    actual = model_version(folder / MODEL_FILE)
    if actual != meta["version"]:
        raise ModelNotFoundError(
            f"{folder / MODEL_FILE} has version {actual} but {META_FILE} says {meta['version']}; "
            "copy both files from the same build"
        )
    results = load_pickle(str(folder / MODEL_FILE))
    level = float(meta["interval_level"])
    table = forecast(
        results,
        int(meta["max_horizon"]),
        last_period=meta["last_period"],
        frequency=meta["frequency"],
        level=level,
        transform=meta.get("transform", "none"),
    )
    _served = Served(
        name=str(meta["name"]),
        version=actual,
        max_horizon=int(meta["max_horizon"]),
        interval_level=level,
        table=tuple(table),
        validator=request_validator(),
    )
    log.info(
        "serving %s %s from %s: up to %d %s periods after %s",
        _served.name,
        actual,
        folder,
        _served.max_horizon,
        meta["frequency"],
        meta["last_period"],
    )


@rawhttp
def run(request: Request) -> AMLResponse:
    """Answer one /score request: the forecast, or a JSON refusal naming the field at fault."""
    if _served is None:
        raise RuntimeError("run() was called before init()")
    if request.method == "OPTIONS":
        return AMLResponse("", 200, {"Allow": "POST, OPTIONS"})
    try:
        if request.method != "POST":
            raise RequestError(405, "$", f"{request.method} is not allowed on /score; POST a JSON body like {EXAMPLE}")
        horizon = parse_request(_read_body(request), validator=_served.validator, max_horizon=_served.max_horizon)
    except RequestError as exc:
        log.info("refused with %d: %s %s", exc.status, exc.field, exc.message)
        headers = {"Allow": "POST, OPTIONS"} if exc.status == 405 else {}
        return AMLResponse({"error": {"field": exc.field, "message": exc.message}}, exc.status, headers, json_str=True)
    rows = _served.table[:horizon]
    body = {
        "result": [row["value"] for row in rows],
        "forecasts": [dict(row) for row in rows],
        "horizon": horizon,
        "interval_level": _served.interval_level,
        "model": {"name": _served.name, "version": _served.version},
    }
    log.info("forecast %d periods", horizon)
    return AMLResponse(body, 200, json_str=True)


def parse_request(raw: bytes, *, validator: Any, max_horizon: int) -> int:
    """The horizon a request body asks for, or RequestError(400) naming the field and the problem."""
    if not raw.strip():
        raise RequestError(400, "$", f"the body is empty; send a JSON object like {EXAMPLE}")
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, parse_int=_parse_int)
    except UnicodeDecodeError:
        raise RequestError(400, "$", f"the body is not UTF-8 text; send a JSON object like {EXAMPLE}") from None
    except json.JSONDecodeError as exc:
        where = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        raise RequestError(400, "$", f"the body is not valid JSON ({where}); send {EXAMPLE}") from None
    except RecursionError:
        raise RequestError(400, "$", f"the body is nested too deeply to be a request; send {EXAMPLE}") from None
    except ValueError as exc:
        raise RequestError(400, "$", f"the body is not valid JSON ({_quote(exc)}); send {EXAMPLE}") from None
    errors = sorted(validator.iter_errors(body), key=lambda e: (len(e.absolute_path), RULE_ORDER.get(e.validator, 9)))
    if errors:
        raise RequestError(400, *_explain(errors[0]))
    field, horizon = ("horizon", body["horizon"]) if "horizon" in body else ("data[0]", body["data"][0])
    if horizon > max_horizon:
        problem = f"must be at most {max_horizon} (the model's max_horizon), got {_quote(horizon)}"
        raise RequestError(400, field, problem)
    return int(horizon)


def _read_body(request: Request) -> bytes:
    """The request body, refusing (413) anything over MAX_BODY_BYTES before reading it all."""
    declared = request.content_length
    if declared is not None and declared > MAX_BODY_BYTES:
        problem = f"the body is {declared} bytes, over the {MAX_BODY_BYTES}-byte limit; send {EXAMPLE}"
        raise RequestError(413, "$", problem)
    raw: bytes = request.stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise RequestError(413, "$", f"the body is over the {MAX_BODY_BYTES}-byte limit; send {EXAMPLE}")
    return raw


def _explain(error: Any) -> tuple[str, str]:
    """Field path and plain message for a jsonschema error (never jsonschema's own repr of the body)."""
    path = list(error.absolute_path)
    field = "$" if not path else str(path[0]) + "".join(f"[{part}]" for part in path[1:])
    rule, value = error.validator, error.instance
    if rule == "type" and field == "$":
        return field, f"the body must be a JSON object like {EXAMPLE}, got {_describe(value)}"
    if rule == "type" and field == "data":
        return field, f"must be a list holding one integer, like [3]; got {_describe(value)}"
    if rule == "type":
        return field, f"must be an integer, got {_describe(value)}"
    if rule == "minimum":
        return field, f"must be at least 1, got {_quote(value)}"
    if rule == "additionalProperties":
        extra = sorted(set(value) - {"horizon", "data"})
        names = ", ".join(_quote(json.dumps(key)) for key in extra[:MAX_NAMED_FIELDS])
        if len(extra) > MAX_NAMED_FIELDS:
            names += f" and {len(extra) - MAX_NAMED_FIELDS} more"
        return field, f"unexpected field{'s' if len(extra) > 1 else ''} {names}; send only horizon, like {EXAMPLE}"
    if rule == "minProperties":
        return "horizon", f"is required; send {EXAMPLE}"
    if rule == "maxProperties":
        return field, "send either horizon or the legacy data, not both"
    if rule in ("minItems", "items"):
        return "data", f"must hold exactly one integer (the horizon), got {len(value)} items"
    return field, _quote(error.message)


def _describe(value: Any) -> str:
    """A JSON value's type, and the value itself when short: 'boolean true', 'number 3.0', 'object'."""
    if isinstance(value, bool):
        return f"boolean {json.dumps(value)}"
    if isinstance(value, int | float):
        return f"number {_quote(value)}"
    if isinstance(value, str):
        return f"string {_quote(json.dumps(value))}"
    return {list: "an array", dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def _quote(value: Any) -> str:
    """A caller's value as text, cut to MAX_QUOTED_CHARS."""
    text = str(value)
    return text if len(text) <= MAX_QUOTED_CHARS else text[: MAX_QUOTED_CHARS - 3] + "..."


def _is_integer_literal(checker: Any, instance: Any) -> bool:
    """JSON Schema counts 3.0 (and, in Python, True) as integers; the service does not."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _reject_constant(name: str) -> Any:
    """json.loads hook: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not a JSON value")


def _parse_int(text: str) -> int:
    """json.loads hook: refuse integers too long to be a horizon before Python converts them."""
    if len(text) > MAX_INT_DIGITS:
        raise ValueError(f"a number of {len(text)} digits is too long")
    return int(text)


def _subfolders(folder: Path) -> list[Path]:
    """Sorted child folders, none when the folder is missing or unreadable."""
    try:
        return sorted(child for child in folder.iterdir() if child.is_dir())
    except OSError:
        return []
