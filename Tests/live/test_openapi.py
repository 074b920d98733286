"""docs/openapi.yaml against the running server: the document is valid OpenAPI 3.1, every route
is exercised, and every real answer (status, content type, headers, body) is one it documents."""

import gzip
import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from openapi_spec_validator import validate as validate_openapi

from conftest import BINARY

ROOT = Path(__file__).resolve().parents[2]
DOC = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
INGEST, READ, ADMIN = "ingest-openapi-0123456789", "read-openapi-0123456789", "admin-openapi-0123456789"
EVENT = {"endpoint": "/v1/chat/completions", "provider": "openrouter", "model": "gpt-4o",
         "stages": {"request_parsing": 0.001, "backend_fetch": 1.697, "stream_processing": 1.3}}


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def node_path(ref):
    assert ref.startswith("#/")
    return [part.replace("~1", "/").replace("~0", "~") for part in ref[2:].split("/")]


def documented(path, method, status):
    operation = DOC["paths"][path][method]
    spec = operation["responses"].get(str(status))
    assert spec is not None, f"{method.upper()} {path} answered {status}, which the document does not list"
    while "$ref" in spec:
        target = DOC
        for part in node_path(spec["$ref"]):
            target = target[part]
        spec = target
    return spec


class Checker:
    def __init__(self, server):
        self.server = server
        self.exercised = set()

    def __call__(self, method, path, status, body=None, headers=None, query=""):
        response = self.server.request(method.upper(), path + query, body, headers or {})
        assert response.status == status, f"{method.upper()} {path}{query}: {response.status} {response.body[:300]!r}"
        spec = documented(path, method, status)
        content_type = response.headers["Content-Type"]
        media = next((m for m in spec["content"] if content_type == m or content_type.split(";")[0] == m), None)
        assert media, f"{method.upper()} {path} {status}: Content-Type {content_type} is not documented"
        for name, header in spec.get("headers", {}).items():
            if name != "Idempotent-Replayed":
                assert response.headers[name], f"{method.upper()} {path} {status}: documented header {name} missing"
        if media.startswith("application/json"):
            schema = {**DOC, **spec["content"][media]["schema"]}
            jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(json.loads(response.body))
        self.exercised.add((path, method))
        return response


@pytest.fixture
def check(make_perfgate):
    server = make_perfgate(
        ["--max-body-size", "2KiB"],
        env={"PERFGATE_INGEST_TOKENS": INGEST, "PERFGATE_READ_TOKENS": READ, "PERFGATE_ADMIN_TOKENS": ADMIN},
    ).start()
    return Checker(server)


def test_the_document_is_valid_openapi():
    validate_openapi(DOC)


