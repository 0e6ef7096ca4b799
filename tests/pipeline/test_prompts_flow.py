"""The pieces together, as a worker uses them: extract → prompt → fit the server's window → stream → verify."""

import pymupdf

from pipeline.citations import flagged, verify_citations
from pipeline.client import ClientConfig, InferenceClient
from pipeline.pdf.extract import extract_pdf
from pipeline.prompts import Budget, check_fits, question_prompt, warmup_prompt
from tests.pipeline.faultserver import FaultServer, Reply


def test_question_about_a_pdf_end_to_end():
    pdf = pymupdf.open()
    for text in ("Minutes of the board.\nThe board approved the water plan.", "Costs rose to 12 million euros."):
        pdf.new_page().insert_text((72, 72), text, fontsize=11)
    doc = extract_pdf(pdf.tobytes())
    answer = ('The plan was approved [p. 1: "approved the water plan"] at a cost of 12 million euros '
              '[p. 1: "12 million euros"], and it was unanimous [p. 2: "unanimous vote"].')
    server = FaultServer()
    server.script.extend([Reply(content=("",), usage={"prompt_tokens": 300, "completion_tokens": 1}),
                          Reply(content=(answer[:40], answer[40:]),
                                usage={"prompt_tokens": 310, "completion_tokens": 40,
                                       "prompt_tokens_details": {"cached_tokens": 256}})])
    try:
        with InferenceClient(ClientConfig(server.base_url, "deepseek-v4-flash", backoff_base=0.01)) as client:
            budget = Budget(window_tokens=client.max_model_len())
            warm = warmup_prompt(doc)
            client.chat(warm.messages, max_tokens=warm.max_tokens, thinking=False)
            prompt = question_prompt(doc, "What was approved, and at what cost?")
            assert check_fits(prompt, budget) > 0
            out = client.chat(prompt.messages, max_tokens=prompt.max_tokens, thinking=False)
    finally:
        server.close()
    sent = [r.body for r in server.received if r.path == "/v1/chat/completions"]
    assert sent[1]["messages"][1]["content"].startswith(sent[0]["messages"][1]["content"])  # same prefix, then Q
    assert sent[0]["messages"][0] == sent[1]["messages"][0]
    assert out.content == answer and out.usage.cached_tokens == 256
    checks = verify_citations(out.content, doc)
    assert [c.status for c in checks] == ["verified", "unverified", "unverified"]
    assert checks[1].found_in == ("2",) and checks[2].found_in == ()
    assert flagged(checks) == checks[1:]
