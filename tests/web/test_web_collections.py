"""The web page's corpora, batches and digests (docs/web.md), in the browser against the same deployment as
test_web_page: make a corpus of two documents, ask both a question as a batch, watch it finish and download its CSV,
then schedule a digest of the corpus and start a run. Console errors, dialogs and axe-core as everywhere."""

import httpx
import pytest

from tests.web.browsing import Browsing, sign_in
from tests.web.test_web_page import pdf, wait_ready

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_corpus_digest_and_batch(stack, browser, shots, axe_source, tmp_path):
    _, key = stack.tenant_key()
    context = browser.new_context(base_url=stack.url, viewport={"width": 1100, "height": 900}, accept_downloads=True)
    b = Browsing(context.new_page(), shots, axe_source)
    page = b.page
    try:
        sign_in(b, key)
        for name in ("north.pdf", "south.pdf"):
            page.set_input_files("#file", files=[{"name": name, "mimeType": "application/pdf",
                                                  "buffer": pdf([f"The {name[:-4]} depot opened in 2025."])}])
            wait_ready(page, name)
        page.get_by_role("link", name="Corpora").click()
        page.get_by_label("Name").fill("Depots")
        page.get_by_role("button", name="Create").click()
        page.get_by_role("heading", name="Corpus: Depots").wait_for()
        b.axe("corpus")
        page.get_by_role("checkbox", name="north.pdf").check()
        page.get_by_role("checkbox", name="south.pdf").check()
        page.get_by_role("button", name="Add", exact=True).click()
        page.locator(".meta", has_text="2 documents").first.wait_for()
        members = page.get_by_role("list", name="Documents of this corpus").get_by_role("link")
        members.nth(1).wait_for()
        assert sorted(members.all_inner_texts()) == ["north.pdf", "south.pdf"]
        b.shot("12-corpus")
        page.get_by_role("link", name="Ask every document of this corpus the same questions").click()
        page.get_by_label("Questions (one a line)").fill("When did it open?")
        assert page.get_by_label("Documents: a corpus…").input_value() != ""  # the corpus is chosen
        page.get_by_label("Longest answer (tokens, optional)").fill("4")
        b.axe("new batch")
        page.get_by_role("button", name="Start").click()
        page.get_by_role("heading", name="Batch", exact=True).wait_for()
        page.locator(".batch-status", has_text="done").wait_for(timeout=240_000)
        assert "2 of 2 items final" in page.locator(".batch-status").inner_text()
        assert page.locator("progress").get_attribute("value") == "2"
        page.get_by_role("list", name="Items", exact=True).locator(".item").nth(1).wait_for()
        b.axe("batch done")
        b.shot("14-batch")
        with page.expect_download() as got:
            page.get_by_role("link", name="Download the answers (CSV)").click()
        csv = (tmp_path / "batch.csv")
        got.value.save_as(csv)
        text = csv.read_text()
        assert "When did it open?" in text and "north.pdf" in text and "south.pdf" in text
        page.get_by_role("link", name="Corpora").click()
        page.get_by_role("link", name="Depots").click()
        page.get_by_label("Time zone").fill("Europe/Berlin")
        page.get_by_role("button", name="Schedule").click()
        page.get_by_role("heading", name="Digest", exact=True).wait_for()
        assert "Europe/Berlin" in page.locator("main").inner_text()
        page.get_by_role("button", name="Run now").click()
        page.get_by_role("list", name="Runs", exact=True).locator(".item", has_text="manual run").wait_for()
        b.axe("digest")
        b.shot("13-digest")
        runs = httpx.get(f"{stack.url}/v1/digests", headers={"Authorization": f"Bearer {key}"}).json()["data"]
        for run in httpx.get(f"{stack.url}/v1/digests/{runs[0]['id']}/runs",
                             headers={"Authorization": f"Bearer {key}"}).json()["data"]:
            if run["job_id"]:  # leave the worker free for the other tests
                httpx.post(f"{stack.url}/v1/jobs/{run['job_id']}/cancel", headers={"Authorization": f"Bearer {key}"})
        b.clean()
    finally:
        context.close()
