"""The web page's HTTP side (docs/web.md) on a real API process: the sign-in cookie (flags, expiry, revocation), the
CSRF defence on cookie requests, the pages' security headers, and cited pages as images (rendered in the isolated child,
capped, cached, tenant-scoped; the API process itself never imports PyMuPDF)."""

import struct
import subprocess
import sys
from contextlib import closing

import httpx
import pytest

from api.web.cookie import COOKIE, issue
from pipeline.records.db import transaction
from pipeline.records.models import ApiKey, new_id
from pipeline.records.tenants import create_api_key, create_tenant, revoke_api_key
from tests.api.helpers import make_pdf, make_ready, make_zip, upload

pytestmark = pytest.mark.services


def _key(records) -> tuple[str, str]:
    with transaction(records) as s:
        tenant = create_tenant(s, f"web-{new_id()}")
        _, key = create_api_key(s, tenant.id)
    return tenant.id, key


def _signed_in(api_url, records) -> tuple[httpx.Client, str]:
    """A cookie-only client (no Authorization header) signed in through POST /v1/session, and its key."""
    _, key = _key(records)
    client = httpx.Client(base_url=api_url, timeout=30)
    r = client.post("/v1/session", json={"api_key": key})
    assert r.status_code == 200, r.text
    return client, key


def test_sign_in_sets_an_httponly_strict_cookie_with_an_expiry(api_url, records):
    _, key = _key(records)
    r = httpx.post(f"{api_url}/v1/session", json={"api_key": key})
    assert r.status_code == 200 and r.json()["expires_at"]
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}="))
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "max-age", "path"} <= flags and "samesite=strict" in cookie.lower()
    assert "secure" not in flags  # plain HTTP here; over HTTPS it is Secure
    # names the key, never holds it (the secret is everything after the second "_": it may hold "_" itself, and a
    # fragment of it cut at one would be a substring of the cookie by chance in ~2.5 % of keys)
    assert key not in cookie and key.split("_", 2)[2] not in cookie
    assert "max-age=43200" in cookie.lower()  # WHOLEDOC_SESSION_HOURS, 12 by default


def test_the_cookie_signs_requests_in_until_the_key_is_revoked_or_it_expires(api_url, records):
    client, key = _signed_in(api_url, records)
    with closing(client):
        me = client.get("/v1/session").json()
        assert me["csrf_token"] and me["key_prefix"] == key.split("_")[1]
        assert client.get("/v1/documents").status_code == 200
        with transaction(records) as s:
            revoke_api_key(s, me["tenant_id"], me["key_prefix"])
        r = client.get("/v1/documents")
        assert (r.status_code, r.json()["error"]) == (401, "unauthorized") and "sign in again" in r.json()["detail"]
    _, key = _key(records)
    with records() as s:  # a cookie past its expiry, correctly signed
        row = s.query(ApiKey).filter_by(prefix=key.split("_")[1]).one()
        expired, _ = issue("wholedoc-dev-session-secret", row, -1)
        forged = issue("not-the-secret", row, 3600)[0]
    for value in (expired, forged, "x.1.2.3", "garbage"):
        r = httpx.get(f"{api_url}/v1/documents", cookies={COOKIE: value})
        assert r.status_code == 401, value


def test_a_cookie_request_without_the_csrf_token_is_refused(api_url, records):
    client, _ = _signed_in(api_url, records)
    with closing(client):
        token = client.get("/v1/session").json()["csrf_token"]
        doc = upload(client, make_pdf(f"csrf {new_id()}"))  # no token: a cross-site form could send this
        assert (doc.status_code, doc.json()["error"]) == (403, "csrf_failed"), doc.text
        assert client.get("/v1/documents").json()["data"] == []  # nothing was created
        wrong = client.post("/v1/documents", files={"file": ("a.pdf", make_pdf(), "application/pdf")},
                            headers={"X-CSRF-Token": "0" * 64})
        assert wrong.status_code == 403
        ok = client.post("/v1/documents", files={"file": ("a.pdf", make_pdf(f"ok {new_id()}"), "application/pdf")},
                         headers={"X-CSRF-Token": token})
        assert ok.status_code == 201, ok.text
        assert client.delete("/v1/session").status_code == 403  # signing out is a non-GET too
        out = client.delete("/v1/session", headers={"X-CSRF-Token": token})
        assert out.status_code == 204 and f'{COOKIE}=""' in out.headers["set-cookie"]


