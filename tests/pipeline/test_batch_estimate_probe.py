"""A batch's dry run (docs/batches.md) against an endpoint whose cache probe fails: one failed probe and the rest of
the request's documents are estimated without it, so the request pays the control timeout once, not per document."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pipeline.batch_estimate import estimate_items
from pipeline.client import ClientConfig, InferenceClient
from pipeline.document import ExtractedDocument, Kind, Section


def _doc(i: int) -> ExtractedDocument:
    text = f"[page 1]\nDocument {i}: budget lines and more words.\n"
    return ExtractedDocument(Kind.PDF, text, (Section(0, "1", "text", text),), {})


class _FailingProbe(BaseHTTPRequestHandler):
    probes: list[str] = []

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).probes.append(self.path)
        data = json.dumps({"error": {"message": "probe broken"}}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_):
        pass


def test_after_a_failed_probe_the_other_documents_are_not_probed():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _FailingProbe)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        with InferenceClient(ClientConfig(url, "m", max_retries=0, control_timeout=2.0)) as client:
            found = estimate_items([(f"d{i}", _doc(i)) for i in range(4)], ["Why?", "How?"], max_tokens=64,
                                   client=client)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert [f.document_id for f in found] == ["d0", "d1", "d2", "d3"]
    assert all(f.estimate.cache_source != "probe" and f.estimate.prompt_tokens > 0 for f in found)
    assert _FailingProbe.probes == ["/v1/cache/probe"]  # the first document's probe only
