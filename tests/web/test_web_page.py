"""The web page in a real browser (Debian's chromium through Playwright) against a real deployment on the `tiny`
checkpoint: sign in, upload by drag-and-drop and by the file picker, summarize and watch the progress bar reach 100 %,
ask, see the queue position, cancel a long job; a citation from scripted model output opens its page as an image with
the quote highlighted; hostile file names and extracted text show as text. Every page is checked for console errors
and with axe-core (no serious or critical violations); screenshots of each step go to the printed folder."""

import re

import pymupdf
import pytest
from playwright.sync_api import expect

from tests.helpers.wait import wait_until
from tests.pipeline.faultserver import FaultServer, Reply
from tests.web.browsing import Browsing, sign_in, text_of

pytestmark = [pytest.mark.services, pytest.mark.slow]
HOSTILE = "<img src=x onerror=alert(1)>"


def pdf(lines: list[str], pages: int = 1, title: str | None = None) -> bytes:
    doc = pymupdf.open()
    for i in range(pages):
        page = doc.new_page()
        for j, line in enumerate(lines):
            page.insert_text((72, 72 + 16 * j), f"{line}" + (f" ({i + 1})" if pages > 1 else ""))
    if title:
        doc.set_metadata({"title": title})
    return doc.tobytes()


@pytest.fixture
def person(stack, browser, shots, axe_source):
    """A signed-in browser tab of a new tenant (its key in .key); fails the test on console errors or dialogs."""
    _, key = stack.tenant_key()
    context = browser.new_context(base_url=stack.url, viewport={"width": 1100, "height": 900})
    b = Browsing(context.new_page(), shots, axe_source)
    b.key = key
    yield b
    try:
        b.clean()
    finally:
        context.close()


