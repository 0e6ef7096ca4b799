// Corpora, batches and digests on the web page (docs/web.md): simple views over their /v1 routes.

import { api } from "./api.js";
import { $, announce, count, errorText, fmt, h, page, pagedList, showError, statusBadge, streams, when }
  from "./dom.js";

const STYLES = ["brief", "detailed", "executive", "per-section"];

function failure(where, e) {
  where.replaceChildren(h("p", { class: "error", role: "alert" }, errorText(e)));
}

// Re-run `tick` every `ms` while the view is shown (closed with the view's streams).
function every(ms, tick) {
  const timer = setInterval(tick, ms);
  streams.add({ close: () => clearInterval(timer) });
}

// Checkboxes of the tenant's ready documents (the newest 100), named `name`.
async function documentChoices(name, legend) {
  const box = h("fieldset", { class: "choices" }, h("legend", {}, legend));
  try {
    const docs = (await api("GET", "/v1/documents?limit=100")).data.filter((d) => d.status === "ready");
    if (!docs.length) box.append(h("p", { class: "hint" }, "No ready documents yet: upload some first."));
    for (const d of docs) {
      box.append(h("label", { class: "check" }, h("input", { type: "checkbox", name, value: d.id }),
        ` ${d.filename || d.title || d.id}`));
    }
  } catch (e) { box.append(h("p", { class: "error" }, errorText(e))); }
  return box;
}

const checked = (form, name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);

// ---------------------------------------------------------------- corpora

function corpusRow(c) {
  return h("li", { class: "item" }, h("a", { href: `#/corpora/${c.id}`, class: "title" }, c.name),
    h("p", { class: "meta" }, count(c.document_count, "document", "documents"), " · ", when(c.created_at)));
}

export function corporaPage() {
  const note = h("div");
  const form = h("form", { class: "card", "aria-labelledby": "new-corpus" },
    h("h2", { id: "new-corpus" }, "New corpus"),
    h("label", { for: "corpus-name" }, "Name"),
    h("input", { type: "text", id: "corpus-name", name: "name", required: true, maxlength: "200" }),
    h("button", { type: "submit" }, "Create"), note);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const c = await api("POST", "/v1/corpora", { name: $("corpus-name").value });
      location.hash = `#/corpora/${c.id}`;
    } catch (err) { failure(note, err); }
  });
  page("Corpora", form, h("section", { class: "card", "aria-labelledby": "corpora-title" },
    h("h2", { id: "corpora-title" }, "Your corpora"),
    pagedList("/v1/corpora", corpusRow, "No corpora yet.", "Corpora")));
}

export async function corpusPage(id) {
  let c;
  try { c = await api("GET", `/v1/corpora/${id}`); } catch (e) { page("Corpus"); return showError($("view"), e); }
  const note = h("div");
  const add = h("form", { class: "card", "aria-labelledby": "add-docs" }, h("h2", { id: "add-docs" }, "Add documents"),
    await documentChoices("add", "Documents to add"), h("button", { type: "submit" }, "Add"), note);
  add.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("POST", `/v1/corpora/${id}/documents`, { document_ids: checked(add, "add") });
      announce("Documents added");
      corpusPage(id);
    } catch (err) { failure(note, err); }
  });
  const digestNote = h("div");
  const schedule = h("form", { class: "card", "aria-labelledby": "new-digest" },
    h("h2", { id: "new-digest" }, "Schedule a digest"),
    h("p", { class: "hint" }, "A summary of the documents added since the last run, on a schedule."),
    h("label", { for: "cron" }, "When (cron: minute hour day month weekday)"),
    h("input", { type: "text", id: "cron", name: "cron", required: true, value: "0 7 * * 1",
                 spellcheck: "false" }),
    h("label", { for: "timezone" }, "Time zone"),
    h("input", { type: "text", id: "timezone", name: "timezone", value: "UTC", spellcheck: "false" }),
    h("label", { for: "digest-style" }, "Style"),
    h("select", { id: "digest-style", name: "style" }, STYLES.map((s) => h("option", { value: s }, s))),
    h("div", {}, h("button", { type: "submit" }, "Schedule")), digestNote);
  schedule.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const d = await api("POST", `/v1/corpora/${id}/digests`, { cron: $("cron").value,
        timezone: $("timezone").value || "UTC", style: $("digest-style").value });
      location.hash = `#/digests/${d.id}`;
    } catch (err) { failure(digestNote, err); }
  });
  page(`Corpus: ${c.name}`, h("p", { class: "meta" }, count(c.document_count, "document", "documents")),
    h("p", {}, h("a", { href: `#/batches?corpus=${id}` }, "Ask every document of this corpus the same questions")),
    h("section", { class: "card", "aria-labelledby": "corpus-docs" }, h("h2", { id: "corpus-docs" }, "Documents"),
      pagedList(`/v1/corpora/${id}/documents`, (d) => h("li", { class: "item" },
        h("a", { href: `#/documents/${d.id}`, class: "title" }, d.filename || d.title || d.id),
        h("p", { class: "meta" }, statusBadge(d.status))), "No documents in this corpus yet.",
      "Documents of this corpus")),
    add, schedule,
    h("section", { class: "card", "aria-labelledby": "corpus-digests" }, h("h2", { id: "corpus-digests" }, "Digests"),
      pagedList(`/v1/digests?corpus_id=${id}`, digestRow, "No digests scheduled.", "Digests of this corpus")));
}

