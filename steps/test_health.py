"""health.feature: the deployment answers its health check and publishes the scoring contract."""

from __future__ import annotations

from typing import Any

from pytest_bdd import scenarios, then, when

from steps.checks import advice, first_difference, reach, resolve_pointer, without_identifiers
from steps.scoring_client import Reply, ScoringClient

scenarios("health.feature")

SCORING_ROUTE = "/score"
JSON = "application/json"


@when("the release engineer checks the service health", target_fixture="health")
def _(scoring_client: ScoringClient) -> Reply:
    """GET the health route."""
    return reach(scoring_client.health)


@then("the service reports it is healthy")
def _(health: Reply, scoring_client: ScoringClient) -> None:
    """The health route answers 200."""
    assert health.status == 200, (
        f"the health route {scoring_client.deployment.health_uri} answered {health.description}; expected HTTP 200; "
        + advice(health)
    )


@when("the release engineer reads the published API description", target_fixture="swagger")
def _(scoring_client: ScoringClient) -> dict[str, Any]:
    """GET the published swagger (OpenAPI 3.1) document."""
    reply = reach(scoring_client.swagger)
    uri = scoring_client.deployment.swagger_uri
    assert reply.status == 200 and isinstance(reply.json, dict), (
        f"the swagger route {uri} answered {reply.description}; expected HTTP 200 with an OpenAPI JSON document "
        "(azmlinfsrv serves service/swagger3.1.json from its app root)"
    )
    return reply.json


def scoring_operation(swagger: dict[str, Any]) -> dict[str, Any]:
    """The POST operation of the scoring route in a swagger document."""
    paths = swagger.get("paths") or {}
    routes = [path for path in paths if path.rstrip("/").endswith(SCORING_ROUTE)]
    assert routes, (
        f"the swagger document lists routes {sorted(paths)} but no {SCORING_ROUTE}; publish the scoring route"
    )
    operation = paths[routes[0]].get("post")
    assert isinstance(operation, dict), f"the swagger route {routes[0]} has no POST operation; callers score by POST"
    return operation


def described_schema(swagger: dict[str, Any], node: Any, where: str) -> Any:
    """The JSON schema of an application/json body described at `node` (a requestBody or a response)."""
    content = (resolve_pointer(swagger, node) or {}).get("content") or {}
    assert JSON in content, f"the swagger {where} describes content types {sorted(content)} but not {JSON}"
    return resolve_pointer(swagger, content[JSON].get("schema"))


@then("it describes the scoring route")
def _(swagger: dict[str, Any]) -> None:
    """The document has POST /score with a request body and a 200 response."""
    operation = scoring_operation(swagger)
    assert "requestBody" in operation and "200" in (operation.get("responses") or {}), (
        f"the swagger POST {SCORING_ROUTE} lacks a request body or a 200 response: keys {sorted(operation)}; "
        "publish both so callers can generate clients"
    )


@then("the request it describes is the contract request schema")
def _(swagger: dict[str, Any], contract_schemas: dict[str, dict[str, Any]]) -> None:
    """The published request schema is request.schema.json (ignoring $schema/$id)."""
    published = described_schema(swagger, scoring_operation(swagger).get("requestBody"), "request body")
    difference = first_difference(without_identifiers(published), without_identifiers(contract_schemas["request"]))
    assert difference is None, (
        f"the published request schema differs from service/schemas/request.schema.json {difference}; "
        "regenerate the swagger from the contract schemas"
    )


@then("the answer it describes is the contract response schema")
def _(swagger: dict[str, Any], contract_schemas: dict[str, dict[str, Any]]) -> None:
    """The published 200 schema is response.schema.json (ignoring $schema/$id)."""
    responses = scoring_operation(swagger).get("responses") or {}
    published = described_schema(swagger, responses.get("200"), "200 response")
    difference = first_difference(without_identifiers(published), without_identifiers(contract_schemas["response"]))
    assert difference is None, (
        f"the published response schema differs from service/schemas/response.schema.json {difference}; "
        "regenerate the swagger from the contract schemas"
    )
