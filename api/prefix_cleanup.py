"""A deleted document's derived KV goes with it: ask the inference server to delete the prefix snapshots tagged
with the document (docs/prefix-store.md#deletion). Best effort, after the response: a failure is logged and the
snapshots age out under the store's maximum age."""

from functools import cache

from pipeline.client import ClientConfig, InferenceClient, document_prefix_tag
from pipeline.logs import get_logger
from workers.app import WorkerSettings

log = get_logger(__name__)


@cache
def _client() -> InferenceClient | None:
    """The workers' inference endpoint, read from the same environment; None without one, or when it is not a
    wholedoc/vLLM-style server (only those keep tagged snapshots)."""
    try:
        cfg = WorkerSettings.load()
    except Exception:
        log.warning("worker settings unreadable; document prefixes are left to age out", exc_info=True)
        return None
    if not cfg.inference_url:
        return None
    client = InferenceClient(ClientConfig(base_url=cfg.inference_url, model=cfg.model, max_retries=0,
                                          api_key=cfg.inference_api_key.get_secret_value()
                                          if cfg.inference_api_key else None,
                                          control_timeout=10.0, flavor=cfg.inference_flavor))
    return client if client.config.flavor == "extended" else None


def forget_document_prefixes(tenant_id: str, document_id: str) -> None:
    """DELETE /v1/prefixes?tag=<tenant>/<document> on the inference server (runs after the 204 is sent)."""
    client = _client()
    if client is None:
        return
    try:
        n = client.delete_prefixes(document_prefix_tag(tenant_id, document_id))
    except Exception:
        log.warning("deleting a document's prefix snapshots failed; they age out", exc_info=True,
                    document_id=document_id)
        return
    if n:
        log.info("deleted the document's prefix snapshots", document_id=document_id, snapshots=n)
