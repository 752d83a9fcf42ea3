"""Write the swagger documents the inference server publishes, built from the JSON Schemas in schemas/.

    python -m service.swagger_gen            # rewrite service/swagger3.1.json and service/swagger.json
    python -m service.swagger_gen --check    # exit 1 when the committed files are out of date

azmlinfsrv reads `swagger3.1.json` (GET /swagger.json?version=3.1) and `swagger.json` (?version=2) from its
app root (AML_APP_ROOT), so both are written next to score.py. The 3.1 document embeds the schemas unchanged;
Swagger 2.0 cannot express Draft 2020-12 in full, so its copy is a best-effort translation (see `to_swagger2`).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

SERVICE_DIR = Path(__file__).resolve().parent
SCHEMA_FILES = {
    "ServiceInput": "request.schema.json",
    "ServiceOutput": "response.schema.json",
    "ErrorResponse": "error.schema.json",
}
OUTPUTS = {"swagger3.1.json": "openapi31", "swagger.json": "swagger2"}
TITLE = "Demand forecast scoring service"
API_VERSION = "1.0"
DESCRIPTION = (
    "Forecasts demand for the next N periods after the training data, with prediction intervals. "
    "Bad input answers 400 with a JSON body naming the field; the body limit is 64 KiB (413)."
)
# The 4xx answers /score gives, each with an ErrorResponse body.
REFUSALS = {
    "400": "The request is not a valid forecast request; the body names the field and the problem.",
    "405": "Only POST is allowed on /score.",
    "413": "The body is over 64 KiB.",
}


def load_schemas(schema_dir: Path = SERVICE_DIR / "schemas") -> dict[str, dict[str, Any]]:
    """The component schemas by name, read from the schema files."""
    return {
        name: json.loads((schema_dir / filename).read_text(encoding="utf-8")) for name, filename in SCHEMA_FILES.items()
    }


def openapi31(schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The OpenAPI 3.1 document: GET / (health) and POST /score, schemas embedded as they are."""

    def json_body(name: str, description: str) -> dict[str, Any]:
        content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}
        return {"description": description, "content": content}

    responses = {"200": json_body("ServiceOutput", "The forecast.")}
    responses.update({code: json_body("ErrorResponse", text) for code, text in REFUSALS.items()})
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "description": DESCRIPTION, "version": API_VERSION},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": {
            "/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": "Health probe: answers 200 'Healthy' while the service is up.",
                    "responses": {
                        "200": {
                            "description": "The service is up.",
                            "content": {"text/plain": {"schema": {"type": "string", "const": "Healthy"}}},
                        }
                    },
                }
            },
            "/score": {
                "post": {
                    "operationId": "RunMLService",
                    "description": "Forecast the next `horizon` periods.",
                    "security": [{}, {"Bearer": []}],
                    "requestBody": {"required": True, **json_body("ServiceInput", "How many periods to forecast.")},
                    "responses": responses,
                }
            },
        },
        "components": {
            "schemas": copy.deepcopy(schemas),
            "securitySchemes": {
                "Bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The service key, when the deployment has key authentication on.",
                }
            },
        },
    }


def to_swagger2(schema: Any) -> Any:
    """Best-effort Draft 2020-12 -> Swagger 2.0 schema: drop what 2.0 lacks, map the rest to its nearest form."""
    if isinstance(schema, list):
        return [to_swagger2(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("$schema", "$id", "jsonSchemaDialect"):
            continue
        if key == "prefixItems":
            out["items"] = to_swagger2(value[0])  # the request's legacy list holds one item
        elif key == "items" and value is False:
            out["maxItems"] = len(schema.get("prefixItems", []))
        elif key == "const":
            out["enum"] = [value]
        elif key == "examples":
            out["example"] = value[0]
        elif key == "exclusiveMinimum" and not isinstance(value, bool):
            out.update(minimum=value, exclusiveMinimum=True)
        elif key == "exclusiveMaximum" and not isinstance(value, bool):
            out.update(maximum=value, exclusiveMaximum=True)
        elif key in ("properties", "definitions"):
            out[key] = {name: to_swagger2(sub) for name, sub in value.items()}
        else:
            out[key] = to_swagger2(value)
    return out


def swagger2(schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The Swagger 2.0 document: the same two paths, schemas translated by `to_swagger2`."""
    responses: dict[str, Any] = {
        "200": {"description": "The forecast.", "schema": {"$ref": "#/definitions/ServiceOutput"}}
    }
    for code, text in REFUSALS.items():
        responses[code] = {"description": text, "schema": {"$ref": "#/definitions/ErrorResponse"}}
    return {
        "swagger": "2.0",
        "info": {"title": TITLE, "description": DESCRIPTION, "version": API_VERSION},
        "schemes": ["https", "http"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {
            "Bearer": {"type": "apiKey", "name": "Authorization", "in": "header", "description": "Bearer <key>"}
        },
        "paths": {
            "/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": "Health probe: answers 200 'Healthy' while the service is up.",
                    "produces": ["text/plain"],
                    "responses": {"200": {"description": "The service is up.", "schema": {"type": "string"}}},
                }
            },
            "/score": {
                "post": {
                    "operationId": "RunMLService",
                    "description": "Forecast the next `horizon` periods.",
                    "security": [{}, {"Bearer": []}],
                    "parameters": [
                        {
                            "name": "body",
                            "in": "body",
                            "required": True,
                            "description": "How many periods to forecast.",
                            "schema": {"$ref": "#/definitions/ServiceInput"},
                        }
                    ],
                    "responses": responses,
                }
            },
        },
        "definitions": {name: to_swagger2(schema) for name, schema in schemas.items()},
    }


def render(document: dict[str, Any]) -> str:
    """The file text of a document: stable key order as built, two-space indent, trailing newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def documents(schema_dir: Path = SERVICE_DIR / "schemas") -> dict[str, str]:
    """File name -> file text of every swagger document."""
    schemas = load_schemas(schema_dir)
    builders = {"openapi31": openapi31, "swagger2": swagger2}
    return {filename: render(builders[kind](schemas)) for filename, kind in OUTPUTS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.swagger_gen", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the files are up to date")
    parser.add_argument("--out", type=Path, default=SERVICE_DIR, help="folder to write to (default: service/)")
    args = parser.parse_args(argv)
    stale = []
    for filename, text in documents().items():
        target = args.out / filename
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current == text:
            continue
        stale.append(target)
        if not args.check:
            target.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(
            f"swagger_gen: out of date: {', '.join(map(str, stale))}; run python -m service.swagger_gen",
            file=sys.stderr,
        )
        return 1
    if stale:
        print(f"swagger_gen: wrote {', '.join(map(str, stale))}")
    else:
        print(f"swagger_gen: up to date: {', '.join(str(args.out / filename) for filename in OUTPUTS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
