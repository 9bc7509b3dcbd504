"""prometheus_client as the test oracle: a snapshot's families rendered by its ``generate_latest``.

The exporter renders with its own ``render`` module only; these collectors
build the same families with prometheus_client's metric family classes, so a
test can compare the two byte for byte and ask ``registry.get_sample_value``.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.openmetrics import exposition as openmetrics_format
from prometheus_client.registry import CollectorRegistry

from gatewayz_exporter.collector import (
    INFO_DOC,
    INFO_NAME,
    PROVIDER_GAUGES,
    Family,
    SnapshotCollector,
    stats_families,
)


def to_metric(family: Family) -> Metric:
    """A Family as the prometheus_client metric family object."""
    if family.kind == "info":
        info = InfoMetricFamily(family.name, family.documentation, labels=())
        for values, _ in family.rows:
            info.add_metric((), dict(zip(family.label_names, values, strict=True)))
        return info
    cls = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
    metric = cls(family.name, family.documentation, labels=family.label_names)
    for values, value in family.rows:
        metric.add_metric(values, value)
    return metric


class OracleCollector:
    """A prometheus_client collector over the newest snapshot of ``collector.store``."""

    def __init__(self, collector: SnapshotCollector):
        self._collector = collector

    def collect(self) -> Iterator[Metric]:
        snapshot = self._collector.store.current
        providers_fresh, stats_fresh = self._collector.freshness(snapshot)
        for family in stats_families(snapshot, stats_fresh=stats_fresh):
            yield to_metric(family)
        if providers_fresh and snapshot.providers is not None:
            info = InfoMetricFamily(INFO_NAME, INFO_DOC, labels=())
            for p in snapshot.providers:
                labels = {
                    "provider": p.slug,
                    "name": p.name,
                    "base_url": p.base_url,
                    "site_url": p.site_url,
                    "status_page_url": p.status_page_url,
                }
                info.add_metric((), labels)
            yield info
            for gauge in PROVIDER_GAUGES:
                metric = GaugeMetricFamily(gauge.name, gauge.documentation, labels=("provider",))
                for provider in snapshot.providers:
                    value = gauge.value(provider)
                    if value is not None:
                        metric.add_metric((provider.slug,), value)
                yield metric
        extra = self._collector.extra()
        if extra is None:
            for family in self._collector.status_families(snapshot):
                yield to_metric(family)
            return
        for family in extra.data_families():  # the status API's, after the per-provider families
            yield to_metric(family)
        for family in self._collector.status_families(snapshot, extra.poll_rows()):
            yield to_metric(family)
        for family in extra.own_families():
            yield to_metric(family)


def oracle_registry(collector: SnapshotCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(OracleCollector(collector))
    return registry


def oracle_text(collector: SnapshotCollector, openmetrics: bool) -> str:
    """The exposition prometheus_client writes for the collector's newest snapshot."""
    registry = oracle_registry(collector)
    if openmetrics:
        return openmetrics_format.generate_latest(registry).decode()  # type: ignore[no-untyped-call]
    return generate_latest(registry).decode()
