"""The container's health probe against a real exporter process, in every way it can listen."""

import pytest

from gatewayz_exporter import healthcheck
from support.api import TEST_KEY
from support.process import ExporterProcess


@pytest.mark.parametrize(
    "metrics_addr,tls",
    [
        (None, None),
        ("::", None),
        ("0.0.0.0", None),
        ("127.0.0.1", None),
        ("::1", None),
        (None, "env"),
        ("::", "env"),
        (None, "argument"),
        ("0.0.0.0", "argument"),
        ("::1", "argument"),
    ],
)
def test_the_probe_passes_whenever_the_server_serves(api, tls_files, metrics_addr, tls):
    env = {"GATEWAY_API_URL": api.url, "ADMIN_KEY": TEST_KEY}
    if metrics_addr is not None:
        env["METRICS_ADDR"] = metrics_addr
    if tls == "env":
        env["WEB_CONFIG_FILE"] = str(tls_files)
    args = ["--web.config.file", str(tls_files)] if tls == "argument" else []
    exporter = ExporterProcess.start(env, args)
    probe_env = {name: env[name] for name in ("METRICS_ADDR", "WEB_CONFIG_FILE") if name in env}
    probe_env["METRICS_PORT"] = str(exporter.port)
    try:
        # The probe reads the exporter's command line, as it reads PID 1's in the container.
        argv = healthcheck.exporter_argv(f"/proc/{exporter.pid}/cmdline")
        assert healthcheck.main(probe_env, argv=argv) == 0
    finally:
        exporter.stop()
    assert healthcheck.main(probe_env, argv=[]) == 1  # nothing listens any more


@pytest.mark.parametrize(
    "env",
    [
        {"METRICS_PORT": "  ", "PORT": "{port}"},  # blank is unset, for the exporter and the probe alike
        {"PORT": " {port} "},
        {"METRICS_PORT": "{port}", "PORT": "1"},
    ],
)
def test_the_probe_asks_the_port_the_exporter_listens_on(api, env):
    from gatewayz_exporter.config import Config

    exporter = ExporterProcess.start({**env, "GATEWAY_API_URL": api.url, "ADMIN_KEY": TEST_KEY})
    try:
        env = {name: value.format(port=exporter.port) for name, value in env.items()}
        config = Config.from_env({**env, "GATEWAY_API_URL": api.url, "ADMIN_KEY": TEST_KEY})
        assert config.metrics_port == exporter.port
        assert healthcheck.main(env, argv=[]) == 0
    finally:
        exporter.stop()