// ---------------------------------------------------------------- batches

function done(counts) {
  return (counts.done || 0) + (counts.failed || 0) + (counts.cancelled || 0);
}

function batchRow(b) {
  return h("li", { class: "item" }, h("a", { href: `#/batches/${b.id}`, class: "title" },
    count(b.questions.length, "question", "questions"), " × ", count(b.counts.total / b.questions.length,
      "document", "documents")),
    h("p", { class: "meta" }, statusBadge(b.state), ` ${done(b.counts)} / ${b.counts.total} answered · `,
      when(b.created_at)));
}

export async function batchesPage() {
  const corpus = new URLSearchParams(location.hash.split("?")[1] || "").get("corpus");
  const note = h("div");
  let corpora = [];
  try { corpora = (await api("GET", "/v1/corpora?limit=200")).data; } catch (_) { corpora = []; }
  const form = h("form", { class: "card", "aria-labelledby": "new-batch" },
    h("h2", { id: "new-batch" }, "Ask many documents the same questions"),
    h("label", { for: "batch-questions" }, "Questions (one a line)"),
    h("textarea", { id: "batch-questions", name: "questions", rows: "4", required: true }),
    h("label", { for: "batch-corpus" }, "Documents: a corpus…"),
    h("select", { id: "batch-corpus", name: "corpus" }, h("option", { value: "" }, "(the documents ticked below)"),
      corpora.map((c) => h("option", { value: c.id, selected: c.id === corpus }, c.name))),
    await documentChoices("batch-doc", "…or these documents"),
    h("div", { class: "row" }, h("label", { for: "batch-max" }, "Longest answer (tokens, optional)"),
      h("input", { type: "number", id: "batch-max", min: "1", class: "short" })),
    h("button", { type: "submit" }, "Start"), note);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const questions = $("batch-questions").value.split("\n").map((q) => q.trim()).filter(Boolean);
    const body = { questions };
    if ($("batch-corpus").value) body.corpus_id = $("batch-corpus").value;
    else body.document_ids = checked(form, "batch-doc");
    const max = parseInt($("batch-max").value, 10);
    if (max > 0) body.max_tokens = max;
    try {
      const b = await api("POST", "/v1/batches", body);
      location.hash = `#/batches/${b.id}`;
    } catch (err) { failure(note, err); }
  });
  page("Batches", form, h("section", { class: "card", "aria-labelledby": "batches-title" },
    h("h2", { id: "batches-title" }, "Your batches"),
    pagedList("/v1/batches", batchRow, "No batches yet.", "Batches")));
}