def test_a_sign_in_from_another_site_or_with_a_bad_key_is_refused(api_url, records):
    _, key = _key(records)
    r = httpx.post(f"{api_url}/v1/session", json={"api_key": key}, headers={"Origin": "https://evil.example"})
    assert (r.status_code, r.json()["error"]) == (400, "bad_request") and "set-cookie" not in r.headers
    r = httpx.post(f"{api_url}/v1/session", json={"api_key": key + "x"})
    assert (r.status_code, r.json()["error"]) == (401, "unauthorized") and "set-cookie" not in r.headers
    r = httpx.post(f"{api_url}/v1/session", json={})
    assert r.status_code == 401 and "paste an API key" in r.json()["detail"]


def test_pages_send_a_strict_content_security_policy(api_url):
    for path in ("/", "/web/app.js", "/web/api.js", "/web/app.css"):
        r = httpx.get(api_url + path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
    page = httpx.get(api_url + "/").text
    assert "<script>" not in page and " on" not in page.split("<body", 1)[1].replace(" only", "")  # no inline script
    assert httpx.get(api_url + "/web/..%2Fpages.py").status_code == 404
    assert httpx.get(api_url + "/web/nope.js").status_code == 404


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_a_cited_page_is_a_capped_png_cached_and_tenant_scoped(make_client, records):
    a, b = make_client(), make_client()
    doc = upload(a, make_pdf("Revenue grew by 12 percent", pages=2)).json()
    make_ready(records, doc["id"])
    with transaction(records) as s:  # make_ready says 1 page; the PDF has 2
        from pipeline.records.models import Document
        s.get(Document, doc["id"]).num_sections = 2
    url = f"/v1/documents/{doc['id']}/pages/2.png"
    first = a.get(url, params={"q": "grew by 12"})
    assert first.status_code == 200 and first.headers["content-type"] == "image/png", first.text
    assert first.headers["x-page-image-cache"] == "miss" and first.headers["x-quote-matches"] == "1"
    assert max(_png_size(first.content)) == 1400  # WHOLEDOC_PAGE_IMAGE_MAX_SIDE
    again = a.get(url, params={"q": "grew  by 12"})  # the same quote, spaced differently
    assert again.headers["x-page-image-cache"] == "hit" and again.content == first.content
    assert a.get(url).headers["x-page-image-cache"] == "miss"  # another quote (none) is another image
    other = b.get(url, params={"q": "grew by 12"})
    assert (other.status_code, other.json()["error"]) == (404, "not_found")
    assert a.get(f"/v1/documents/{doc['id']}/pages/3.png").status_code == 404
    assert a.get(f"/v1/documents/{doc['id']}/pages/0.png").status_code == 422
    code = upload(a, make_zip(), name="c.zip").json()
    make_ready(records, code["id"])
    assert a.get(f"/v1/documents/{code['id']}/pages/1.png").status_code == 409
    assert a.delete(f"/v1/documents/{doc['id']}").status_code == 204  # its cached images go with it
    assert a.get(url).status_code == 404


def test_the_api_process_renders_pages_without_importing_pymupdf(tmp_path):
    """The render runs in the sandbox's child, named by module path: PyMuPDF is never loaded by the API."""
    code = f"""
import sys
from fastapi.testclient import TestClient
from api.main import create_app
from api.settings import ApiSettings
from pipeline.records.db import transaction
from pipeline.records.db import upgrade
from pipeline.records.tenants import create_api_key, create_tenant
url = "sqlite:///{tmp_path}/db.sqlite"
upgrade(url)
app = create_app(ApiSettings(database_url=url, blob_url="file://{tmp_path}/blobs", rate_per_min=0))
with transaction(app.state.sessions) as s:
    _, key = create_api_key(s, create_tenant(s, "t").id)
client = TestClient(app, headers={{"Authorization": "Bearer " + key}})
data = open("{tmp_path}/doc.pdf", "rb").read()
doc = client.post("/v1/documents", content=data, headers={{"Content-Type": "application/octet-stream"}}).json()
from pipeline.records.documents import mark_document_ready
with transaction(app.state.sessions) as s:
    mark_document_ready(s, doc["id"], text_blob_key=doc["id"], num_sections=1, num_tokens=1)
r = client.get(f"/v1/documents/{{doc['id']}}/pages/1.png", params={{"q": "hello"}})
assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
assert "pymupdf" not in sys.modules and "fitz" not in sys.modules, "PyMuPDF was imported by the API process"
print("ok")
"""
    (tmp_path / "doc.pdf").write_bytes(make_pdf("hello"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]
