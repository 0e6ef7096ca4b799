// Small DOM helpers the page's modules share. Strings always become text nodes (never markup).

import { api, ApiError } from "./api.js";

export const $ = (id) => document.getElementById(id);
export const view = $("view");
export const streams = new Set();  // EventSources of the view shown; closed when it changes

// h("p", {class: "x"}, "text", child): an element; strings become text nodes, never markup.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en"));
export const count = (n, one, many) => `${fmt(n)} ${n === 1 ? one : many}`;
export const when = (iso) => new Date(iso).toLocaleString();
export const announce = (text) => { $("announce").textContent = text; };

export function errorText(e) {
  return e instanceof ApiError ? e.message : `Something went wrong: ${e.message || e}`;
}

export function showError(where, e) {
  where.replaceChildren(h("p", { class: "error", role: "alert" }, errorText(e)));
}

export function page(title, ...children) {
  document.title = `${title} · wholedoc`;
  const heading = h("h1", { tabindex: "-1" }, title);
  view.replaceChildren(heading, ...children);
  heading.focus();
}

// A list that pages with `after` (newest first); row(item) draws one item.
export function pagedList(path, row, empty, label) {
  const list = h("ul", { class: "list", "aria-label": label });
  const more = h("button", { type: "button", class: "quiet", hidden: true }, "Show more");
  const box = h("div", {}, list, more);
  let after = null;
  async function load() {
    try {
      const sep = path.includes("?") ? "&" : "?";
      const p = await api("GET", `${path}${sep}limit=20${after ? `&after=${after}` : ""}`);
      if (!after && p.data.length === 0) list.replaceChildren(h("li", { class: "empty" }, empty));
      for (const item of p.data) list.append(row(item));
      after = p.last_id;
      more.hidden = !p.has_more;
    } catch (e) { showError(box, e); }
  }
  more.addEventListener("click", load);
  load();
  return box;
}

export function statusBadge(state) {
  return h("span", { class: `badge ${state}` }, state);
}
