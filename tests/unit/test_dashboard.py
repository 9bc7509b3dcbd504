"""The dashboard as code, checked structurally (no Grafana binary here): data sources only
through variables, every variable and uid resolves, in our Grafana and in one whose uids
are not ours. Its queries run on a real Prometheus in test_prometheus.py."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator

import pytest
import yaml

from support import ROOT

DASHBOARD = ROOT / "grafana" / "dashboards" / "gatewayz-provider-management.json"
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yml"
BUILT_INS = {"__from", "__to", "__rate_interval", "__interval", "__range", "__all"}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels() -> Iterator[dict]:
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold their panels


def variables() -> dict[str, dict]:
    return {v["name"]: v for v in dashboard()["templating"]["list"]}


def explore_panes(url: str) -> dict:
    assert url.startswith("/explore?")
    query = urllib.parse.parse_qs(url.split("?", 1)[1])
    return json.loads(query["panes"][0])


def test_every_panel_and_query_takes_its_data_source_from_a_variable():
    kinds = {"prometheus": "${datasource}", "loki": "${loki_datasource}"}
    seen = set()
    for panel in panels():
        if panel["type"] == "row":
            continue
        source = panel["datasource"]
        assert source == {"type": source["type"], "uid": kinds[source["type"]]}, panel["title"]
        seen.add(source["type"])
        for target in panel["targets"]:
            assert target["datasource"] == source, panel["title"]
    assert seen == {"prometheus", "loki"}


def test_the_data_source_variables_pick_by_type_and_name_no_uid():
    found = variables()
    for name, kind in (
        ("datasource", "prometheus"),
        ("loki_datasource", "loki"),
        ("tempo_datasource", "tempo"),
    ):
        variable = found[name]
        assert variable["type"] == "datasource" and variable["query"] == kind
        assert not variable.get("current"), "a saved choice would name one Grafana's uid"
    assert found["provider"]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    # No uid of any Grafana appears anywhere: only variables, and the dashboard's own uid.
    uids = re.findall(r'"uid":\s*"([^"]*)"', DASHBOARD.read_text())
    assert set(uids) == {"${datasource}", "${loki_datasource}", "gatewayz-provider-management"}


def referenced_variables(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z_][\w]*)", text)) | set(re.findall(r"\$([A-Za-z_]\w*)", text))


def test_every_variable_the_dashboard_uses_is_defined_or_built_in():
    defined = set(variables())
    used = set()
    for panel in panels():
        used |= referenced_variables(json.dumps(panel.get("targets", [])))
        used |= referenced_variables(json.dumps(panel.get("datasource", {})))
        used |= referenced_variables(urllib.parse.unquote(json.dumps(panel.get("links", []))))
    used |= referenced_variables(json.dumps(variables()["provider"]))
    assert used - defined - BUILT_INS == set()
    assert {"datasource", "loki_datasource", "tempo_datasource", "provider"} <= used


def resolve(datasources: list[dict]) -> dict[str, str]:
    """What Grafana does with a datasource variable that has no saved choice (`current: {}`):
    its options are DatasourceSrv.getList's, sorted by name case-insensitively, and it takes the
    first. The org default is not preferred (that takes a saved "default" choice)."""
    chosen = {}
    for name, variable in variables().items():
        if variable["type"] != "datasource":
            continue
        candidates = [d for d in datasources if d["type"] == variable["query"]]
        assert candidates, f"no {variable['query']} data source for ${name}"
        chosen[name] = min(candidates, key=lambda d: d["name"].lower())["uid"]
    return chosen


# Their Grafana (railway-grafana-stack) provisions its own uids; ours are gatewayz-*. These are
# the ones its image provisions (grafana/datasources/datasources.yml there): Loki is the default.
THEIR_DATASOURCES = [
    {"name": "Loki", "uid": "grafana_loki", "type": "loki", "isDefault": True},
    {"name": "Prometheus", "uid": "grafana_prometheus", "type": "prometheus"},
    {"name": "Tempo", "uid": "grafana_tempo", "type": "tempo"},
    {"name": "Sentry", "uid": "grafana_sentry", "type": "grafana-sentry-datasource"},
    {"name": "JSON API", "uid": "grafana_json_api", "type": "grafana-simple-json-datasource"},
    {"name": "Mimir", "uid": "grafana_mimir", "type": "prometheus"},
]


@pytest.mark.parametrize("grafana", ["ours", "theirs"])
def test_every_panel_resolves_to_a_data_source_in_our_grafana_and_in_theirs(grafana):
    sources = (
        yaml.safe_load(DATASOURCES.read_text())["datasources"] if grafana == "ours" else THEIR_DATASOURCES
    )
    by_uid = {s["uid"]: s["type"] for s in sources}
    chosen = resolve(sources)
    for panel in panels():
        if panel["type"] == "row":
            continue
        uid = panel["datasource"]["uid"].removeprefix("${").removesuffix("}")
        assert by_uid[chosen[uid]] == panel["datasource"]["type"], panel["title"]
    if grafana == "ours":
        assert chosen == {
            "datasource": "gatewayz-prometheus",
            "loki_datasource": "gatewayz-loki",
            "tempo_datasource": "gatewayz-tempo",
        }
    else:
        # Two Prometheus-type sources: "Mimir" comes first by name. Their Prometheus
        # remote-writes every series (recording rules included) to it, so the panels fill in;
        # the drop-down switches to "Prometheus" (docs/stack.md, "Grafana").
        assert chosen == {
            "datasource": "grafana_mimir",
            "loki_datasource": "grafana_loki",
            "tempo_datasource": "grafana_tempo",
        }


def test_it_shows_limits_models_and_loki_shipping_which_no_panel_showed_before():
    exprs = {panel["title"]: " ".join(t["expr"] for t in panel.get("targets", [])) for panel in panels()}
    everything = " ".join(exprs.values())
    for metric in (
        "gatewayz_provider_rate_limit",
        "gatewayz_provider_max_tokens",
        "gatewayz_provider_supported_models",
        "gatewayz_exporter_loki_pushed_lines_total",
        "gatewayz_exporter_loki_dropped_lines_total",
        "gatewayz_exporter_loki_push_failures_total",
    ):
        assert metric in everything, metric
    assert "gatewayz_provider_rate_limit" in exprs["Rate limit"]
    assert "gatewayz_provider_max_tokens" in exprs["Max tokens"]
    assert "gatewayz_provider_supported_models" in exprs["Supported models"]
    assert "loki_pushed_lines" in exprs["Log shipping to Loki"]


def test_every_metric_a_query_names_is_one_the_exporter_or_the_rules_produce():
    readme = (ROOT / "docs/reference.md").read_text().split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(gatewayz_\w+)`", readme))
    rules = yaml.safe_load((ROOT / "prometheus/recording_rules.yml").read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"]}
    used = set()
    for panel in panels():
        for target in panel.get("targets", []):
            used |= set(re.findall(r"\bgatewayz_\w+", target["expr"]))
    assert used and used - documented - recorded == set()


def test_exporter_panels_link_to_explore_for_the_logs_and_traces_of_a_poll():
    titles = {p["title"]: p for p in panels()}
    for title in (
        "API poll success",
        "Poll errors by reason",
        "Age of the last successful poll",
        "Poll duration",
        "Exporter logs",
    ):
        links = titles[title]["links"]
        panes = [explore_panes(link["url"])["a"] for link in links]
        logs = [p for p in panes if p["datasource"] == "${loki_datasource}"]
        traces = [p for p in panes if p["datasource"] == "${tempo_datasource}"]
        assert logs and traces, title
        (log_query,) = logs[0]["queries"]
        assert log_query["datasource"] == {"type": "loki", "uid": "${loki_datasource}"}
        assert (
            '{service="provider-metrics-exporter"}' in log_query["expr"]
            and "Updated provider metrics" in log_query["expr"]
        )
        (trace_query,) = traces[0]["queries"]
        assert trace_query["datasource"] == {"type": "tempo", "uid": "${tempo_datasource}"}
        assert trace_query["queryType"] == "traceql"
        assert 'resource.service.name = "provider-metrics-exporter"' in trace_query["query"]
        assert 'name = "poll"' in trace_query["query"]
        assert logs[0]["range"] == {"from": "${__from}", "to": "${__to}"}


def test_dashboard_has_the_seeds_panel_groups_limits_and_exporter_health():
    rows = [p["title"] for p in dashboard()["panels"] if p["type"] == "row"]
    assert rows == [
        "Statistics overview",
        "Health and activity",
        "Response time trends",
        "Capability distribution",
        "Provider details",
        "Limits and models",
        "Exporter health",
        "Measured health",
    ]
    titles = {p["title"]: p for p in panels()}
    assert titles["Health status distribution"]["type"] == "piechart"
    assert titles["Active status distribution"]["type"] == "piechart"
    assert titles["Providers"]["type"] == "table"
    assert titles["Exporter logs"]["type"] == "logs"
    renamed = titles["Providers"]["transformations"][1]["options"]["renameByName"]
    assert {"Rate limit", "Max tokens", "Models"} <= set(renamed.values())
    exprs = " ".join(t["expr"] for p in panels() for t in p.get("targets", []))
    for metric in (
        "gatewayz_providers_total",
        "gatewayz_providers_active",
        "gatewayz_provider_response_time_ms",
        "gatewayz_provider_health_status",
        "gatewayz_provider_supports_streaming",
        "gatewayz_provider_supports_function_calling",
        "gatewayz_provider_supports_vision",
        "gatewayz_provider_supports_image_generation",
        "gatewayz_provider_scrape_success",
        "gatewayz_provider_scrape_errors_total",
        "gatewayz_provider_last_successful_scrape_timestamp_seconds",
        "gatewayz_provider_scrape_duration_seconds",
    ):
        assert metric in exprs, metric


def test_panels_do_not_overlap_on_the_grid():
    taken: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, (panel["title"], taken.get((x, y)))
                taken[(x, y)] = panel["title"]


def test_panel_ids_are_unique():
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids))


def test_health_values_are_mapped_to_names_and_colours():
    timeline = next(p for p in panels() if p["title"] == "Health over time")
    (mapping,) = timeline["fieldConfig"]["defaults"]["mappings"]
    assert {k: (v["text"], v["color"]) for k, v in mapping["options"].items()} == {
        "0": ("unknown", "text"),
        "1": ("healthy", "green"),
        "2": ("degraded", "orange"),
        "3": ("down", "red"),
    }


def seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)([smh])", duration)
    assert match, duration
    return int(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2]]


def test_rates_span_enough_scrapes_of_the_exporter_in_any_grafana():
    """Grafana's $__rate_interval is max($__interval + S, 4 * S), S being the query's Min step
    (`interval`) if set, else the data source's scrape interval: 15 s unless configured (their
    Grafana sets none). The exporter is scraped every 60 s, so without a Min step an increase()
    over $__rate_interval often holds one sample and the panel is empty."""
    prom = yaml.safe_load((ROOT / "prometheus/prom.yml").read_text())
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "provider_metrics"]
    scrape = seconds(job["scrape_interval"])
    grafana_default_scrape, shortest_dashboard_interval = 15, 1
    checked = 0
    for panel in panels():
        for target in panel.get("targets", []):
            if "$__rate_interval" not in target.get("expr", ""):
                continue
            step = seconds(target["interval"]) if target.get("interval") else grafana_default_scrape
            rate_interval = max(shortest_dashboard_interval + step, 4 * step)
            assert rate_interval >= 4 * scrape, (panel["title"], target["expr"])
            checked += 1
    assert checked


def test_grafana_has_the_stacks_alertmanager_as_a_data_source_for_silences():
    sources = {s["uid"]: s for s in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    alertmanager = sources["gatewayz-alertmanager"]
    assert alertmanager["type"] == "alertmanager" and alertmanager["url"] == "${ALERTMANAGER_INTERNAL_URL}"
    assert alertmanager["jsonData"]["implementation"] == "prometheus"
    # The silence links in Alertmanager's messages name it.
    template = (ROOT / "alertmanager/templates/gatewayz.tmpl").read_text()
    assert f"alerting/silence/new?alertmanager={alertmanager['name']}" in template
    assert "ALERTMANAGER_INTERNAL_URL=http://alertmanager:9093" in (ROOT / "grafana/Dockerfile").read_text()
