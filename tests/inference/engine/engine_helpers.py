"""Helpers of the engine tests: random prompts, engine factory, run-to-completion."""

import torch

from inference.engine import Engine, EngineConfig, SamplingParams


def random_ids(n: int, seed: int) -> list[int]:
    return torch.randint(2, 512, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def make_engine(model, **kw) -> Engine:
    kw.setdefault("cache_bytes", 32 << 20)
    kw.setdefault("max_num_batched_tokens", 1024)
    kw.setdefault("num_checkpoints", 8)
    return Engine(model, EngineConfig(**kw))


def run_all(engine: Engine, requests: dict[str, list[int]], max_tokens: int = 5, max_steps: int = 10_000) -> dict:
    """Submit all requests, step until done; per request (token ids, last RequestOutput)."""
    for rid, ids in requests.items():
        engine.add_request(rid, ids, SamplingParams(max_tokens=max_tokens, ignore_eos=True))
    out = {rid: ([], None) for rid in requests}
    for _ in range(max_steps):
        if not engine.has_unfinished():
            break
        for o in engine.step():
            out[o.request_id][0].extend(o.new_token_ids)
            out[o.request_id] = (out[o.request_id][0], o)
    assert not engine.has_unfinished()
    return out


def run_one(engine: Engine, rid: str, ids: list[int], params: SamplingParams, **kw) -> tuple[list[int], object]:
    """Submit one request (kw: add_request's extras, e.g. cache_salt), step until the engine is idle: (its token
    ids, its last RequestOutput)."""
    engine.add_request(rid, ids, params, **kw)
    tokens, last = [], None
    while engine.has_unfinished():
        for out in engine.step():
            if out.request_id == rid:
                tokens += out.new_token_ids
                last = out
    return tokens, last


def record_logits(engine: Engine) -> list[torch.Tensor]:
    """From now on the engine's model runner keeps a copy of every forward call's logits rows in the returned list."""
    rows, inner = [], engine.runner.forward_packed

    def record(pieces):
        out = inner(pieces)
        rows.append(out.detach().clone())
        return out

    engine.runner.forward_packed = record
    return rows
