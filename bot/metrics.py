"""`GET /metrics` in Prometheus' text format: workflows by status, step and callback
latency, retries, resumer lag (how overdue the oldest due workflow is), and the due
workflows of types this process does not run."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from workflows import Engine
from workflows.state import Status

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class PrometheusObserver:
    """The engine's `Observer`, kept in its own registry (one per bot process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.steps = Histogram(
            "workflow_step_seconds",
            "Time to run one step",
            ["type", "outcome"],
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.callbacks = Histogram(
            "workflow_callback_seconds",
            "Time to apply one callback (answer, timer)",
            ["type", "outcome"],
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.retries = Counter(
            "workflow_step_retries", "Failed steps that will be retried", ["type"], registry=r
        )
        self.workflows = Gauge("workflows", "Workflows by status", ["status"], registry=r)
        self.lag = Gauge(
            "workflow_resumer_lag_seconds",
            "How overdue the oldest workflow due for execution is",
            registry=r,
        )
        self.unknown = Gauge(
            "workflows_unknown_type_waiting",
            "Due workflows of types this process does not run, waiting for one that does",
            registry=r,
        )

    def step(self, workflow_type: str, seconds: float, ok: bool) -> None:
        self.steps.labels(workflow_type, "ok" if ok else "error").observe(seconds)

    def callback(self, workflow_type: str, seconds: float, ok: bool) -> None:
        self.callbacks.labels(workflow_type or "unknown", "ok" if ok else "refused").observe(
            seconds
        )

    def retry(self, workflow_type: str) -> None:
        self.retries.labels(workflow_type).inc()

    async def refresh(self, engine: Engine) -> None:
        counts = await engine.db.count_by_status()
        for status in Status:
            self.workflows.labels(status.value).set(counts.get(status.value, 0))
        now = engine.clock.now()
        oldest = await engine.db.oldest_due(now)
        self.lag.set(0.0 if oldest is None else max(0.0, (now - oldest).total_seconds()))
        unknown = await engine.db.count_unknown_types(now, engine.workflows.keys())
        self.unknown.set(sum(unknown.values()))

    async def handler(self, engine: Engine) -> web.Response:
        await self.refresh(engine)
        return web.Response(
            body=generate_latest(self.registry),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )
