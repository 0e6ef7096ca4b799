"""Where each sequence's tokens lie in one forward call.

A call runs tokens [b, s]. With one span (Transformer.forward) the s tokens are consecutive positions of the b
sequences of one batched state. With many spans (Transformer.forward_packed, the engine's step) b = 1 and the token
axis packs pieces of different sequences, each continuing its own state at its own position: a prefill chunk of one
request beside one decode token of each of the others, all through the same matmuls and one attention launch."""

from dataclasses import dataclass

import torch

from inference.errors import InputError


@dataclass(frozen=True)
class Span:
    """One state's piece of the token axis: tokens offset … offset+n at positions start … start+n."""

    state: object  # inference.state.ModelState or inference.engine.paged_state.PagedState
    start: int
    offset: int
    n: int


@dataclass(frozen=True)
class Packing:
    """The spans of a call plus, per token of the axis, its position and its span."""

    spans: tuple[Span, ...]
    positions: torch.Tensor  # int64 [s]
    span_ids: torch.Tensor  # int64 [s]

    @classmethod
    def of(cls, spans: list[Span], device) -> "Packing":
        if len({id(sp.state) for sp in spans}) != len(spans):
            raise InputError("a state can appear only once in a call")
        if any(sp.n < 1 for sp in spans):
            raise InputError("every span needs at least one token")
        pos = torch.cat([torch.arange(sp.start, sp.start + sp.n, device=device) for sp in spans])
        ids = torch.repeat_interleave(torch.arange(len(spans), device=device),
                                      torch.tensor([sp.n for sp in spans], device=device))
        return cls(tuple(spans), pos, ids)

    @property
    def tokens(self) -> int:
        return self.positions.numel()

    def seq_ids(self, batch: int) -> torch.Tensor:
        """int32 [batch, s]: the kernels' sequence index of every query (span-major, then batch row)."""
        rows = torch.arange(batch, device=self.span_ids.device)[:, None]
        return (self.span_ids[None, :] * batch + rows).to(torch.int32)

    def last_tokens(self) -> torch.Tensor:
        """Index on the token axis of each span's last token [len(spans)]."""
        return torch.tensor([sp.offset + sp.n - 1 for sp in self.spans], device=self.positions.device)
