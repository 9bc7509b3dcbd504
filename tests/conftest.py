"""Fixtures every layer uses: the API stand-in, in-process exporters, and one set of certificates."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import pytest
import trustme
import yaml

from gatewayz_exporter.app import Exporter, build
from gatewayz_exporter.webconfig import load_web_config
from support.api import FakeApi, FakeClock, make_config
from support.receivers import LokiReceiver, OtlpReceiver

LAYERS = ("unit", "integration", "stack")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker more than there are cores, since many tests spend part of their
    time waiting on a socket, a deadline or a process."""
    return len(os.sched_getaffinity(0)) + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its layer (the folder it is in), so ``-m "not stack"`` selects too.

    Tests marked ``slow`` run first, each followed by a quick one: xdist's scheduler hands every
    worker its first two tests (``--maxschedchunk 1``), so the long ones start together on
    different workers instead of one of them ending the run alone."""
    for item in items:
        layer = Path(item.path).parent.name
        if layer in LAYERS:
            item.add_marker(layer)
    slow = [item for item in items if item.get_closest_marker("slow")]
    quick = [item for item in items if not item.get_closest_marker("slow")]
    interleaved = [test for pair in zip(slow, quick, strict=False) for test in pair]
    items[:] = interleaved + slow[len(quick) :] + quick[len(slow) :]


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()
    yield fake
    fake.close()


@pytest.fixture
def exporter_for() -> Iterator[Callable[..., Exporter]]:
    """``exporter_for(api, clock=None, **env)`` builds a whole exporter (nothing started); stopped at teardown."""
    made: list[Exporter] = []

    def make(fake: FakeApi, clock: FakeClock | None = None, **env: str) -> Exporter:
        times = {"monotonic": clock.monotonic, "wall_clock": clock.wall} if clock else {}
        exporter = build(make_config(fake.url, **env), **times)
        made.append(exporter)
        return exporter

    yield make
    for exporter in made:
        exporter.stop(1.0)


@pytest.fixture
def serving(api: FakeApi, exporter_for: Callable[..., Exporter]) -> Exporter:
    """An in-process exporter listening on 127.0.0.1 (``.base`` is its URL); polls are driven by the test."""
    exporter = exporter_for(api, METRICS_ADDR="127.0.0.1")
    exporter.server.start()
    exporter.base = f"http://127.0.0.1:{exporter.server.port}"  # type: ignore[attr-defined]
    return exporter


@pytest.fixture
def running(serving: Exporter) -> Exporter:
    """An in-process exporter listening on 127.0.0.1 with the seed data of one poll."""
    serving.poller.poll_once()
    return serving


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def certs(tmp_path: Path, ca: trustme.CA) -> Path:
    """A directory with ca.crt, server.crt/key (127.0.0.1, localhost) and client.crt/key."""
    server = ca.issue_cert("127.0.0.1", "localhost", "provider-metrics-exporter")
    client = ca.issue_cert("prometheus@example.com")
    server.cert_chain_pems[0].write_to_path(tmp_path / "server.crt")
    server.private_key_pem.write_to_path(tmp_path / "server.key")
    client.cert_chain_pems[0].write_to_path(tmp_path / "client.crt")
    client.private_key_pem.write_to_path(tmp_path / "client.key")
    ca.cert_pem.write_to_path(tmp_path / "ca.crt")
    return tmp_path


@pytest.fixture
def served(api: FakeApi) -> Iterator[Callable[..., Exporter]]:
    """``served(web_config_path, checkpw=bcrypt.checkpw)``: an in-process exporter on 127.0.0.1 with
    that web config, listening, with one poll done; stopped at teardown."""
    made: list[Exporter] = []

    def make(web_path: str, checkpw: Callable[[bytes, bytes], bool] = bcrypt.checkpw) -> Exporter:
        web = load_web_config(web_path, checkpw=checkpw)
        exporter = build(make_config(api.url, METRICS_ADDR="127.0.0.1"), web=web)
        exporter.server.start()
        exporter.poller.poll_once()
        made.append(exporter)
        return exporter

    yield make
    for exporter in made:
        exporter.stop(1.0)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Path:
    """A web config serving TLS with a certificate for a public name (it never matches loopback)."""
    directory = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("exporter.example.com")
    cert.private_key_pem.write_to_path(str(directory / "server.key"))
    cert.cert_chain_pems[0].write_to_path(str(directory / "server.crt"))
    config = directory / "web.yml"
    tls = {"cert_file": str(directory / "server.crt"), "key_file": str(directory / "server.key")}
    config.write_text(yaml.safe_dump({"tls_server_config": tls}))
    return config


@pytest.fixture
def loki() -> Iterator[LokiReceiver]:
    receiver = LokiReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()
