"""Prometheus metrics of one app instance: requests by route and status, and jobs by state (read at scrape)."""

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from pipeline.records.models import Job


class JobsByState:
    """A collector that counts job rows by kind and state when Prometheus scrapes."""

    def __init__(self, sessions):
        self.sessions = sessions

    def collect(self):
        family = GaugeMetricFamily("wholedoc_jobs", "jobs by kind and state", labels=["kind", "state"])
        with self.sessions() as s:
            for kind, state, n in s.execute(select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state)):
                family.add_metric([kind, state], n)
        yield family


class Metrics:
    def __init__(self, sessions):
        self.registry = CollectorRegistry()
        self.requests = Counter("wholedoc_http_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("wholedoc_http_request_seconds", "HTTP request latency", ["method", "route"],
                                 registry=self.registry)
        self.rejections = Counter("wholedoc_rejections", "requests refused by a limit (429, 503), by limit",
                                  ["reason"], registry=self.registry)
        self.registry.register(JobsByState(sessions))

    def middleware(self):
        async def record(request, call_next):
            start = time.perf_counter()
            response = await call_next(request)
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.requests.labels(request.method, path, str(response.status_code)).inc()
            self.latency.labels(request.method, path).observe(time.perf_counter() - start)
            return response

        return record
