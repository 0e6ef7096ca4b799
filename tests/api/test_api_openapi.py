"""The OpenAPI document is complete: every operation documents its success body and its error statuses."""

import pytest

from api.main import create_app
from api.settings import ApiSettings

pytestmark = pytest.mark.services


def test_openapi_documents_every_operation(api_url):
    import httpx

    spec = httpx.get(f"{api_url}/openapi.json").json()
    local = create_app(ApiSettings(database_url="sqlite://", blob_url="file:///nonexistent")).openapi()
    assert spec["paths"].keys() == local["paths"].keys()
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            assert op.get("summary") and op.get("tags"), where
            ok = [c for c in op["responses"] if c.startswith("2")]
            assert len(ok) == 1, where
            if ok[0] != "204":
                assert op["responses"][ok[0]].get("content"), f"{where}: success body undocumented"
            if path.startswith("/v1/"):
                assert "401" in op["responses"] and op.get("security"), where
            if "{" in path:
                assert "404" in op["responses"], where
            if method == "post" and path == "/v1/documents":
                assert {"413", "415"} <= op["responses"].keys()
                assert "multipart/form-data" in op["requestBody"]["content"]


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
