// wholedoc's web page (docs/web.md): sign in, upload, summarize and ask, follow the progress, read results with
// their citations. Every text from the service (file names, extracted and generated text) is put into the page as
// text (textContent), never as HTML.

import { api, follow, setCsrf, signedInHint, upload } from "./api.js";
import { $, announce, count, errorText, fmt, h, page, pagedList, showError, statusBadge, streams, view, when }
  from "./dom.js";
import { batchPage, batchesPage, corporaPage, corpusPage, digestPage, digestsPage } from "./collections.js";

// ---------------------------------------------------------------- sign-in

async function start() {
  $("signin-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("page-close").addEventListener("click", () => $("page-dialog").close());
  window.addEventListener("hashchange", route);
  window.addEventListener("wholedoc:signed-out", () => {
    setCsrf(null);
    showSignIn("Your sign-in ended (it expired, or its key was revoked): sign in again.");
  });
  if (signedInHint()) {
    try {
      const s = await api("GET", "/v1/session");
      return signedIn(s);
    } catch (e) { /* expired or revoked: sign in again */ }
  }
  showSignIn();
}

function showSignIn(message) {
  $("nav").hidden = true;
  $("who").hidden = true;
  view.replaceChildren();
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  $("api-key").focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = $("api-key");
  try {
    await api("POST", "/v1/session", { api_key: input.value.trim() });
    input.value = "";
    signedIn(await api("GET", "/v1/session"));
  } catch (e) {
    $("signin-error").textContent = errorText(e);
    input.focus();
  }
}

function signedIn(session) {
  setCsrf(session.csrf_token);
  $("signin").hidden = true;
  $("nav").hidden = false;
  $("who").hidden = false;
  $("tenant").textContent = `Signed in: ${session.tenant_name}`;
  route();
}

async function signOut() {
  try { await api("DELETE", "/v1/session"); } catch (_) { /* signed out anyway */ }
  setCsrf(null);
  location.hash = "";
  showSignIn("Signed out.");
}

// ---------------------------------------------------------------- routing

function route() {
  if (!$("signin").hidden) return;
  for (const s of streams) s.close();
  streams.clear();
  const [, what, id] = (location.hash || "#/documents").split("?")[0].split("/");
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#/${what}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const pages = { documents: id ? documentPage : documentsPage, jobs: id ? jobPage : jobsPage,
                  results: id ? resultPage : resultsPage, corpora: id ? corpusPage : corporaPage,
                  batches: id ? batchPage : batchesPage, digests: id ? digestPage : digestsPage };
  (pages[what] || documentsPage)(id);
}

// ---------------------------------------------------------------- documents

function pageList(pages) {
  return pages.length > 12 ? `${pages.slice(0, 12).join(", ")} … (${pages.length})` : pages.join(", ");
}

function documentFacts(d) {
  const parts = d.kind === "pdf" ? d.num_pages : d.num_files;
  const facts = [parts === null ? null : count(parts, ...(d.kind === "pdf" ? ["page", "pages"] : ["file", "files"])),
                 d.num_tokens === null ? null : count(d.num_tokens, "token", "tokens"),
                 count(d.size_bytes, "byte", "bytes")].filter(Boolean);
  if (d.title && d.title !== d.filename) facts.unshift(`“${d.title}”`);
  const out = [h("p", { class: "meta" }, statusBadge(d.status), " ", facts.join(" · "))];
  if (d.error) out.push(h("p", { class: "error" }, `Extraction failed: ${d.error}`));
  if (d.pages_failed && d.pages_failed.length) {
    out.push(h("p", { class: "warn" }, `Pages that could not be read: ${pageList(d.pages_failed)}`));
  }
  if (d.pages_scanned && d.pages_scanned.length) {
    out.push(h("p", { class: "warn" }, `Scanned pages (no text layer): ${pageList(d.pages_scanned)}`));
  }
  return out;
}

function documentRow(d) {
  return h("li", { class: "item" },
    h("a", { href: `#/documents/${d.id}`, class: "title" }, d.filename || d.title || d.id),
    ...documentFacts(d), h("p", { class: "meta" }, when(d.created_at)));
}

