"""Alertmanager's routing file read as data: how alerts are grouped into messages."""

from __future__ import annotations

from support import ROOT

CONFIG = "alertmanager/alertmanager.yml"


def test_grouping_is_by_alert_and_environment_so_many_providers_are_one_message():
    import yaml

    route = yaml.safe_load((ROOT / CONFIG).read_text())["route"]
    assert route["group_by"] == ["alertname", "environment"]
    (watchdog,) = [r for r in route["routes"] if r["receiver"] == "heartbeat"]
    assert seconds(watchdog["repeat_interval"]) <= 300


def seconds(duration: str) -> int:
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]
