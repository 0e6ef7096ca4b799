"""Engine options: context window, batch limits, per-step token budget, cache memory budget, admission control."""

from dataclasses import dataclass

from inference.errors import ConfigError

DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class EngineConfig:
    max_model_len: int | None = None  # default: the checkpoint's max_position_embeddings (capped by the cache)
    max_num_seqs: int = 16  # running sequences at once
    max_num_batched_tokens: int = 2048  # per-step token budget (chunked prefill)
    cache_bytes: int = 2 << 30  # memory budget for the history + window pools
    max_waiting: int = 64  # admission control: bounded waiting queue
    checkpoint_every_blocks: int = 64  # window checkpoints on long prompts
    dtype: str = "float32"
    reference_numerics: bool | None = None  # None = from the checkpoint's quantization_config
    num_checkpoints: int | None = None  # window-pool slots for checkpoints; None = 4 × max_num_seqs
    model_id: str = ""  # part of every prefix-cache key (default: the checkpoint path)
    weights: str | None = None  # quantized | dequantized (docs/quantized-weights.md); None = by device
    device: str = "cpu"  # where from_checkpoint loads the model and the cache pools live

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        for name in ("max_num_seqs", "max_num_batched_tokens", "cache_bytes", "max_waiting",
                     "checkpoint_every_blocks"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_model_len is not None and self.max_model_len < 2:
            raise ConfigError(f"max_model_len must be at least 2, got {self.max_model_len}")
        if self.num_checkpoints is not None and self.num_checkpoints < 0:
            raise ConfigError(f"num_checkpoints must be >= 0, got {self.num_checkpoints}")

    @property
    def checkpoint_slots(self) -> int:
        return 4 * self.max_num_seqs if self.num_checkpoints is None else self.num_checkpoints
