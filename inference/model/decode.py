"""The plain reference generator: one sequence, greedy or sampled, through the model runner (no engine, no paging).

Tests compare the engine's tokens with it, and `python -m inference.generate` prints what it decodes."""

import torch

from inference.errors import InputError
from inference.model.model import Transformer
from inference.model.runner import ModelRunner


@torch.no_grad()
def generate(model: Transformer, prompt_ids: list[int], max_new_tokens: int, greedy: bool = True,
             temperature: float = 1.0, seed: int = 0, use_state: bool = True,
             stop_ids: tuple[int, ...] = (), chunk_tokens: int = 4096) -> tuple[list[int], torch.Tensor]:
    """Decode up to max_new_tokens; returns (new token ids, fp32 logits [steps, vocab] that chose each token).

    use_state=False runs a full forward over the whole sequence per step (the slow reference); with the state
    the prompt is prefilled in chunks of chunk_tokens."""
    if not prompt_ids:
        raise InputError("the prompt is empty")
    if temperature <= 0 and not greedy:
        raise InputError("temperature must be positive for sampling")
    run = ModelRunner(model)
    gen = torch.Generator().manual_seed(seed)
    device = model.head.weight.device
    seq = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    state = run.new_state(1) if use_state else None
    logits = run(seq, 0, state, last_only=True, chunk_tokens=chunk_tokens if use_state else None)[0, -1]
    out, rows = [], []
    for step in range(max_new_tokens):
        rows.append(logits.float().cpu())
        if greedy:
            tok = int(logits.argmax())
        else:
            probs = torch.softmax(logits.float().cpu() / temperature, dim=-1)
            tok = int(torch.multinomial(probs, 1, generator=gen))
        out.append(tok)
        if tok in stop_ids or step == max_new_tokens - 1:
            break
        nxt = torch.tensor([[tok]], dtype=torch.long, device=device)
        if use_state:
            logits = run(nxt, state.num_tokens, state, last_only=True)[0, -1]
        else:
            seq = torch.cat([seq, nxt], dim=1)
            logits = run(seq, last_only=True)[0, -1]
    vocab = model.args.vocab_size
    return out, torch.stack(rows) if rows else torch.empty(0, vocab)
