"""The landing page: each endpoint's latest poll, its last success, and whether its data is still served."""

import re
from types import MappingProxyType

import requests

from gatewayz_exporter.landing import LandingPage
from gatewayz_exporter.model import ENDPOINTS, EndpointStatus, Provider, Snapshot
from support.api import Reply

OK = EndpointStatus(True, True, 0.1, 1.0, 100.0, status_code=200, attempted_monotonic=100.0)


def page_of(snapshot: Snapshot, now: float, *, version="1", mode="API host x", max_staleness=300.0) -> str:
    landing = LandingPage(
        lambda: snapshot, version=version, mode=mode, max_staleness=max_staleness, monotonic=lambda: now
    )
    return landing.render().decode()


def test_landing_page_escapes_html_and_ages_polls_with_the_injected_clock():
    stats_failed = EndpointStatus(
        True, False, 0.1, 1.0, 100.0, reason="rate_limited", status_code=429, attempted_monotonic=130.0
    )
    snapshot = Snapshot(
        2,
        providers=(Provider("a"),),
        status=MappingProxyType({"providers": OK, "stats": stats_failed}),
    )
    page = page_of(snapshot, 160.0, version="<b>1</b>", mode="<script>x</script>")
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page and "&lt;b&gt;1" in page
    assert (
        "<td>providers</td><td>ok, 60 s ago</td><td></td><td>200</td><td>60 s ago</td><td>served</td>" in page
    )
    assert (
        "<td>stats</td><td>failed, 30 s ago</td><td>rate_limited</td><td>429</td><td>60 s ago</td><td>served</td>"
        in page
    )
    assert "Providers: 1" in page


def test_in_an_outage_past_max_staleness_the_page_says_the_data_is_no_longer_served():
    failed = EndpointStatus(
        True, False, 2.0, 1.0, 100.0, reason="http_error", status_code=503, attempted_monotonic=990.0
    )
    snapshot = Snapshot(
        9,
        providers=(Provider("a"), Provider("b")),
        status=MappingProxyType(dict.fromkeys(ENDPOINTS, failed)),
    )
    page = page_of(snapshot, 1000.0)
    assert "Providers: 2" not in page
    assert "Providers: not served: the last successful poll is older than MAX_STALENESS" in page
    assert (
        "<td>providers</td><td>failed, 10 s ago</td><td>http_error</td><td>503</td><td>900 s ago</td>"
        "<td>stale: not served (older than MAX_STALENESS, 300 s)</td>" in page
    )


def test_before_the_first_poll_nothing_is_claimed():
    page = page_of(Snapshot(), 5.0)
    assert "Providers: none yet" in page
    assert (
        "<td>providers</td><td>not yet polled</td><td></td><td></td><td>never</td><td>none yet</td>" in page
    )


def test_a_failure_before_any_success_shows_no_last_success():
    refused = EndpointStatus(True, False, 0.1, reason="connection", attempted_monotonic=4.0)
    page = page_of(Snapshot(1, status=MappingProxyType(dict.fromkeys(ENDPOINTS, refused))), 5.0)
    assert (
        "<td>stats</td><td>failed, 1 s ago</td><td>connection</td><td></td><td>never</td><td>none yet</td>"
        in page
    )


def test_landing_page_shows_version_mode_each_endpoints_last_poll_and_the_provider_count(api, serving):
    from gatewayz_exporter import __version__
    from support.api import TEST_KEY

    api.routes["/providers/stats"] = Reply(500, b"down")
    serving.poller.poll_once()
    page = requests.get(serving.base + "/", timeout=5).text
    host = api.url.removeprefix("http://")
    assert f"Version {__version__}; API host {host}." in page
    assert api.url not in page and TEST_KEY not in page
    assert "Providers: 4" in page
    assert re.search(r"<td>providers</td><td>ok, \d+ s ago</td><td></td><td>200</td><td>\d+ s ago</td>", page)
    assert re.search(
        r"<td>stats</td><td>failed, \d+ s ago</td><td>http_error</td><td>500</td><td>never</td>", page
    )


def test_the_mode_names_the_api_host_only_never_credentials_paths_or_keys():
    from gatewayz_exporter.landing import describe_api

    assert describe_api("https://user:secret@api.example.com:8443/v1?key=abc", demo=False) == (
        "API host api.example.com:8443"
    )
    assert describe_api("https://[2001:db8::1]/x", demo=False) == "API host [2001:db8::1]"
    assert describe_api("https://api.gatewayz.ai", demo=True).startswith("demo")


def test_the_status_api_routes_are_listed_like_the_admin_endpoints():
    from gatewayz_exporter.status import STATUS_ENDPOINTS, StatusSnapshot

    not_found = EndpointStatus(
        True, False, 0.2, None, None, reason="http_error", status_code=404, attempted_monotonic=150.0
    )
    stale = EndpointStatus(True, False, 0.2, 1.0, 10.0, reason="timeout", attempted_monotonic=150.0)
    routes = dict.fromkeys(STATUS_ENDPOINTS, EndpointStatus())
    routes.update(status=OK, status_models=not_found, status_stats=stale)
    status = StatusSnapshot(3, status=MappingProxyType(routes))
    snapshot = Snapshot(1, status=MappingProxyType(dict.fromkeys(ENDPOINTS, OK)))
    landing = LandingPage(
        lambda: snapshot,
        version="1",
        mode="API host x",
        max_staleness=100.0,
        status=lambda: status,
        monotonic=lambda: 160.0,
    )
    page = landing.render().decode()
    assert "<td>status</td><td>ok, 60 s ago</td><td></td><td>200</td><td>60 s ago</td><td>served</td>" in page
    assert (
        "<td>status_models</td><td>failed, 10 s ago</td><td>http_error</td><td>404</td><td>never</td>"
        "<td>none yet</td>" in page
    )
    assert (
        "<td>status_stats</td><td>failed, 10 s ago</td><td>timeout</td><td></td><td>150 s ago</td>"
        "<td>stale: not served (older than MAX_STALENESS, 100 s)</td>" in page
    )
    assert "<td>status_incidents</td><td>not yet polled</td>" in page
    assert "status_providers" not in page_of(snapshot, 160.0)  # STATUS_API=off: no status rows