function uploader(onUploaded) {
  const input = h("input", { id: "file", type: "file", multiple: true, accept: ".pdf,.zip,.tar,.tgz,.gz,application/pdf" });
  const zone = h("div", { class: "drop", id: "drop" },
    h("p", {}, "Drop PDFs or codebase archives (.zip, .tar, .tar.gz) here, or"),
    h("label", { class: "button" }, "Choose files", input));
  const uploads = h("ul", { class: "uploads", "aria-label": "Uploads" });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    send([...e.dataTransfer.files]);
  });
  input.addEventListener("change", () => { send([...input.files]); input.value = ""; });

  function send(files) {
    for (const file of files) {
      const bar = h("progress", { max: "1", value: "0", "aria-label": `Uploading ${file.name}` });
      const note = h("span", { class: "meta" }, "uploading…");
      const item = h("li", { class: "item" }, h("span", { class: "title" }, file.name), bar, note);
      uploads.prepend(item);
      upload(file, (f) => { bar.value = f; })
        .then((doc) => {
          bar.value = 1;
          note.textContent = "uploaded; extracting…";
          announce(`${file.name} uploaded`);
          item.replaceWith(ingestRow(doc, onUploaded));
        })
        .catch((e) => { note.textContent = errorText(e); note.className = "error"; });
    }
  }
  return h("section", { "aria-labelledby": "upload-title", class: "card" },
    h("h2", { id: "upload-title" }, "Upload"), zone, uploads);
}

// A freshly uploaded document: its extraction followed to the end, then shown as it is.
function ingestRow(doc, onDone) {
  const item = h("li", { class: "item" }, h("a", { href: `#/documents/${doc.id}`, class: "title" },
    doc.filename || doc.id), h("p", { class: "meta" }, statusBadge(doc.status), " extracting…"));
  const finish = async () => {  // the document moves to the list below, newest first
    const d = await api("GET", `/v1/documents/${doc.id}`);
    announce(`${d.filename || d.id}: ${d.status}`);
    if (onDone) { item.remove(); onDone(d); } else item.replaceChildren(...documentRow(d).childNodes);
  };
  if (doc.status !== "pending") finish();
  else streams.add(follow(doc.ingest_job_id, () => {}, finish));
  return item;
}

function documentsPage() {
  const list = () => pagedList("/v1/documents", documentRow, "No documents yet: upload one above.", "Documents");
  let shown = list();
  const refresh = () => { const next = list(); shown.replaceWith(next); shown = next; };
  page("Documents", uploader(refresh), h("section", { "aria-labelledby": "docs-title", class: "card" },
    h("h2", { id: "docs-title" }, "Your documents"), shown));
}

async function documentPage(id) {
  let d;
  try { d = await api("GET", `/v1/documents/${id}`); } catch (e) { page("Document"); return showError(view, e); }
  const jobs = h("div", { id: "doc-jobs" });
  const ready = d.status === "ready";
  const results = () => pagedList(`/v1/results?document_id=${id}`, resultRow, "No results yet.",
                                  "Results of this document");
  let shown = results();
  jobs.addEventListener("job-ended", () => { const next = results(); shown.replaceWith(next); shown = next; });
  page(d.filename || d.title || "Document", ...documentFacts(d),
    ready ? taskForms(d, jobs) : h("p", {}, d.status === "pending"
      ? "Extraction is running; this page updates when it ends." : "This document cannot be summarized."),
    jobs,
    h("section", { "aria-labelledby": "doc-results", class: "card" }, h("h2", { id: "doc-results" }, "Results"),
      shown));
  if (d.status === "pending") {
    const j = await api("GET", `/v1/jobs?document_id=${id}&limit=1`);
    if (j.data.length) streams.add(follow(j.data[0].id, () => {}, () => documentPage(id)));
  }
}

// An optional cap on the answer's length (the API caps it per style anyway).
function maxTokens(id) {
  return h("div", { class: "row" }, h("label", { for: id }, "Longest answer (tokens, optional)"),
    h("input", { type: "number", id, name: "max_tokens", min: "1", step: "1", inputmode: "numeric",
                 class: "short" }));
}

function limit(id) {
  const n = parseInt($(id).value, 10);
  return Number.isInteger(n) && n > 0 ? { max_tokens: n } : {};
}

