"""A model fingerprint that is cheap to compute: what the cached rows depend on, never a hash of all weights."""

import hashlib
import json
from pathlib import Path

from inference.model.config import BLOCK_TOKENS

FORMAT_VERSION = 1  # bump when the snapshot layout or the meaning of a row changes


def model_fingerprint(checkpoint: str | Path, dtype: str, reference_numerics: bool | str | None,
                      weights: str | None = None) -> str:
    """sha256 (hex, 32 chars) of: config.json, the weight index file, every *.safetensors name and size, the cache
    dtype, the reference-numerics switch, the weight format served (`--weights`), the block size and the snapshot
    format version (docs/prefix-store.md)."""
    root = Path(checkpoint)
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT_VERSION, "dtype": dtype, "reference_numerics": str(reference_numerics),
                         "weights": str(weights),
                         "block_tokens": BLOCK_TOKENS}, sort_keys=True).encode())
    for name in ("config.json", "model.safetensors.index.json"):
        f = root / name
        h.update(name.encode() + b"\0" + (f.read_bytes() if f.exists() else b"-") + b"\0")
    for shard in sorted(root.glob("*.safetensors")):
        h.update(f"{shard.name}:{shard.stat().st_size}\n".encode())
    return h.hexdigest()[:32]