def test_every_route_answers_as_documented(check):
    J = {"Content-Type": "application/json"}
    # POST /v1/events
    check("post", "/v1/events", 200, json.dumps(EVENT), {**J, **bearer(INGEST)})
    check("post", "/v1/events", 200, json.dumps([EVENT, {**EVENT, "stages": {"backend_fetch": -1}}]), {**J, **bearer(INGEST)})
    check("post", "/v1/events", 200, gzip.compress(json.dumps({"events": [EVENT]}).encode()), {**J, "Content-Encoding": "gzip", **bearer(INGEST)})
    check("post", "/v1/events", 200, json.dumps(EVENT) + "\n", {"Content-Type": "application/x-ndjson", **bearer(INGEST)})
    keyed = {**J, **bearer(INGEST), "Idempotency-Key": "openapi-1"}
    check("post", "/v1/events", 200, json.dumps(EVENT), keyed)
    replay = check("post", "/v1/events", 200, json.dumps(EVENT), keyed)
    assert replay.headers["Idempotent-Replayed"] == "true"
    check("post", "/v1/events", 422, json.dumps({**EVENT, "model": "other"}), keyed)
    check("post", "/v1/events", 422, json.dumps({"stages": {"x": 1}}), {**J, **bearer(INGEST)})
    check("post", "/v1/events", 400, "[{", {**J, **bearer(INGEST)})
    check("post", "/v1/events", 400, json.dumps(EVENT), {**J, **bearer(INGEST), "Idempotency-Key": "a b"})
    check("post", "/v1/events", 413, json.dumps([EVENT] * 40), {**J, **bearer(INGEST)})
    check("post", "/v1/events", 415, "<event/>", {"Content-Type": "application/xml", **bearer(INGEST)})
    check("post", "/v1/events", 401, json.dumps(EVENT), J)
    check("post", "/v1/events", 403, json.dumps(EVENT), {**J, **bearer(READ)})
    check("post", "/v1/events", 431, json.dumps(EVENT), {**J, **bearer(INGEST), "X-Padding": "a" * 90_000})
    # POST /v1/traces: OTLP/JSON and protobuf
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "backend_fetch",
            "startTimeUnixNano": "1", "endTimeUnixNano": "2", "attributes": [{"key": "http.route", "value": {"stringValue": "/x"}}]}
    export = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    X = {"Content-Type": "application/x-protobuf"}
    check("post", "/v1/traces", 200, json.dumps({"resourceSpans": []}), {**J, **bearer(INGEST)})
    check("post", "/v1/traces", 200, json.dumps(export), {**J, **bearer(INGEST)})  # far too old: a partial success
    check("post", "/v1/traces", 200, b"", {**X, **bearer(INGEST)})
    check("post", "/v1/traces", 400, "{", {**J, **bearer(INGEST)})
    check("post", "/v1/traces", 400, b"\x0a\x05", {**X, **bearer(INGEST)})
    check("post", "/v1/traces", 413, json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span] * 20}]}]}), {**J, **bearer(INGEST)})
    check("post", "/v1/traces", 415, "<spans/>", {"Content-Type": "application/xml", **bearer(INGEST)})
    check("post", "/v1/traces", 401, json.dumps(export), J)
    check("post", "/v1/traces", 403, json.dumps(export), {**J, **bearer(READ)})
    check("post", "/v1/traces", 431, json.dumps(export), {**J, **bearer(INGEST), "X-Padding": "a" * 90_000})
    # GET /metrics
    page = check("get", "/metrics", 200, headers=bearer(READ))
    assert b"backend_ttfb_seconds_bucket" in page.body
    check("get", "/metrics", 401)
    check("get", "/metrics", 403, headers=bearer(INGEST))
    # GET /v1/trends
    check("get", "/v1/trends", 200, headers=bearer(READ), query="?metric=backend_ttfb_seconds&by=provider,model&min_count=1")
    check("get", "/v1/trends", 200, headers=bearer(READ), query="?metric=request_stage_duration_seconds&stage=backend_fetch&offset=1d&window=10m")
    check("get", "/v1/trends", 400, headers=bearer(READ), query="?metric=nope")
    check("get", "/v1/trends", 401, query="?metric=backend_ttfb_seconds")
    check("get", "/v1/trends", 403, headers=bearer(INGEST), query="?metric=backend_ttfb_seconds")
    # GET and DELETE /v1/series
    check("get", "/v1/series", 200, headers=bearer(READ), query="?endpoint=/v1/chat/completions")
    check("get", "/v1/series", 400, headers=bearer(READ), query="?region=eu")
    check("get", "/v1/series", 401, query="?endpoint=/x")
    check("get", "/v1/series", 403, headers=bearer(INGEST), query="?endpoint=/x")
    check("delete", "/v1/series", 200, headers=bearer(ADMIN), query="?metric=backend_ttfb_seconds&model=gpt-4o")
    check("delete", "/v1/series", 400, headers=bearer(ADMIN))
    check("delete", "/v1/series", 401, query="?endpoint=/x")
    check("delete", "/v1/series", 403, headers=bearer(READ), query="?endpoint=/x")
    # The status page
    check("get", "/", 200, headers=bearer(READ), query="?window=5m")
    check("get", "/", 200, headers=bearer(READ), query="?window=24h&fragment=1")
    check("get", "/", 400, headers=bearer(READ), query="?window=2h")
    check("get", "/", 401)
    check("get", "/", 403, headers=bearer(INGEST))
    # Health
    check("get", "/healthz", 200)
    check("get", "/readyz", 200)

    documented_operations = {(path, method) for path, item in DOC["paths"].items() for method in item if method in {"get", "post", "delete", "put", "patch"}}
    assert check.exercised == documented_operations


def test_the_document_lists_exactly_the_routes_perfgate_serves():
    """The route table the server routes by (perfgate routes) against the document's operations
    and their security: a route added to one and not the other fails here."""
    routes = json.loads(subprocess.run([str(BINARY), "routes", "--json"], capture_output=True, text=True, check=True).stdout)
    served = {(route["path"], route["method"].lower()): route["access"] for route in routes}
    documented = {}
    for path, item in DOC["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "delete", "put", "patch", "head", "options"}:
                security = operation.get("security", DOC.get("security", []))
                documented[(path, method)] = "open" if security in ([], [{}]) else operation.get("x-perfgate-role")
    assert served == documented
