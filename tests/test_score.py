"""The scoring entry script: init() and run() in-process on a real built model, and once behind real azmlinfsrv."""

from __future__ import annotations

import ast
import http.client
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from flask import Request
from statsmodels.tsa.statespace.sarimax import SARIMAX
from werkzeug.test import EnvironBuilder

from deploy.base import PROJECT_ROOT
from service import score, swagger_gen

SERVICE = PROJECT_ROOT / "service"
SCHEMAS = SERVICE / "schemas"
SERVER = Path(sys.executable).parent / "azmlinfsrv"
SERVER_START_DEADLINE_S = 90.0  # a cold azmlinfsrv start with statsmodels takes a few seconds; 90 is generous
SERVER_STOP_DEADLINE_S = 15.0


def load_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    return schema


RESPONSE_VALIDATOR = jsonschema.Draft202012Validator(
    load_schema("response.schema.json"), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
ERROR_VALIDATOR = jsonschema.Draft202012Validator(load_schema("error.schema.json"))


def call(body: bytes | str | None = None, *, method: str = "POST", **environ: Any) -> tuple[int, str, Any, Any]:
    """run() on a werkzeug-built request: status, mimetype, parsed JSON body (or None), headers."""
    builder = EnvironBuilder(method=method, data=body, content_type="application/json", **environ)
    response = score.run(Request(builder.get_environ()))
    text = response.get_data(as_text=True)
    parsed = json.loads(text) if response.mimetype == "application/json" else None
    return response.status_code, response.mimetype, parsed, response.headers


@pytest.fixture(scope="module")
def meta(default_model: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((default_model / "model.json").read_text())
    return result


@pytest.fixture
def served(default_model: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """score.init() run on the default model, as the server does at start."""
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(default_model))
    score.init()
    return default_model


# --- good requests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("horizon", [1, 2, 12, 24])
def test_forecast_matches_contract_and_reference(served: Path, meta: dict[str, Any], horizon: int) -> None:
    status, mimetype, body, _ = call(json.dumps({"horizon": horizon}))
    assert (status, mimetype) == (200, "application/json"), body
    RESPONSE_VALIDATOR.validate(body)
    assert body["horizon"] == horizon and len(body["result"]) == len(body["forecasts"]) == horizon
    assert body["model"] == {"name": meta["name"], "version": meta["version"]}
    assert body["interval_level"] == 0.95
    periods = [row["period"] for row in body["forecasts"]]
    expected = [date(1994 + (8 + i) // 12, (8 + i) % 12 + 1, 1).isoformat() for i in range(horizon)]
    assert periods == expected, "periods are the consecutive months right after 1994-08"
    assert body["result"] == [row["value"] for row in body["forecasts"]]
    for row in body["forecasts"]:
        assert 0 <= row["lower"] <= row["value"] <= row["upper"], row
        assert all(np.isfinite([row["lower"], row["value"], row["upper"]]))
    reference = meta["reference_forecasts"]
    longest = reference[str(max(int(key) for key in reference))]
    assert body["result"] == (reference.get(str(horizon)) or longest[:horizon])


def test_legacy_data_form_gives_the_same_forecast(served: Path) -> None:
    _, _, legacy, _ = call('{"data": [3]}')
    _, _, current, _ = call('{"horizon": 3}')
    assert legacy == current and len(legacy["result"]) == 3


def test_options_answers_allow_like_the_server(served: Path) -> None:
    status, _, _, headers = call(method="OPTIONS")
    assert status == 200
    assert headers.getlist("Allow") == ["POST", "OPTIONS"], "AMLResponse sends a comma list as repeated headers"


# --- refused requests -------------------------------------------------------------------------------------

BAD_REQUESTS = [
    pytest.param(b"", "$", "the body is empty", id="empty-body"),
    pytest.param(b"   \n", "$", "the body is empty", id="blank-body"),
    pytest.param(b"horizon=3", "$", "the body is not valid JSON", id="not-json"),
    pytest.param(b'{"horizon": 3', "$", "the body is not valid JSON", id="truncated-json"),
    pytest.param(b"\xff\xfe\x00", "$", "not UTF-8", id="not-utf8"),
    pytest.param(b"[3]", "$", "must be a JSON object", id="array-body"),
    pytest.param(b"3", "$", "must be a JSON object", id="number-body"),
    pytest.param(b"null", "$", "must be a JSON object", id="null-body"),
    pytest.param(b"{}", "horizon", "is required", id="missing-field"),
    pytest.param(b'{"horizon": 3, "extra": 1}', "$", 'unexpected field "extra"', id="extra-field"),
    pytest.param(b'{"horizn": 3}', "$", 'unexpected field "horizn"', id="misspelled-field"),
    pytest.param(b'{"horizon": 3, "data": [3]}', "$", "either horizon or the legacy data", id="both-forms"),
    pytest.param(b'{"horizon": "3"}', "horizon", 'must be an integer, got string "3"', id="string"),
    pytest.param(b'{"horizon": true}', "horizon", "must be an integer, got boolean true", id="boolean"),
    pytest.param(b'{"horizon": 3.0}', "horizon", "must be an integer, got number 3.0", id="integral-float"),
    pytest.param(b'{"horizon": 2.5}', "horizon", "must be an integer, got number 2.5", id="fraction"),
    pytest.param(b'{"horizon": null}', "horizon", "must be an integer, got null", id="null"),
    pytest.param(b'{"horizon": [3]}', "horizon", "must be an integer, got an array", id="list"),
    pytest.param(b'{"horizon": 0}', "horizon", "must be at least 1, got 0", id="zero"),
    pytest.param(b'{"horizon": -4}', "horizon", "must be at least 1, got -4", id="negative"),
    pytest.param(b'{"horizon": 25}', "horizon", "must be at most 24 (the model's max_horizon), got 25", id="too-far"),
    pytest.param(b'{"horizon": NaN}', "$", "NaN is not a JSON value", id="nan-literal"),
    pytest.param(b'{"horizon": 1' + b"0" * 200 + b"}", "$", "a number of 201 digits is too long", id="huge-integer"),
    pytest.param(b"[" * 50_000, "$", "nested too deeply", id="deep-nesting"),
    pytest.param(b'{"data": 3}', "data", "must be a list holding one integer", id="data-not-list"),
    pytest.param(b'{"data": []}', "data", "exactly one integer (the horizon), got 0 items", id="data-empty"),
    pytest.param(b'{"data": [3, 4]}', "data", "exactly one integer (the horizon), got 2 items", id="data-two"),
    pytest.param(b'{"data": [true]}', "data[0]", "must be an integer, got boolean true", id="data-boolean"),
    pytest.param(b'{"data": [3.0]}', "data[0]", "must be an integer, got number 3.0", id="data-float"),
    pytest.param(b'{"data": [0]}', "data[0]", "must be at least 1, got 0", id="data-zero"),
    pytest.param(b'{"data": [99]}', "data[0]", "must be at most 24", id="data-too-far"),
]


@pytest.mark.parametrize(("body", "field", "message"), BAD_REQUESTS)
def test_bad_request_is_400_naming_the_field(served: Path, body: bytes, field: str, message: str) -> None:
    status, mimetype, answer, _ = call(body)
    assert (status, mimetype) == (400, "application/json"), answer
    ERROR_VALIDATOR.validate(answer)
    assert answer["error"]["field"] == field
    assert message in answer["error"]["message"]
    assert "Validator" not in answer["error"]["message"] and "{'" not in answer["error"]["message"]


def test_many_unknown_fields_are_capped_in_the_message(served: Path) -> None:
    long_name = "k" * 500
    body = json.dumps({"horizon": 3, long_name: 0, **{f"f{i:04d}": 0 for i in range(4000)}})
    assert len(body) < score.MAX_BODY_BYTES
    status, _, answer, _ = call(body)
    message = answer["error"]["message"]
    assert status == 400
    assert message.startswith('unexpected fields "f0000", "f0001", "f0002", "f0003", "f0004" and 3996 more;')
    assert "f0005" not in message and long_name not in message
    assert len(message) < 400


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_json(served: Path, method: str) -> None:
    status, mimetype, answer, headers = call(method=method)
    assert (status, mimetype) == (405, "application/json")
    ERROR_VALIDATOR.validate(answer)
    assert answer["error"]["field"] == "$" and method in answer["error"]["message"]
    assert headers.getlist("Allow") == ["POST", "OPTIONS"]


def test_declared_huge_body_is_413_json(served: Path) -> None:
    status, mimetype, answer, _ = call(b'{"horizon": 3}' + b" " * 70_000)
    assert (status, mimetype) == (413, "application/json")
    assert answer["error"]["field"] == "$" and "65536-byte limit" in answer["error"]["message"]


def test_chunked_huge_body_is_413_json(served: Path) -> None:
    body = b'{"horizon": 3' + b" " * 70_000 + b"}"
    builder = EnvironBuilder(method="POST", input_stream=io.BytesIO(body), content_type="application/json")
    environ = builder.get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input_terminated"] = True  # what gunicorn sets for Transfer-Encoding: chunked
    response = score.run(Request(environ))
    assert (response.status_code, response.mimetype) == (413, "application/json")


# --- forecast(): clipping and the non-finite guard on real statsmodels results ----------------------------


def test_negative_forecasts_are_clipped_at_zero() -> None:
    falling = np.linspace(100.0, 5.0, 40)
    results = SARIMAX(falling, order=(0, 1, 0), trend="c").filter([-2.5, 1.0])  # drift -2.5, variance 1
    rows = score.forecast(results, 6, last_period="2020-01-01", frequency="MS", level=0.95)
    raw = np.asarray(results.get_forecast(6).predicted_mean)
    assert raw[-1] < 0, "the fixture must forecast below zero to test the clipping"
    assert [row["value"] for row in rows] == [max(value, 0.0) for value in raw.tolist()]
    assert all(0 <= row["lower"] <= row["value"] <= row["upper"] for row in rows)
    assert [row["period"] for row in rows][:2] == ["2020-02-01", "2020-03-01"]


def test_non_finite_forecast_is_refused() -> None:
    results = SARIMAX(np.arange(30.0), order=(1, 0, 0)).filter([np.nan, 1.0])
    with pytest.raises(ValueError, match="non-finite values"):
        score.forecast(results, 3, last_period="2020-01-01", frequency="D", level=0.95)


# --- init(): where the model is found, and failing loudly when it is not ----------------------------------


def copy_model(source: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in ("model.pkl", "model.json"):
        shutil.copy2(source / name, target / name)
    return target


@pytest.mark.parametrize(
    "layout",
    [
        pytest.param(".", id="root"),
        pytest.param("outputs", id="outputs"),
        pytest.param("model", id="subfolder"),
        pytest.param("demand-forecast/3", id="name-version"),
    ],
)
def test_init_finds_the_model(
    default_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, caplog: pytest.LogCaptureFixture
) -> None:
    where = copy_model(default_model, tmp_path / layout)
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    with caplog.at_level("INFO", logger="azmlinfsrv.score"):
        score.init()
    assert score.find_model_dir(tmp_path) == where
    assert f"from {where}:" in caplog.text
    assert call('{"horizon": 1}')[0] == 200


def test_init_without_a_model_lists_every_path_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty" / "1").mkdir(parents=True)
    (tmp_path / "outputs").mkdir()
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    with pytest.raises(score.ModelNotFoundError) as caught:
        score.init()
    message = str(caught.value)
    for tried in (tmp_path, tmp_path / "outputs", tmp_path / "empty", tmp_path / "empty" / "1"):
        assert str(tried) in message
    assert "model.pkl" in message and "model.json" in message


def test_init_without_model_dir_variable_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZUREML_MODEL_DIR", raising=False)
    with pytest.raises(score.ModelNotFoundError, match=r"\$AZUREML_MODEL_DIR is not set"):
        score.init()


def test_init_refuses_two_models(default_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy_model(default_model, tmp_path / "a")
    copy_model(default_model, tmp_path / "b")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    with pytest.raises(score.ModelNotFoundError, match="2 models under"):
        score.init()


def test_init_refuses_a_model_json_of_another_build(
    default_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_model(default_model, tmp_path)
    card = json.loads((tmp_path / "model.json").read_text())
    card["version"] = "000000000000"
    (tmp_path / "model.json").write_text(json.dumps(card))
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    with pytest.raises(score.ModelNotFoundError, match=r"but model\.json says 000000000000"):
        score.init()


def test_init_refuses_model_json_missing_fields(
    default_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_model(default_model, tmp_path)
    card = json.loads((tmp_path / "model.json").read_text())
    del card["max_horizon"]
    (tmp_path / "model.json").write_text(json.dumps(card))
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    with pytest.raises(score.ModelNotFoundError, match="missing max_horizon"):
        score.init()


# --- the entry script stands alone, schemas and swagger stay in step --------------------------------------

ALLOWED_IMPORTS = {"jsonschema", "numpy", "pandas", "statsmodels", "flask", "azureml_inference_server_http"}


def test_score_imports_no_project_module() -> None:
    tree = ast.parse((SERVICE / "score.py").read_text())
    roots = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    roots |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    foreign = roots - ALLOWED_IMPORTS - set(sys.stdlib_module_names) - {"__future__"}
    assert not foreign, f"score.py must deploy alone; it imports {sorted(foreign)}"


def test_score_loads_from_its_file_like_the_server(tmp_path: Path) -> None:
    code = (
        "import importlib.util, sys; spec = importlib.util.spec_from_file_location('entry_module', sys.argv[1]); "
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); print(module.MODEL_FILE)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(SERVICE / "score.py")],
        cwd=tmp_path,
        env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "model.pkl", done.stderr


def test_request_schema_is_stricter_only_about_floats() -> None:
    stock = jsonschema.Draft202012Validator(load_schema("request.schema.json"))
    strict = score.request_validator()
    assert stock.is_valid({"horizon": 3.0}) and not strict.is_valid({"horizon": 3.0})
    for ok in ({"horizon": 3}, {"data": [3]}):
        assert stock.is_valid(ok) and strict.is_valid(ok)
    for bad in ({"horizon": True}, {"horizon": 0}, {}, {"data": [1, 2]}, {"horizon": 1, "x": 2}):
        assert not stock.is_valid(bad) and not strict.is_valid(bad)


@pytest.mark.parametrize("name", ["request.schema.json", "response.schema.json", "error.schema.json"])
def test_schemas_are_valid_draft_2020_12_with_valid_examples(name: str) -> None:
    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema" and schema["$id"].startswith("urn:")
    jsonschema.Draft202012Validator.check_schema(schema)
    for example in schema["examples"]:
        jsonschema.Draft202012Validator(schema).validate(example)


def test_swagger_files_are_up_to_date() -> None:
    for filename, text in swagger_gen.documents().items():
        assert (SERVICE / filename).read_text() == text, f"{filename} is stale: run python -m service.swagger_gen"


def test_openapi_31_embeds_the_schema_files_unchanged() -> None:
    document = json.loads((SERVICE / "swagger3.1.json").read_text())
    assert document["openapi"] == "3.1.0"
    schemas = document["components"]["schemas"]
    assert schemas["ServiceInput"] == load_schema("request.schema.json")
    assert schemas["ServiceOutput"] == load_schema("response.schema.json")
    assert schemas["ErrorResponse"] == load_schema("error.schema.json")
    post = document["paths"]["/score"]["post"]
    assert post["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    assert "get" in document["paths"]["/"]


def test_swagger_2_has_no_draft_2020_keywords() -> None:
    text = (SERVICE / "swagger.json").read_text()
    for keyword in ('"prefixItems"', '"$schema"', '"$id"', '"const"', '"examples"'):
        assert keyword not in text
    data = json.loads(text)["definitions"]["ServiceInput"]["properties"]["data"]
    assert (data["items"]["type"], data["minItems"], data["maxItems"]) == ("integer", 1, 1)


def test_service_requirements_are_pinned_like_the_lock() -> None:
    lock = {}
    for line in (PROJECT_ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            lock[name.lower().replace("_", "-")] = version.strip()
    pins = [line for line in (SERVICE / "requirements.txt").read_text().splitlines() if line and line[0] != "#"]
    assert pins, "service/requirements.txt lists no packages"
    for pin in pins:
        name, version = pin.split("==")
        assert lock.get(name.lower().replace("_", "-")) == version, f"{pin} differs from requirements.lock"
    pinned = {pin.split("==")[0].lower() for pin in pins}
    needed = {"azureml-inference-server-http", "jsonschema", "numpy", "pandas", "scipy", "statsmodels", "flask"}
    assert needed <= pinned


# --- one real server ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def send(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, str, bytes]:
    """One request to the loopback server: status, content type, body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


@pytest.fixture
def server(default_model: Path, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """azmlinfsrv serving service/score.py on a free port; stopped by its pid at teardown."""
    port = free_port()
    log_file = tmp_path / "server.log"
    env = {**os.environ, "AML_APP_ROOT": str(SERVICE)}
    command = [str(SERVER), "--entry_script", str(SERVICE / "score.py"), "--model_dir", str(default_model)]
    with log_file.open("wb") as log:
        process = subprocess.Popen([*command, "--port", str(port)], cwd=tmp_path, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + SERVER_START_DEADLINE_S
        while True:
            assert process.poll() is None, f"azmlinfsrv exited {process.returncode}:\n{log_file.read_text()[-3000:]}"
            try:
                if send(port, "GET", "/")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"azmlinfsrv not healthy in time:\n{log_file.read_text()[-3000:]}"
            time.sleep(0.25)
        yield port, log_file
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=SERVER_STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=SERVER_STOP_DEADLINE_S)


@pytest.mark.slow
@pytest.mark.local
def test_real_server_serves_forecasts_errors_and_swagger(server: tuple[int, Path], meta: dict[str, Any]) -> None:
    port, log_file = server
    status, content_type, raw = send(port, "POST", "/score", b'{"horizon": 12}')
    assert (status, content_type) == (200, "application/json"), raw
    body = json.loads(raw)
    RESPONSE_VALIDATOR.validate(body)
    assert body["result"] == meta["reference_forecasts"]["12"]

    status, content_type, raw = send(port, "POST", "/score", b'{"horizon": 3.0}')
    assert (status, content_type) == (400, "application/json"), raw
    assert json.loads(raw)["error"]["field"] == "horizon"

    status, content_type, raw = send(port, "GET", "/score")
    assert (status, content_type) == (405, "application/json") and json.loads(raw)["error"]["field"] == "$"

    status, _, raw = send(port, "GET", "/swagger.json?version=3.1")
    assert status == 200 and json.loads(raw) == json.loads((SERVICE / "swagger3.1.json").read_text())
    status, _, raw = send(port, "GET", "/swagger.json?version=2")
    assert status == 200 and json.loads(raw) == json.loads((SERVICE / "swagger.json").read_text())

    log_text = log_file.read_text()
    assert f"azmlinfsrv.score - serving demand-forecast {meta['version']}" in log_text
    assert '"horizon": 3.0' not in log_text, "request bodies stay out of the log"