function taskForms(d, jobs) {
  const styles = ["brief", "detailed", "executive", "per-section"];
  const summary = h("form", { class: "card", "aria-labelledby": "sum-title" },
    h("h2", { id: "sum-title" }, "Summarize"),
    h("div", { class: "row" },
      h("label", { for: "style" }, "Style"),
      h("select", { id: "style", name: "style" }, styles.map((s) => h("option", { value: s }, s))),
      h("label", { class: "check" }, h("input", { type: "checkbox", id: "sum-thinking", name: "thinking" }),
        " Let the model think first")),
    maxTokens("sum-max"),
    h("button", { type: "submit", id: "summarize" }, "Summarize"));
  summary.addEventListener("submit", async (e) => {
    e.preventDefault();
    await startJob(jobs, `/v1/documents/${d.id}/summaries`,
                   { style: $("style").value, thinking: $("sum-thinking").checked, ...limit("sum-max") });
  });
  const ask = h("form", { class: "card", "aria-labelledby": "ask-title" },
    h("h2", { id: "ask-title" }, "Ask a question"),
    h("label", { for: "question" }, "Question"),
    h("textarea", { id: "question", name: "question", rows: "3", required: true, maxlength: "20000" }),
    h("div", { class: "row" }, h("label", { class: "check" },
      h("input", { type: "checkbox", id: "ask-thinking", name: "thinking" }), " Let the model think first")),
    maxTokens("ask-max"),
    h("button", { type: "submit", id: "ask" }, "Ask"));
  ask.addEventListener("submit", async (e) => {
    e.preventDefault();
    await startJob(jobs, `/v1/documents/${d.id}/questions`,
                   { question: $("question").value, thinking: $("ask-thinking").checked, ...limit("ask-max") });
  });
  return h("div", { class: "forms" }, summary, ask);
}

async function startJob(where, path, body) {
  try {
    const job = await api("POST", path, body);
    where.prepend(jobPanel(job));
  } catch (e) {
    where.prepend(h("p", { class: "error", role: "alert" }, errorText(e)));
  }
}

// ---------------------------------------------------------------- jobs and their progress

function describe(job) {
  const bits = [];
  if (job.state === "queued") {
    bits.push(job.queue_position ? `Queued: position ${job.queue_position} in the queue` : "Queued");
  } else if (job.state === "running") {
    const shown = job.stage && !(job.stage === "prefill" && job.prefill_tokens_total) ? `: ${job.stage}` : "";
    bits.push(`Running${shown}`);
  } else bits.push(job.state[0].toUpperCase() + job.state.slice(1));
  if (job.prefill_tokens_total) {
    bits.push(`prefill ${fmt(job.prefill_tokens_done)} / ${fmt(job.prefill_tokens_total)} tokens`);
  }
  if (job.tokens_generated) bits.push(`${fmt(job.tokens_generated)} tokens generated`);
  return bits.join(" · ");
}

function jobTitle(job) {
  if (job.kind === "answer" && job.params && job.params.question) return `Question: ${job.params.question}`;
  if (job.kind === "summarize" && job.params) return `Summary (${job.params.style})`;
  return job.kind === "ingest" ? "Extraction" : job.kind;
}

// One job: a progress bar that follows its event stream, a cancel button, and its result once done.
function jobPanel(job) {
  const title = h("h2", {}, jobTitle(job));
  const bar = h("progress", { max: "100", value: String(Math.round((job.progress || 0) * 100)),
                              "aria-label": `Progress of ${jobTitle(job)}` });
  const pct = h("span", { class: "pct" }, `${Math.round((job.progress || 0) * 100)} %`);
  const text = h("p", { class: "meta job-status" }, describe(job));
  const cancel = h("button", { type: "button", class: "danger" }, "Cancel");
  const out = h("div", { class: "job-result" });
  const panel = h("section", { class: "card job", "data-job": job.id, "aria-live": "polite" },
    title, h("div", { class: "bar" }, bar, pct), text, cancel, out);
  const state = { ...job };
  const show = () => {
    const p = Math.round((state.progress || 0) * 100);
    bar.value = p;
    pct.textContent = `${p} %`;
    text.textContent = describe(state);
    cancel.hidden = !["queued", "running"].includes(state.state);
  };
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      Object.assign(state, await api("POST", `/v1/jobs/${job.id}/cancel`));
      show();
      announce("Job cancelled");
    } catch (e) { out.replaceChildren(h("p", { class: "error", role: "alert" }, errorText(e))); }
    cancel.disabled = false;
  });
  show();
  if (["queued", "running"].includes(job.state)) {
    streams.add(follow(job.id, (ev) => {
      for (const [k, v] of Object.entries(ev)) if (v !== null || k === "queue_position") state[k] = v;
      show();
    }, async () => {
      Object.assign(state, await api("GET", `/v1/jobs/${job.id}`));
      show();
      announce(`${jobTitle(state)}: ${state.state}`);
      panel.dispatchEvent(new CustomEvent("job-ended", { bubbles: true }));
      if (state.result_id) out.replaceChildren(await resultView(state.result_id));
      else if (state.error) out.replaceChildren(h("p", { class: "error" }, state.error));
    }));
  } else if (job.result_id) {
    resultView(job.result_id).then((r) => out.replaceChildren(r));
  } else if (job.error) out.append(h("p", { class: "error" }, job.error));
  return panel;
}

