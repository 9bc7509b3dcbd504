"""The container's health probe against a real running exporter, in every way it can listen."""

import yaml

from gatewayz_exporter import healthcheck
from support.waits import free_port


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
