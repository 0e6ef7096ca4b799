// The page's HTTP client: the same /v1 routes programs use, signed in by the session cookie (docs/web.md).
// Every request that is not a GET carries the session's CSRF token and an Idempotency-Key.

let csrf = null;

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.error = body && body.error;
  }
}

export function setCsrf(token) { csrf = token; }

export function signedInHint() {
  return document.cookie.split(";").some((c) => c.trim().startsWith("wholedoc_signed_in="));
}

function key() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    headers["Idempotency-Key"] = key();
    if (csrf) headers["X-CSRF-Token"] = csrf;
  }
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, credentials: "same-origin",
                                body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 204) return null;
  let data = null;
  try { data = await r.json(); } catch (_) { data = null; }
  if (r.status === 401 && path !== "/v1/session") window.dispatchEvent(new CustomEvent("wholedoc:signed-out"));
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

// An upload with progress (fetch reports none): onProgress(fraction) while the bytes go out.
export function upload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.open("POST", "/v1/documents");
    xhr.setRequestHeader("Idempotency-Key", key());
    if (csrf) xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => (xhr.status < 300 ? resolve(xhr.response) : reject(new ApiError(xhr.status, xhr.response)));
    xhr.onerror = () => reject(new ApiError(0, { detail: "the upload was interrupted; check the connection" }));
    xhr.send(form);
  });
}

// Follow a job's server-sent events: onEvent(data) for each `progress`, onEnd(data) once at the end.
export function follow(jobId, onEvent, onEnd) {
  const source = new EventSource(`/v1/jobs/${jobId}/events`);
  source.addEventListener("progress", (e) => onEvent(JSON.parse(e.data)));
  source.addEventListener("end", (e) => { source.close(); onEnd(JSON.parse(e.data)); });
  return source;
}
