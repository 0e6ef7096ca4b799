"""Document-prefix KV snapshots in a blob store (docs/prefix-store.md): restored instead of recomputed across
restarts and replicas. `PrefixStore` is what the engine and the server use; names are imported on first use."""

import importlib

_HOMES = {"PrefixStore": "store", "PrefixStoreConfig": "config", "Snapshot": "snapshot",
          "model_fingerprint": "fingerprint", "backend_from_url": "backends"}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'inference.prefix_store' has no attribute {name!r}")
    return getattr(importlib.import_module(f"inference.prefix_store.{_HOMES[name]}"), name)
