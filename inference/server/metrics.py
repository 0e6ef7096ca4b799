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
        yield from _prefix_store_metrics(self.runner, s)


# the prefix store's counters (inference.prefix_store.PrefixStore.stats keys) as /metrics counters
STORE_COUNTERS = (
    ("restores", "snapshots restored from the prefix store"),
    ("restored_bytes", "snapshot bytes read from the prefix store"),
    ("lookup_misses", "prefix store lookups that found nothing longer than memory held"),
    ("restore_failures", "prefix store reads that failed (store unavailable); the prefix was recomputed"),
    ("writes", "snapshots written to the prefix store"),
    ("written_bytes", "snapshot bytes written to the prefix store"),
    ("write_failures", "snapshot writes that failed (store unavailable)"),
    ("writes_dropped", "snapshots not written because max_pending_writes uploads were queued"),
    ("evicted", "snapshots deleted by the size cap or the maximum age"),
    ("deleted_by_tag", "snapshots deleted by DELETE /v1/prefixes?tag="),
)


def _prefix_store_metrics(runner: EngineRunner, s):
    """Memory hits, restored and recomputed tokens (with or without a store), and the store's own counters."""
    restored = getattr(s, "restored_tokens", 0)
    yield CounterMetricFamily(f"{PREFIX}_prefix_memory_hit_tokens", "prompt tokens served from cache blocks held in "
                              "memory", value=float(s.prefix_hit_tokens - restored))
    yield CounterMetricFamily(f"{PREFIX}_prefix_restored_tokens", "prompt tokens served from snapshots restored "
                              "from the prefix store", value=float(restored))
    yield CounterMetricFamily(f"{PREFIX}_prefix_recomputed_tokens", "positions behind a cache hit recomputed for "
                              "want of window state", value=float(getattr(s, "recomputed_tokens", 0)))
    store = runner.prefix_store
    if store is None:
        return
    stats = store.stats()
    for name, doc in STORE_COUNTERS:
        yield CounterMetricFamily(f"{PREFIX}_prefix_store_{name}", doc, value=float(stats.get(name, 0)))
    yield CounterMetricFamily(f"{PREFIX}_prefix_store_restore_timeouts", "restores given up on after the restore "
                              "timeout (the request computed its prefix)", value=float(s.restore_timeouts))
    ignored = CounterMetricFamily(f"{PREFIX}_prefix_store_ignored", "snapshots ignored (and recomputed) by reason",
                                  labels=["reason"])
    from inference.prefix_store.errors import REJECT_REASONS

    for reason in REJECT_REASONS:
        ignored.add_metric([reason], float(stats.get(f"ignored_{reason}", 0)))
    yield ignored


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
