"""The container's health probe against a real running exporter, in every way it can listen."""

import os
import subprocess
import sys

import pytest
import trustme
import yaml
from conftest import ROOT, TEST_KEY, eventually, free_port

from gatewayz_exporter import healthcheck

SCRIPT = str(ROOT / "provider_metrics_exporter.py")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("exporter.example.com")  # a public name: it never matches loopback
    cert.private_key_pem.write_to_path(str(directory / "server.key"))
    cert.cert_chain_pems[0].write_to_path(str(directory / "server.crt"))
    config = directory / "web.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {
                    "cert_file": str(directory / "server.crt"),
                    "key_file": str(directory / "server.key"),
                }
            }
        )
    )
    return config


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
    port = free_port()
    env = {"PATH": os.environ["PATH"], "METRICS_PORT": str(port)}
    if metrics_addr is not None:
        env["METRICS_ADDR"] = metrics_addr
    if tls == "env":
        env["WEB_CONFIG_FILE"] = str(tls_files)
    args = ["--web.config.file", str(tls_files)] if tls == "argument" else []
    probe_env = dict(env)
    assert healthcheck.main(probe_env, argv=[]) == 1  # nothing listens yet
    process = subprocess.Popen(
        [sys.executable, SCRIPT, *args],
        env={**env, "GATEWAY_API_URL": api.url, "ADMIN_KEY": TEST_KEY},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The probe reads the exporter's command line, as it reads PID 1's in the container.
        argv = healthcheck.exporter_argv(f"/proc/{process.pid}/cmdline")
        assert eventually(
            lambda: process.poll() is not None or healthcheck.main(probe_env, argv=argv) == 0, 20
        )
        assert process.poll() is None, process.communicate()
        assert healthcheck.main(probe_env, argv=argv) == 0
    finally:
        process.terminate()
        process.wait(10)


def test_the_probe_fails_when_nothing_serves_and_on_a_bad_port():
    port = free_port()
    assert healthcheck.main({"METRICS_PORT": str(port)}, argv=[]) == 1
    assert healthcheck.main({"METRICS_PORT": "\u00b2"}, argv=[]) == 1
    assert healthcheck.main({"METRICS_PORT": "70000"}, argv=[]) == 1


def test_tls_is_recognised_from_the_environment_and_from_the_command_line():
    assert healthcheck.tls_configured({"WEB_CONFIG_FILE": "/etc/web.yml"}, [])
    assert healthcheck.tls_configured({}, ["python", "x.py", "--web.config.file", "/etc/web.yml"])
    assert healthcheck.tls_configured({}, ["python", "x.py", "--web.config.file=/etc/web.yml"])
    assert not healthcheck.tls_configured({"WEB_CONFIG_FILE": " "}, ["python", "x.py", "--demo"])
    assert healthcheck.candidate_hosts("::") == ["::1", "127.0.0.1"]
    assert healthcheck.candidate_hosts("0.0.0.0") == ["127.0.0.1", "::1"]
    assert healthcheck.candidate_hosts("[fd00::5]") == ["fd00::5", "127.0.0.1", "::1"]


def test_a_web_config_with_basic_auth_only_is_probed_over_http_first(tmp_path, tls_files):
    # https first against a plain server waits out a whole attempt (1.5 s of the 5 s budget).
    auth_only = tmp_path / "auth.yml"
    auth_only.write_text(
        yaml.safe_dump({"basic_auth_users": {"prometheus": "$2b$04$" + "x" * 21 + "u" + "x" * 31}})
    )
    assert not healthcheck.tls_configured({"WEB_CONFIG_FILE": str(auth_only)}, [])
    assert not healthcheck.tls_configured({}, ["python", "x.py", "--web.config.file", str(auth_only)])
    assert not healthcheck.tls_configured({}, ["python", "x.py", f"--web.config.file={auth_only}"])
    # The command line wins over the environment, as in the exporter.
    assert healthcheck.tls_configured(
        {"WEB_CONFIG_FILE": str(auth_only)}, ["x.py", "--web.config.file", str(tls_files)]
    )
    assert healthcheck.tls_configured({"WEB_CONFIG_FILE": str(tls_files)}, [])
    assert healthcheck.tls_configured({"WEB_CONFIG_FILE": str(tmp_path / "unreadable.yml")}, [])


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

    port = free_port()
    env = {name: value.format(port=port) for name, value in env.items()}
    config = Config.from_env({**env, "GATEWAY_API_URL": api.url, "ADMIN_KEY": TEST_KEY})
    assert config.metrics_port == port
    process = subprocess.Popen(
        [sys.executable, SCRIPT],
        env={"PATH": os.environ["PATH"], **env, "GATEWAY_API_URL": api.url, "ADMIN_KEY": TEST_KEY},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert eventually(lambda: process.poll() is not None or healthcheck.main(env, argv=[]) == 0, 20)
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(10)
