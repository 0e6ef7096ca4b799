"""The OpenAPI document is complete and fit for SDK generators: every operation has a readable camelCase
operationId and a summary, documents its success body (Location on 201/202, the events stream as
text/event-stream only), its error statuses (one shared ErrorBody) and the headers every keyed response carries."""

import re

import pytest

from api.main import KEYED_HEADERS, create_app
from api.settings import ApiSettings

pytestmark = pytest.mark.services
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def test_openapi_documents_every_operation(api_url):
    import httpx

    spec = httpx.get(f"{api_url}/openapi.json").json()
    local = create_app(ApiSettings(database_url="sqlite://", blob_url="file:///nonexistent")).openapi()
    assert spec["paths"].keys() == local["paths"].keys()
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z]+)+", i) for i in ids), ids
    assert {"listDocuments", "createDocument", "createSummary", "createQuestion", "listJobs", "cancelJob",
            "streamJobEvents", "getResult"} <= set(ids)
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            assert op.get("summary") and op.get("tags"), where
            ok = sorted(c for c in op["responses"] if c.startswith("2"))
            dry_run = any(p["name"] == "dry_run" for p in op.get("parameters", []))  # 200: the plan, nothing made
            assert len(ok) == 1 or (where, ok) == ("POST /v1/documents", ["200", "201"]) or (
                dry_run and ok == ["200", "202"]), where  # POST /v1/documents 200: a duplicate
            for code in ok:
                if code != "204":
                    assert op["responses"][code].get("content"), f"{where}: success body undocumented"
                if code in ("201", "202"):
                    assert "Location" in op["responses"][code]["headers"], where
            for code, response in op["responses"].items():
                if code.startswith(("4", "5")):
                    assert response["content"]["application/json"]["schema"] == ERROR_REF, (where, code)
                if path.startswith("/v1/"):
                    expected = {"X-Request-Id"} if code == "401" else set(KEYED_HEADERS)
                    assert expected <= set(response.get("headers", {})), (where, code)
            if path.startswith("/v1/"):
                assert "401" in op["responses"] and op.get("security"), where
            if "{" in path:
                assert "404" in op["responses"], where
            if method == "post" and path == "/v1/documents":
                assert {"409", "413", "415"} <= op["responses"].keys()
                assert "multipart/form-data" in op["requestBody"]["content"]
    events = spec["paths"]["/v1/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"]
    assert list(events) == ["text/event-stream"]
    item = events["text/event-stream"]["itemSchema"]
    assert item["properties"]["event"]["enum"] == ["progress", "end"]
    assert item["properties"]["data"]["contentSchema"] == {"$ref": "#/components/schemas/JobEvent"}
    schemas = spec["components"]["schemas"]
    assert schemas["JobState"]["enum"] == ["queued", "running", "done", "failed", "cancelled"]
    assert schemas["JobKind"]["enum"] == ["ingest", "summarize", "answer", "corpus_answer", "digest"]
    assert schemas["JobPublic"]["properties"]["state"] == {"$ref": "#/components/schemas/JobState"}
    assert {"$ref": "#/components/schemas/SummaryParams"} in schemas["JobPublic"]["properties"]["params"]["anyOf"]
    assert schemas["ResultPublic"]["properties"]["usage"] == {"$ref": "#/components/schemas/Usage"}


def test_module_level_app_for_uvicorn(tmp_path):
    """`uvicorn api.main:app` (compose) gets an app built from the environment; importing alone builds nothing."""
    import os
    import subprocess
    import sys

    code = ("import api.main as m; assert 'app' not in vars(m); a = m.app; "
            "print(type(a).__name__, a.state.settings.database_url)")
    url = f"sqlite:///{tmp_path / 'x.sqlite'}"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "WHOLEDOC_DATABASE_URL": url, "WHOLEDOC_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["FastAPI", url]
