"""`wholedoc ask --corpus NAME "question" …`: questions over a corpus (docs/corpus-questions.md). Each question is
one answer over the corpus's most relevant whole documents (all of them when they fit the window); `--dry-run`
shows which documents would be used, with their tokens and the tokens expected from the cache, and asks nothing."""

import json

from api.cli.corpora import call, need_corpus
from api.cli.flow import cancelled_on_interrupt, on_deployment
from api.cli.follow import follow_job, wait_for_jobs
from api.cli.output import err, print_answers, print_result
from api.cli.remote import ApiClient
from pipeline.words import plural


def _body(question: str, thinking: bool, max_tokens: int | None) -> dict:
    return {"question": question, "thinking": thinking} | ({"max_tokens": max_tokens} if max_tokens else {})


def _name(d: dict) -> str:
    return d.get("title") or d["document_id"]


def _plan_text(question: str, plan: dict) -> str:
    lines = [f"## {question}", "",
             f"{plan['packing']}: {plural(len(plan['documents']), 'document')}, "
             f"{plan['prompt_tokens']:,} prompt tokens "
             f"({plan['cached_tokens']:,} expected from the cache, {plan['cache_source']}) of a "
             f"{plan['window_tokens']:,}-token window"]
    for d in plan["documents"]:
        terms = ", ".join(d["matched_terms"][:6]) or "-"
        lines.append(f"  doc {d['doc']:<3} {d['document_id']}  {d['tokens']:>9,} tokens  score {d['score']:>7.3f}  "
                     f"{terms}  {_name(d) if d.get('title') else ''}".rstrip())
    for d in plan["skipped"]:
        lines.append(f"  left out {d['document_id']}  {d['tokens']:>9,} tokens  score {d['score']:>7.3f}  "
                     f"({d['reason']})")
    return "\n".join(lines) + "\n"


def _sources(result: dict) -> None:
    """Which document each `doc N` is, and the relevant ones left out (stderr)."""
    cov = result.get("coverage") or {}
    used = ", ".join(f"doc {d['doc']} = {_name(d)}" for d in cov.get("documents", []))
    err(f"documents: {used}")
    if cov.get("skipped"):
        err("left out for lack of room: " + ", ".join(_name(d) for d in cov["skipped"]))


def run_corpus(name: str, questions: list[str], thinking: bool, max_tokens: int | None, as_json: bool,
               dry_run: bool) -> int:
    def work(client: ApiClient) -> int:
        corpus = need_corpus(client, name)
        url = f"/v1/corpora/{corpus['id']}/questions"
        if dry_run:
            for q in questions:
                plan = call(client, "POST", url, params={"dry_run": "true"}, json=_body(q, thinking, max_tokens))
                print(json.dumps({"question": q} | plan, ensure_ascii=False) if as_json else _plan_text(q, plan))
            return 0
        jobs: list[dict] = []
        with cancelled_on_interrupt(client, jobs):
            jobs += [call(client, "POST", url, json=_body(q, thinking, max_tokens)) for q in questions]
            if len(jobs) == 1 and not as_json:
                job = follow_job(client, jobs[0]["id"], "generate", max_tokens or jobs[0]["params"]["max_tokens"])
                if job["state"] != "done":
                    err(f"error: the job {job['state']}: {job.get('error')}")
                    return 1
                result = client.result(job["result_id"])
                print_result(result)
                _sources(result)
                return 0
            wait_for_jobs(client, jobs)
        answers = []
        for q, job in zip(questions, jobs, strict=True):
            job = client.job(job["id"])
            answers.append((q, job, client.result(job["result_id"]) if job["state"] == "done" else None))
        return 1 if print_answers(answers, as_json) else 0

    return on_deployment(work)
