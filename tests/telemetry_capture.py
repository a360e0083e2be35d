"""Telemetry that OpenTelemetry's in-memory reader and exporter capture (no network): shared by the telemetry tests."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.instrumentation.logging.handler import LoggingHandler  # the handler the distro installs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from asr_remediate.telemetry import LOGGER_NAME, Telemetry


class Captured:
    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.log_exporter = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.log_exporter))
        self.logger = logging.getLogger(f"{LOGGER_NAME}.test{id(self)}")
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.logger.addHandler(LoggingHandler(logger_provider=self.logger_provider))
        self.telemetry = Telemetry(self.meter_provider, self.logger)

    def metrics(self) -> dict[str, Counter[tuple[tuple[str, Any], ...]]]:
        """metric name → {sorted attributes: value (sum for counters, count for histograms)}."""
        found: dict[str, Counter[tuple[tuple[str, Any], ...]]] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = getattr(point, "value", None)
                        if value is None:
                            value = point.count  # type: ignore[union-attr]
                        found.setdefault(metric.name, Counter())[tuple(sorted(dict(point.attributes or {}).items()))] \
                            += value
        return found

    def histogram_sums(self, name: str) -> list[float]:
        data = self.reader.get_metrics_data()
        return [point.sum for resource in (data.resource_metrics if data else ()) for scope in resource.scope_metrics
                for metric in scope.metrics if metric.name == name for point in metric.data.data_points]  # type: ignore[union-attr]

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        """The attributes of every exported log record (of one ``asrEvent``), with its body as ``_body``."""
        out = []
        for item in self.log_exporter.get_finished_logs():
            record = getattr(item, "log_record", item)
            attributes = dict(record.attributes or {})
            if event is None or attributes.get("asrEvent") == event:
                out.append({**attributes, "_body": record.body, "_severity": record.severity_text})
        return out

    def close(self) -> None:
        for handler in list(self.logger.handlers):
            self.logger.removeHandler(handler)
        self.meter_provider.shutdown()
        self.logger_provider.shutdown()


@contextmanager
def captured() -> Iterator[Captured]:
    capture = Captured()
    try:
        yield capture
    finally:
        capture.close()
