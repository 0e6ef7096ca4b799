"""Cache sizes for any V4 config without weights: history bytes per token, window / open-state / checkpoint costs."""

from dataclasses import dataclass

from inference.errors import ConfigError
from inference.model.config import BLOCK_TOKENS, CSA, SLIDING, ModelArgs

ELEM_BYTES = {"float32": 4, "bfloat16": 2}
FP8_ROW_BYTES, FP8_INDEX_ROW_BYTES = 584, 132  # vLLM fp8_ds_mla rows, FP8+fp32-scale index rows (docs/cache-layout.md)


@dataclass(frozen=True)
class CacheLayout:
    """Per-layer row shapes of the paged cache (main layers only; MTP layers keep no history)."""

    args: ModelArgs
    dtype: str = "float32"

    def __post_init__(self):
        if self.dtype not in ELEM_BYTES and self.dtype != "fp8":
            raise ConfigError(f"cache dtype must be one of {sorted(ELEM_BYTES) + ['fp8']}, got {self.dtype!r}")
        if self.args.sliding_window > BLOCK_TOKENS:
            raise ConfigError(f"sliding_window {self.args.sliding_window} exceeds the {BLOCK_TOKENS}-position "
                              f"window block of the paged cache")

    @property
    def num_layers(self) -> int:
        return self.args.num_hidden_layers

    def ratio(self, layer: int) -> int:
        return self.args.compress_ratios[layer]

    def kind(self, layer: int) -> str:
        return self.args.attn_types[layer]

    def rows_per_block(self, layer: int) -> int:
        """Compressed rows one 128-position history block holds at this layer (0 for sliding-only)."""
        return 0 if self.kind(layer) == SLIDING else BLOCK_TOKENS // self.ratio(layer)

    def _row_bytes(self, dim: int, index: bool) -> int:
        if self.dtype == "fp8":
            return FP8_INDEX_ROW_BYTES if index else FP8_ROW_BYTES
        return dim * ELEM_BYTES[self.dtype]

    @property
    def history_block_bytes(self) -> int:
        """Bytes of one history block over all layers: compressed rows plus CSA indexer keys."""
        total = 0
        for layer in range(self.num_layers):
            n = self.rows_per_block(layer)
            total += n * self._row_bytes(self.args.head_dim, False)
            if self.kind(layer) == CSA:
                total += n * self._row_bytes(self.args.index_head_dim, True)
        return total

    @property
    def bytes_per_token(self) -> float:
        """History bytes per token, amortised (docs/cache-layout.md#sizes)."""
        return self.history_block_bytes / BLOCK_TOKENS

    @property
    def window_block_bytes(self) -> int:
        """One window slot: raw rows of 128 positions at every layer (per running sequence and per checkpoint)."""
        return self.num_layers * BLOCK_TOKENS * self._row_bytes(self.args.head_dim, False)

    @property
    def carry_bytes(self) -> int:
        """CSA overlap carries (kv + score, main and indexer compressors, fp32) a checkpoint stores."""
        a = self.args
        return sum(2 * self.ratio(i) * (a.head_dim + a.index_head_dim) * 4
                   for i in range(self.num_layers) if self.kind(i) == CSA)

    @property
    def open_state_bytes(self) -> int:
        """Per running sequence: partial windows (fp32 kv + score, coff·d wide) plus the CSA carries."""
        a, total = self.args, self.carry_bytes
        for i in range(self.num_layers):
            if self.kind(i) == SLIDING:
                continue
            coff = 2 if self.kind(i) == CSA else 1
            dims = (a.head_dim, a.index_head_dim) if self.kind(i) == CSA else (a.head_dim,)
            total += sum(2 * self.ratio(i) * coff * d * 4 for d in dims)
        return total

    @property
    def checkpoint_bytes(self) -> int:
        return self.window_block_bytes + self.carry_bytes

    def report(self) -> dict:
        return {"dtype": self.dtype, "history_bytes_per_token": self.bytes_per_token,
                "history_block_bytes": self.history_block_bytes, "window_bytes_per_seq": self.window_block_bytes,
                "open_state_bytes_per_seq": self.open_state_bytes, "checkpoint_bytes": self.checkpoint_bytes}


def bytes_per_token(config_json: str, dtype: str = "bfloat16") -> dict:
    """Cache costs of a config.json file, without loading weights."""
    return CacheLayout(ModelArgs.from_file(config_json), dtype).report()


def main(argv: list[str] | None = None) -> int:
    """python -m inference.engine.layout CONFIG.json [--dtype bfloat16|float32|fp8]: cache costs as one JSON line."""
    import argparse
    import json

    p = argparse.ArgumentParser(description="paged-cache bytes per token of a V4 config.json (no weights)")
    p.add_argument("config", help="a V4 config.json")
    p.add_argument("--dtype", default="bfloat16", choices=[*ELEM_BYTES, "fp8"], help="the cache's element type")
    ns = p.parse_args(argv)
    print(json.dumps(bytes_per_token(ns.config, ns.dtype)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