function jobRow(j) {
  return h("li", { class: "item" },
    h("a", { href: `#/jobs/${j.id}`, class: "title" }, jobTitle(j)),
    h("p", { class: "meta" }, statusBadge(j.state), " ", describe(j)),
    h("p", { class: "meta" }, when(j.created_at)));
}

function jobsPage() {
  page("Jobs", h("section", { class: "card" },
    pagedList("/v1/jobs", jobRow, "No jobs yet.", "Jobs")));
}

async function jobPage(id) {
  try {
    const job = await api("GET", `/v1/jobs/${id}`);
    const doc = job.document_id ? h("p", {}, h("a", { href: `#/documents/${job.document_id}` }, "The document")) : null;
    page(job.kind === "ingest" ? "Extraction" : job.kind === "answer" ? "Answer" : "Summary", doc, jobPanel(job));
  } catch (e) { page("Job"); showError(view, e); }
}

// ---------------------------------------------------------------- results and citations

function pageUrl(documentId, anchor, quote) {
  const q = quote ? `?q=${encodeURIComponent(quote.replace(/\s+/g, " ").trim().slice(0, 500))}` : "";
  return `/v1/documents/${documentId}/pages/${encodeURIComponent(anchor)}.png${q}`;
}

function openPage(documentId, c) {
  $("page-title").textContent = `Page ${c.anchor}`;
  $("page-quote").textContent = c.quote ? `“${c.quote}”` : "";
  const img = $("page-img");
  img.alt = `Page ${c.anchor} of the document${c.quote ? ", the quoted words highlighted" : ""}`;
  img.src = pageUrl(documentId, c.anchor, c.quote);
  $("page-dialog").showModal();
}

function citationNode(result, c, label) {
  const isPage = /^\d+$/.test(c.anchor) && result.document_id;
  const mark = c.status === "verified" ? null
    : h("span", { class: "badge unverified", title: c.reason || "" }, c.status);
  if (!isPage) return h("span", { class: `cite ${c.status}` }, label, mark);
  const link = h("a", { href: pageUrl(result.document_id, c.anchor, c.quote), class: `cite ${c.status}`,
                        "aria-label": `${label}: open page ${c.anchor}${c.status === "verified" ? "" : ` (${c.status})`}`,
                        onclick: (e) => { e.preventDefault(); openPage(result.document_id, c); } }, label);
  return h("span", {}, link, mark);
}

// The result's text with each citation as a link to its page (unverified ones marked), then usage.
function resultBody(r) {
  const text = h("div", { class: "result-text" });
  const cites = [...r.citations].filter((c) => Number.isInteger(c.start) && Number.isInteger(c.end))
    .sort((a, b) => a.start - b.start);
  let at = 0;
  for (const c of cites) {
    if (c.start < at) continue;
    text.append(r.text.slice(at, c.start), citationNode(r, c, r.text.slice(c.start, c.end)));
    at = c.end;
  }
  text.append(r.text.slice(at));
  const list = h("ol", { class: "citations" }, r.citations.map((c) => h("li", {},
    citationNode(r, c, `p. ${c.anchor}`), c.quote ? h("span", { class: "quote" }, ` “${c.quote}”`) : null)));
  const u = r.usage || {};
  const usage = h("dl", { class: "usage" },
    h("dt", {}, "Prompt tokens"), h("dd", {}, fmt(u.prompt_tokens)),
    h("dt", {}, "Cached"), h("dd", {}, fmt(u.cached_tokens)),
    h("dt", {}, "Completion tokens"), h("dd", {}, fmt(u.completion_tokens)));
  return [r.notice ? h("p", { class: "warn" }, r.notice) : null, text,
          r.citations.length ? h("h3", {}, "Citations") : null, r.citations.length ? list : null,
          h("h3", {}, "Usage"), usage];
}

async function resultView(id) {
  try {
    const r = await api("GET", `/v1/results/${id}`);
    return h("article", { class: "result", "data-result": r.id }, ...resultBody(r));
  } catch (e) { return h("p", { class: "error" }, errorText(e)); }
}

function resultRow(r) {
  const first = r.text.length > 160 ? `${r.text.slice(0, 160)}…` : r.text;
  return h("li", { class: "item" },
    h("a", { href: `#/results/${r.id}`, class: "title" }, r.kind === "answer" ? "Answer" : "Summary"),
    h("p", {}, first), h("p", { class: "meta" }, when(r.created_at)));
}

function resultsPage() {
  page("Results", h("section", { class: "card" },
    pagedList("/v1/results", resultRow, "No results yet.", "Results")));
}

async function resultPage(id) {
  page("Result", await resultView(id));
}

start();
