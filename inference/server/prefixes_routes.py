"""DELETE /v1/prefixes?tag=…: delete the stored prefix snapshots written for requests carrying `prefix_tag`
(a deleted document's derived KV goes with it; docs/prefix-store.md)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request

from inference.prefix_store.errors import StoreUnavailable
from inference.server.errors import ServerError

router = APIRouter()


class PrefixStoreUnavailable(ServerError):
    """The folder or bucket failed; the caller may retry (the snapshots also age out)."""

    status, kind = 503, "server_error"


@router.delete("/v1/prefixes")
async def delete_prefixes(request: Request, tag: Annotated[str, Query(min_length=1, max_length=256)]):
    """Delete every snapshot tagged `tag`; `deleted` counts them. Without a prefix store there is nothing to delete
    (`prefix_store`: false)."""
    store = request.app.state.services.runner.prefix_store
    if store is None:
        return {"tag": tag, "deleted": 0, "prefix_store": False}
    try:
        deleted = await asyncio.to_thread(store.delete_tag, tag)
    except StoreUnavailable as e:
        raise PrefixStoreUnavailable(f"the prefix store failed: {e}; retry later") from None
    return {"tag": tag, "deleted": deleted, "prefix_store": True}