def drop_file(page, name: str, data: bytes) -> None:
    """What dragging a file from the desktop onto the drop zone does: a `drop` event carrying the file."""
    page.evaluate("""([name, bytes]) => {
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(bytes)], name, {type: 'application/pdf'}));
        const zone = document.getElementById('drop');
        zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", [name, list(data)])


def listed(page, name: str):
    """The document's row in the list, where an upload moves once its extraction ended."""
    return page.get_by_role("list", name="Documents", exact=True).locator(".item", has_text=name)


def wait_ready(page, name: str):
    item = listed(page, name)
    item.locator(".badge", has_text="ready").wait_for(timeout=120_000)
    return item


def wait_job_end(page, timeout_ms: int = 180_000):
    page.wait_for_function("() => { const p = document.querySelector('.job'); return p && p.querySelector('.result, "
                           ".error') }", timeout=timeout_ms)


def test_sign_in_upload_summarize_and_ask(person):
    b, page = person, person.page
    page.goto("/")
    page.get_by_label("API key").wait_for()
    b.axe("sign-in")
    b.shot("01-sign-in")
    sign_in(b, b.key)
    b.axe("documents")
    drop_file(page, "dropped report.pdf", pdf(["Revenue grew by 12 percent in 2025.", "Costs fell slightly."]))
    item = wait_ready(page, "dropped report.pdf")
    assert "1 page ·" in item.inner_text()
    page.set_input_files("#file", files=[{"name": "picked.pdf", "mimeType": "application/pdf",
                                          "buffer": pdf(["A second document, picked."])}])
    wait_ready(page, "picked.pdf")
    b.shot("02-uploaded")
    page.reload()
    page.get_by_role("list", name="Documents", exact=True).get_by_role("link").first.wait_for()
    names = page.get_by_role("list", name="Documents", exact=True).get_by_role("link").all_inner_texts()
    assert names[:2] == ["picked.pdf", "dropped report.pdf"]  # newest first
    page.get_by_role("link", name="dropped report.pdf").click()
    page.get_by_role("heading", name="dropped report.pdf").wait_for()
    b.axe("document")
    page.get_by_label("Style").select_option("brief")
    page.locator("#sum-max").fill("24")  # "Longest answer": the random-weight model would write the style's 512
    page.get_by_role("button", name="Summarize").click()
    page.locator(".job").wait_for()
    b.shot("03-summary-running")
    wait_job_end(page)
    bar = page.locator(".job progress")
    assert bar.get_attribute("value") == "100" and text_of(page, ".job .pct") == "100 %"
    status = text_of(page, ".job .job-status")
    generated = re.search(r"([\d,]+) tokens generated", status)
    assert status.startswith("Done") and "prefill" in status and generated, status
    assert 0 < int(generated.group(1).replace(",", "")) <= 24, status  # the cap the form sent
    assert page.locator(".job .usage").is_visible() and "Prompt tokens" in text_of(page, ".job .usage")
    b.axe("summary done")
    b.shot("04-summary-done")
    page.get_by_role("textbox", name="Question").fill("What grew?")
    page.locator("#ask-max").fill("8")
    page.get_by_role("button", name="Ask").click()
    page.locator(".job", has_text="Question: What grew?").wait_for()
    wait_job_end(page)
    assert page.locator(".job").first.locator("progress").get_attribute("value") == "100"
    b.shot("05-answer")
    page.get_by_role("link", name="Results").click()
    page.get_by_role("list", name="Results", exact=True).get_by_role("link").first.wait_for()
    kinds = page.get_by_role("list", name="Results", exact=True).get_by_role("link").all_inner_texts()
    assert kinds[:2] == ["Answer", "Summary"]  # newest first
    b.axe("results")
    page.get_by_role("link", name="Jobs").click()
    page.get_by_role("list", name="Jobs", exact=True).get_by_role("link").first.wait_for()
    b.axe("jobs")
    b.shot("06-jobs")


def test_queue_position_and_cancel_a_long_job(person):
    b, page = person, person.page
    sign_in(b, b.key)
    page.set_input_files("#file", files=[{"name": "long.pdf", "mimeType": "application/pdf",
                                          "buffer": pdf(["A long document to prefill slowly. " * 3] * 12, pages=12)}])
    wait_ready(page, "long.pdf")
    listed(page, "long.pdf").get_by_role("link", name="long.pdf").click()
    page.get_by_role("textbox", name="Question").fill("What is it about?")
    page.get_by_role("button", name="Ask").click()
    first = page.locator(".job").first
    first.wait_for()
    page.get_by_role("button", name="Ask").click()  # a second one queues behind the first (one worker)
    page.wait_for_function("() => document.querySelectorAll('.job').length === 2")
    second, first = page.locator(".job").nth(0), page.locator(".job").nth(1)
    wait_until(lambda: "prefill" in first.locator(".job-status").inner_text(), 120, "the first job's prefill")
    expect(second.locator(".job-status")).to_contain_text("Queued: position 1 in the queue")
    b.shot("07-prefill-and-queue")
    b.axe("two jobs")
    first.get_by_role("button", name="Cancel").click()
    first.locator(".job-status", has_text="Cancelled").wait_for()
    expect(first.get_by_role("button", name="Cancel")).to_be_hidden()
    second.get_by_role("button", name="Cancel").click()
    second.locator(".job-status", has_text="Cancelled").wait_for()
    b.shot("08-cancelled")


def test_phone_width_and_keyboard_only(stack, browser, shots, axe_source):
    _, key = stack.tenant_key()
    context = browser.new_context(base_url=stack.url, viewport={"width": 375, "height": 740}, is_mobile=True)
    b = Browsing(context.new_page(), shots, axe_source)
    page = b.page
    try:
        page.goto("/")
        page.get_by_label("API key").wait_for()
        assert page.evaluate("() => document.activeElement.id") == "api-key"  # focus starts where typing goes
        page.keyboard.type(key)
        page.keyboard.press("Enter")
        page.get_by_role("navigation", name="Sections").wait_for()
        assert page.evaluate("() => document.activeElement.tagName") == "H1"  # focus moved to the new view
        for _ in range(12):
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.id") == "file":
                break
        assert page.evaluate("() => document.activeElement.id") == "file", "the file picker is reachable by Tab"
        b.shot("09-phone")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 375  # nothing wider than the phone
        b.axe("phone")
        b.clean()
    finally:
        context.close()


def test_a_citation_opens_its_page_with_the_quote_highlighted_and_hostile_text_stays_text(person, stack):
    """The model's answer is scripted (the random-weight checkpoint writes no citations): one verified citation and
    one unverified; the PDF's text and its file name are markup that must never run."""
    b, page = person, person.page
    llm = FaultServer()
    try:
        stack.use_inference(llm.base_url, llm.model)
        sign_in(b, b.key)
        name = f"{HOSTILE}.pdf"
        page.set_input_files("#file", files=[{"name": name, "mimeType": "application/pdf", "buffer": pdf(
            ["Revenue grew by 12 percent in 2025.", f"Markup in the text: {HOSTILE}"], pages=2, title=HOSTILE)}])
        item = wait_ready(page, name)
        assert item.get_by_role("link", name=name).is_visible()  # the name, literally
        llm.default = Reply(content=("Revenue rose ", '[p. 2: "grew by 12 percent"]', ", and the text says ",
                                     f'[p. 1: "{HOSTILE}"]', ", not that it fell ", '[p. 1: "fell sharply"]', "."))
        item.get_by_role("link", name=name).click()
        page.get_by_role("textbox", name="Question").fill("How did revenue change?")
        page.get_by_role("button", name="Ask").click()
        wait_job_end(page)
        result = page.locator(".job .result")
        assert HOSTILE in result.locator(".result-text").inner_text()  # shown as text…
        assert page.locator("img[src='x']").count() == 0  # …never as an element
        cited = result.locator(".result-text a.cite")
        assert cited.count() == 3
        assert result.locator(".result-text .badge.unverified").count() == 1  # "fell sharply" is not on page 1
        b.axe("result with citations")
        b.shot("10-citations")
        with page.expect_response(lambda r: "/pages/2.png" in r.url) as got:
            cited.first.click()
        response = got.value
        assert response.status == 200 and response.headers["content-type"] == "image/png"
        assert int(response.headers["x-quote-matches"]) >= 1  # the quote was found and highlighted
        dialog = page.get_by_role("dialog", name="Page 2")
        dialog.wait_for()
        page.wait_for_function("() => document.getElementById('page-img').naturalWidth > 0")
        assert page.evaluate("() => document.getElementById('page-img').naturalWidth") <= 1400  # capped
        yellow = page.evaluate("""() => { const img = document.getElementById('page-img');
            const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
            const g = c.getContext('2d'); g.drawImage(img, 0, 0);
            const d = g.getImageData(0, 0, c.width, c.height).data; let n = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 1] > 150 && d[i + 2] < 80) n++;
            return n; }""")
        assert yellow > 200, "the quote is highlighted (yellow pixels on the page image)"
        b.axe("page image")
        b.shot("11-page-image")
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        assert b.dialogs == []
    finally:
        stack.use_inference(stack.real_inference)
        llm.close()


def test_extraction_status_names_scanned_pages_and_document_errors(person, stack, tmp_path):
    """Per-page status (`pages_scanned`, `pages_failed` in the API) and a document-level error, as the page shows
    them after the worker's extraction."""
    import httpx

    from tests.pipeline.pdf_factory import encrypted_pdf, mixed_pdf

    b, page = person, person.page
    sign_in(b, b.key)
    files = [{"name": p.name, "mimeType": "application/pdf", "buffer": p.read_bytes()}
             for p in (mixed_pdf(tmp_path / "mixed.pdf"), encrypted_pdf(tmp_path / "locked.pdf"))]
    page.set_input_files("#file", files=files)
    mixed = wait_ready(page, "mixed.pdf")
    assert "Scanned pages (no text layer): 2" in mixed.inner_text()
    locked = listed(page, "locked.pdf")
    locked.locator(".badge", has_text="failed").wait_for(timeout=120_000)
    assert "Extraction failed:" in locked.inner_text() and "encrypted" in locked.inner_text()
    b.axe("extraction status")
    b.shot("15-extraction-status")
    headers = {"Authorization": f"Bearer {b.key}"}
    docs = {d["filename"]: d for d in httpx.get(f"{stack.url}/v1/documents", headers=headers).json()["data"]}
    assert (docs["mixed.pdf"]["pages_scanned"], docs["mixed.pdf"]["pages_failed"]) == ([2], [])
    assert docs["locked.pdf"]["status"] == "failed" and docs["locked.pdf"]["pages_scanned"] is None


def test_a_form_on_another_origin_cannot_use_the_sign_in(person, stack):
    """Another origin's page (a port of the same host: the same site, so the SameSite=Strict cookie is sent) posts a
    form to the API: refused for want of the CSRF token (403), and nothing is created."""
    import httpx

    from tests.helpers.services import free_port

    b = person
    sign_in(b, b.key)
    evil = f"http://127.0.0.1:{free_port()}/"
    form = (f'<!doctype html><title>evil</title><form id="f" method="post" enctype="multipart/form-data" '
            f'action="{stack.url}/v1/documents"><input name="file" value="x"></form>'
            "<script>document.getElementById('f').submit()</script>")
    other = b.page.context.new_page()
    try:
        other.route(evil, lambda route: route.fulfill(status=200, content_type="text/html", body=form))
        with other.expect_response(lambda r: r.url.endswith("/v1/documents")) as got:
            other.goto(evil)
        # 403, not 401: the browser did send the cookie (same site), and the missing CSRF token refused the request
        assert got.value.status == 403 and got.value.json()["error"] == "csrf_failed"
    finally:
        other.close()
    docs = httpx.get(f"{stack.url}/v1/documents", headers={"Authorization": f"Bearer {b.key}"}).json()["data"]
    assert docs == []


def test_revoking_the_key_ends_the_sign_in(person, stack):
    from pipeline.records.db import transaction
    from pipeline.records.tenants import revoke_api_key

    b, page = person, person.page
    sign_in(b, b.key)
    tenant_id = page.evaluate("async () => (await (await fetch('/v1/session')).json()).tenant_id")
    with transaction(stack.records) as s:
        revoke_api_key(s, tenant_id, b.key.split("_")[1])
    page.get_by_role("link", name="Jobs").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    assert "sign in again" in page.locator("#signin-error").inner_text()
    assert page.get_by_role("navigation", name="Sections").is_hidden()
    # the refused request is the only console message: the browser logs every 401
    assert b.console_errors and all("401" in m for m in b.console_errors), b.console_errors
    b.console_errors.clear()