export async function batchPage(id) {
  let b;
  try { b = await api("GET", `/v1/batches/${id}`); } catch (e) { page("Batch"); return showError($("view"), e); }
  const bar = h("progress", { max: String(b.counts.total || 1), value: String(done(b.counts)),
                              "aria-label": "Items answered" });
  const status = h("p", { class: "meta batch-status" });
  const cancel = h("button", { type: "button", class: "danger" }, "Cancel the batch");
  const items = h("div");
  const show = () => {
    bar.max = b.counts.total || 1;
    bar.value = done(b.counts);
    status.replaceChildren(statusBadge(b.state), ` ${done(b.counts)} of ${b.counts.total} ${b.counts.total === 1 ? "item" : "items"} final · `,
      `${fmt(b.prompt_tokens)} prompt tokens (${fmt(b.cached_prompt_tokens)} cached) · `,
      `${fmt(b.completion_tokens)} completion tokens`, b.paused_reason ? ` · paused: ${b.paused_reason}` : "");
    cancel.hidden = !["queued", "running", "paused"].includes(b.state);
  };
  const loadItems = () => items.replaceChildren(pagedList(`/v1/batches/${id}/items`, (it) => h("li", { class: "item" },
    h("p", { class: "title" }, `${it.document_name || it.document_id || "(deleted)"}: ${it.question}`),
    h("p", { class: "meta" }, statusBadge(it.state)), it.answer ? h("p", { class: "answer" }, it.answer) : null,
    it.error ? h("p", { class: "error" }, it.error) : null), "No items.", "Items"));
  cancel.addEventListener("click", async () => {
    try { b = await api("POST", `/v1/batches/${id}/cancel`); show(); announce("Batch cancelled"); } catch (e) {
      failure(items, e);
    }
  });
  show();
  page("Batch", h("section", { class: "card", "aria-labelledby": "batch-progress" },
    h("h2", { id: "batch-progress" }, b.questions.join(" · ")), h("div", { class: "bar" }, bar), status, cancel,
    h("p", {}, h("a", { href: `/v1/batches/${id}/results.csv`, download: `batch-${id}.csv` },
      "Download the answers (CSV)"))),
  h("section", { class: "card", "aria-labelledby": "batch-items" }, h("h2", { id: "batch-items" }, "Items"), items));
  loadItems();
  if (!["done", "cancelled"].includes(b.state)) {
    every(2000, async () => {
      try {
        b = await api("GET", `/v1/batches/${id}`);
        show();
        if (["done", "cancelled"].includes(b.state)) { loadItems(); for (const s of streams) s.close(); }
      } catch (_) { /* the next tick tries again */ }
    });
  }
}

// ---------------------------------------------------------------- digests

function digestRow(d) {
  return h("li", { class: "item" }, h("a", { href: `#/digests/${d.id}`, class: "title" },
    `${d.cron} (${d.timezone}), ${d.style}`),
    h("p", { class: "meta" }, d.paused ? "paused" : `next run ${when(d.next_run_at)}`));
}

export function digestsPage() {
  page("Digests", h("p", { class: "hint" }, "Schedule a digest from a corpus's page."),
    h("section", { class: "card" }, pagedList("/v1/digests", digestRow, "No digests yet.", "Digests")));
}

export async function digestPage(id) {
  let d;
  try { d = await api("GET", `/v1/digests/${id}`); } catch (e) { page("Digest"); return showError($("view"), e); }
  const note = h("div");
  const run = h("button", { type: "button" }, "Run now");
  const runs = () => pagedList(`/v1/digests/${id}/runs`, (r) => h("li", { class: "item" },
    h("p", { class: "title" }, `${r.trigger} run · `, statusBadge(r.state)),
    h("p", { class: "meta" }, `${count(r.document_ids.length, "document", "documents")} added until `,
      when(r.added_until)),
    r.result_id ? h("a", { href: `#/results/${r.result_id}` }, "Read the digest") : null,
    r.error ? h("p", { class: "error" }, r.error) : null), "No runs yet.", "Runs");
  let shown = runs();
  run.addEventListener("click", async () => {
    try {
      await api("POST", `/v1/digests/${id}/run`);
      announce("Digest run started");
      const next = runs();
      shown.replaceWith(next);
      shown = next;
    } catch (e) { failure(note, e); }
  });
  page("Digest", h("p", {}, h("a", { href: `#/corpora/${d.corpus_id}` }, "The corpus")),
    h("p", { class: "meta" }, `${d.cron} (${d.timezone}) · ${d.style} · `,
      d.paused ? "paused" : `next run ${when(d.next_run_at)}`), run, note,
    h("section", { class: "card", "aria-labelledby": "runs-title" }, h("h2", { id: "runs-title" }, "Runs"), shown));
}
