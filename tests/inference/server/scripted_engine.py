"""An engine-shaped test double for HTTP-shape tests of the server: scripted text, the engine's own output types.

The server's other tests drive the real engine; this one only makes the HTTP layer's edge cases cheap to reach."""

import time

from inference.engine.engine import EngineStats
from inference.engine.sequence import RequestOutput, RequestProgress
from inference.text.tokenizer import load_tokenizer

TOKENIZER = load_tokenizer()


class ScriptedEngine:
    """Prefills `chunk` tokens per step (sleeping `step_s`), then emits one scripted piece (one token) per step."""

    def __init__(self, pieces, *, chunk=64, cached=0, step_s=0.0, max_model_len=8192):
        self.tokenizer, self.max_model_len = TOKENIZER, max_model_len
        self.pieces, self.chunk, self.cached, self.step_s = list(pieces), chunk, cached, step_s
        self.reqs: dict[str, dict] = {}
        self.params: dict = {}
        self.salts: dict = {}  # request id -> the cache_salt it came with
        self.aborted: list[str] = []

    def add_request(self, request_id, prompt_token_ids, params, cache_salt=None):
        self.params[request_id] = params
        self.salts[request_id] = cache_salt
        self.reqs[request_id] = {"total": len(prompt_token_ids) - self.cached, "done": 0, "gen": 0,
                                 "n": len(prompt_token_ids), "pieces": list(self.pieces), "max": params.max_tokens}

    def progress(self, request_id):
        r = self.reqs.get(request_id)
        if r is None:
            return None
        state = "prefilling" if r["done"] < r["total"] else "decoding"
        return RequestProgress(request_id, state, r["done"], r["total"], r["gen"], self.cached)

    def step(self):
        time.sleep(self.step_s)
        outs = []
        for rid, r in list(self.reqs.items()):
            if r["done"] < r["total"]:
                r["done"] = min(r["total"], r["done"] + self.chunk)
                continue
            text = r["pieces"].pop(0) if r["pieces"] else ""
            r["gen"] += 1
            length = r["gen"] >= r["max"]
            finished = length or not r["pieces"]
            reason = ("length" if length and r["pieces"] else "stop") if finished else None
            outs.append(RequestOutput(rid, [7], text, finished, reason, r["n"], self.cached, r["gen"]))
            if finished:
                del self.reqs[rid]
        return outs

    def abort(self, request_id):
        self.aborted.append(request_id)
        return self.reqs.pop(request_id, None) is not None

    def probe(self, token_ids, cache_salt=None):
        return min(self.cached, len(token_ids))

    def has_unfinished(self):
        return bool(self.reqs)

    def stats(self):
        return EngineStats(num_waiting=0, num_running=len(self.reqs), cache_blocks_used=0, cache_blocks_total=8,
                           cache_usage=0.0, cache_blocks_cached=0, prefix_hit_tokens=0, prefix_query_tokens=0,
                           prefill_tokens=0, decode_tokens=0, num_preemptions=0, cache_bytes=0)
