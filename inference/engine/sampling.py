"""Sampling parameters and the per-request sampler (greedy, temperature, top-p, seed)."""

from dataclasses import dataclass

import torch

from inference.errors import InputError


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()  # stop strings (matched on detokenized text; the stop string is not returned)
    stop_token_ids: tuple[int, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False
    # thinking budget: after this many generated tokens without end_thinking_id, that token is forced (the model then
    # answers); None = no budget. The prompt must open the thinking block (chat encoding with thinking on).
    thinking_budget: int | None = None
    end_thinking_id: int | None = None

    def __post_init__(self):
        if not self.temperature >= 0:
            raise InputError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise InputError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise InputError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if any(not s for s in self.stop):
            raise InputError("stop strings must be non-empty")
        if self.thinking_budget is not None and (self.thinking_budget < 0 or self.end_thinking_id is None):
            raise InputError(f"thinking_budget must be >= 0 and come with end_thinking_id; got "
                             f"{self.thinking_budget}, {self.end_thinking_id}")


class Sampler:
    """Chooses next tokens for one request; a seeded request draws from its own generator."""

    def __init__(self, params: SamplingParams):
        self.params = params
        self.gen = torch.Generator().manual_seed(params.seed) if params.seed is not None else None

    def __call__(self, logits: torch.Tensor, top: int | None = None) -> int:
        """The next token from logits [vocab] fp32; top: their argmax when the caller has it (greedy's answer)."""
        p = self.params
        if p.temperature == 0:
            return int(logits.argmax()) if top is None else top
        probs = torch.softmax(logits.float().cpu() / p.temperature, dim=-1)
        if p.top_p < 1:
            sorted_p, order = probs.sort(descending=True)
            keep = sorted_p.cumsum(0) - sorted_p < p.top_p  # smallest set whose mass reaches top_p
            keep[0] = True
            probs = torch.zeros_like(probs).scatter_(0, order[keep], sorted_p[keep])
        return int(torch.multinomial(probs, 1, generator=self.gen))
