"""What the command line prints: results and answers on stdout, notes, usage and errors on stderr."""

import json
import sys

from pipeline.words import plural


def err(msg: str) -> None:
    """One line on stderr, flushed (progress notes, usage, errors: stdout keeps only the results)."""
    print(msg, file=sys.stderr, flush=True)


def usage_line(u: dict) -> str:
    return (f"{u.get('prompt_tokens')} prompt tokens ({u.get('cached_tokens') or 0} cached), "
            f"{u.get('completion_tokens')} completion tokens")


def _citations(result: dict) -> str:
    return ", ".join(f"{c['anchor']} ({c['status']})" for c in result["citations"])


def print_result(result: dict, as_json: bool = False, output: str | None = None) -> None:
    """One result: its text (or, as_json, one JSON object: text, citations, usage, notice, ids) on stdout or written
    to the file `output`; citations, usage and any notice on stderr."""
    if as_json:
        keys = ("id", "job_id", "document_id", "kind", "text", "citations", "usage", "notice", "coverage")
        body = json.dumps({k: result.get(k) for k in keys}, ensure_ascii=False)
    else:
        body = result["text"]
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(body.rstrip("\n") + "\n")
        err(f"wrote {output}")
    else:
        print(body)
    if as_json:
        return
    if result["citations"]:
        err("citations: " + _citations(result))
    err(f"usage: {usage_line(result['usage'])}")
    if result.get("notice"):
        err(f"notice: {result['notice']}")


def print_answers(answers: list[tuple[str, dict, dict | None]], as_json: bool) -> int:
    """(question, final job, result or None) in order: text blocks, or one JSON object per line. The number of
    questions that failed (said on stderr, with the first notice of any result)."""
    failed = 0
    for i, (q, job, result) in enumerate(answers, 1):
        failed += result is None
        if as_json:
            print(json.dumps({"question": q, "state": job["state"], "error": job.get("error"),
                              "answer": result and result["text"], "citations": result and result["citations"],
                              "usage": result and result["usage"]}, ensure_ascii=False))
            continue
        print(f"## Q{i}: {q}\n")
        if result is None:
            print(f"(the job {job['state']}: {job.get('error')})\n")
            continue
        print(result["text"].rstrip() + "\n")
        if result["citations"]:
            print("citations: " + _citations(result) + "\n")
        err(f"Q{i} usage: {usage_line(result['usage'])}")
    notice = next((r.get("notice") for _, _, r in answers if r and r.get("notice")), None)
    if notice:
        err(f"notice: {notice}")
    if failed:
        err(f"error: {failed} of {plural(len(answers), 'question')} failed")
    return failed
