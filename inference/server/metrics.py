"""Prometheus metrics: engine gauges read from the runner's stats snapshot, plus TTFT and request counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from inference.server.runner import EngineRunner

PREFIX = "wholedoc_inference"
# a 1M-token prefill takes minutes: buckets run to half an hour
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class _EngineCollector:
    """Gauges and counters from the engine's last stats (the engine thread refreshes them twice a second)."""

    def __init__(self, runner: EngineRunner):
        self.runner = runner

    def collect(self):
        snap = self.runner.snapshot
        s = snap.stats
        if s is None:
            return
        hits, queries = s.prefix_hit_tokens, s.prefix_query_tokens
        gauges = (
            ("queue_depth", "requests waiting for admission", s.num_waiting),
            ("running_requests", "requests being prefilled or decoded", s.num_running),
            ("cache_usage", "fraction of KV cache blocks in use", s.cache_usage),
            ("cache_blocks_used", "KV cache blocks held by requests", s.cache_blocks_used),
            ("cache_blocks_total", "KV cache blocks in the pool", s.cache_blocks_total),
            ("prefix_cache_hit_rate", "prompt tokens served from the prefix cache / prompt tokens",
             hits / queries if queries else 0.0),
            ("prefill_tokens_per_second", "prefill throughput over the last half second", snap.prefill_tokens_per_s),
            ("decode_tokens_per_second", "decode throughput over the last half second", snap.decode_tokens_per_s),
            ("engine_healthy", "1 while the engine thread runs", 1.0 if self.runner.healthy else 0.0),
        )
        for name, doc, value in gauges:
            yield GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=float(value))
        counters = (
            ("prefill_tokens", "prompt tokens prefilled", s.prefill_tokens),
            ("decode_tokens", "tokens generated", s.decode_tokens),
            ("prefix_cache_hit_tokens", "prompt tokens served from the prefix cache", hits),
            ("prefix_cache_query_tokens", "prompt tokens looked up in the prefix cache", queries),
            ("preemptions", "requests preempted (recompute) when the KV cache was full", s.num_preemptions),
            ("forward_calls", "engine steps that ran the model (one forward call each)", s.forward_calls),
            ("forward_requests", "requests batched into those calls (÷ forward_calls = batch size)",
             s.forward_pieces),
        )
        for name, doc, value in counters:
            yield CounterMetricFamily(f"{PREFIX}_{name}", doc, value=float(value))


class ServerMetrics:
    """One registry per app (tests start several apps in one process)."""

    def __init__(self, runner: EngineRunner):
        self.registry = CollectorRegistry()
        self.registry.register(_EngineCollector(runner))
        self.ttft = Histogram(f"{PREFIX}_time_to_first_token_seconds", "seconds from admission to the first token",
                              buckets=TTFT_BUCKETS, registry=self.registry)
        self.requests = Counter(f"{PREFIX}_requests", "finished requests by API and finish reason",
                                ["api", "finish_reason"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
