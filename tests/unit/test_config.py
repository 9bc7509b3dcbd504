"""Configuration: defaults, every problem reported at once, exit code 2, no secret in messages."""

import pytest

from gatewayz_exporter.app import main
from gatewayz_exporter.config import Config, ConfigError
from support.api import TEST_KEY


def test_defaults_follow_the_documented_table():
    config = Config.from_env({"ADMIN_KEY": TEST_KEY})
    assert config.gateway_api_url == "https://api.gatewayz.ai"
    assert config.scrape_interval == 60.0
    assert config.metrics_port == 8001
    assert config.metrics_addr is None
    assert config.request_timeout == 10.0
    assert config.max_staleness == 300.0


def test_max_staleness_defaults_to_five_intervals_and_fractions_are_allowed():
    config = Config.from_env({"ADMIN_KEY": TEST_KEY, "SCRAPE_INTERVAL": "0.5"})
    assert config.scrape_interval == 0.5
    assert config.max_staleness == 2.5


def test_admin_key_is_required_without_demo_and_optional_with_it():
    with pytest.raises(ConfigError, match="ADMIN_KEY"):
        Config.from_env({})
    assert Config.from_env({}, demo=True).admin_key is None


def test_every_bad_variable_is_named_in_one_error():
    with pytest.raises(ConfigError) as caught:
        Config.from_env(
            {
                "GATEWAY_API_URL": "ftp://x",
                "SCRAPE_INTERVAL": "-1",
                "METRICS_PORT": "70000",
                "REQUEST_TIMEOUT": "nan",
                "MAX_STALENESS": "abc",
            }
        )
    message = str(caught.value)
    for name in (
        "GATEWAY_API_URL",
        "SCRAPE_INTERVAL",
        "METRICS_PORT",
        "REQUEST_TIMEOUT",
        "MAX_STALENESS",
        "ADMIN_KEY",
    ):
        assert name in message
    assert len(caught.value.problems) == 6


@pytest.mark.parametrize("value", ["0", "inf", "", "  ", "1e400", "ten"])
def test_scrape_interval_must_be_a_positive_finite_number(value):
    env = {"ADMIN_KEY": TEST_KEY, "SCRAPE_INTERVAL": value}
    if value.strip() == "":  # empty means unset: the default applies
        assert Config.from_env(env).scrape_interval == 60.0
        return
    with pytest.raises(ConfigError, match="SCRAPE_INTERVAL"):
        Config.from_env(env)


def test_max_staleness_shorter_than_the_interval_is_rejected():
    with pytest.raises(ConfigError, match="MAX_STALENESS"):
        Config.from_env({"ADMIN_KEY": TEST_KEY, "SCRAPE_INTERVAL": "60", "MAX_STALENESS": "30"})


def test_railway_port_is_used_only_when_metrics_port_is_unset():
    assert Config.from_env({"ADMIN_KEY": TEST_KEY, "PORT": "9100"}).metrics_port == 9100
    assert (
        Config.from_env({"ADMIN_KEY": TEST_KEY, "PORT": "9100", "METRICS_PORT": "8001"}).metrics_port == 8001
    )


def test_admin_key_never_appears_in_errors_or_repr():
    secret = "gw_live_secret value"
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"ADMIN_KEY": secret})
    assert "gw_live" not in str(caught.value)
    config = Config.from_env({"ADMIN_KEY": "gw_live_secret"})
    assert "gw_live_secret" not in repr(config)


def test_no_secret_appears_in_the_configs_repr_or_str_and_every_other_field_does():
    config = Config.from_env(
        {
            "ADMIN_KEY": "gw_live_secret",
            "LOKI_URL": "https://loki.example",
            "LOKI_USERNAME": "u",
            "LOKI_PASSWORD": "pw-secret",
        }
    )
    for shown in (repr(config), str(config), f"{config}"):
        assert "gw_live_secret" not in shown and "pw-secret" not in shown
        assert "admin_key" not in shown and "loki_password" not in shown
        assert "loki_username='u'" in shown and "loki_url='https://loki.example'" in shown


def test_url_with_credentials_is_rejected_without_echoing_them():
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"ADMIN_KEY": TEST_KEY, "GATEWAY_API_URL": "https://user:pw@api.example"})
    assert "GATEWAY_API_URL" in str(caught.value)


def test_main_exits_2_with_one_message_naming_the_variable(capsys):
    assert main([], env={"ADMIN_KEY": TEST_KEY, "SCRAPE_INTERVAL": "soon"}) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "SCRAPE_INTERVAL" in lines[0]


@pytest.mark.parametrize(
    "address,ok",
    [
        ("::", True),
        ("0.0.0.0", True),
        ("[::1]", True),
        ("127.0.0.1", True),
        ("exporter.internal", True),
        ("not an address", False),
        ("http://x", False),
    ],
)
def test_metrics_addr_must_be_an_address_or_host_name(address, ok):
    env = {"ADMIN_KEY": TEST_KEY, "METRICS_ADDR": address}
    if ok:
        assert Config.from_env(env).metrics_addr == address
    else:
        with pytest.raises(ConfigError, match="METRICS_ADDR"):
            Config.from_env(env)


def test_loki_header_values_cannot_smuggle_headers():
    with pytest.raises(ConfigError, match="LOKI_TENANT_ID"):
        Config.from_env(
            {"ADMIN_KEY": TEST_KEY, "LOKI_URL": "http://loki:3100", "LOKI_TENANT_ID": "a\r\nX-Evil: 1"}
        )


@pytest.mark.parametrize(
    "name,raw",
    [
        ("METRICS_PORT", "\u00b2"),
        ("METRICS_PORT", "\u0668\u0660\u0660\u0661"),  # Arabic-Indic 8001: int() would take it
        ("PORT", "\uff18\uff10\uff10\uff11"),  # fullwidth 8001
        ("METRICS_PORT", "9" * 5000),  # too long for int(): must still be a clean error
        ("SCRAPE_INTERVAL", "\u0661\u0662"),  # float() would take it
        ("SCRAPE_INTERVAL", "1_0"),  # float() would take it
        ("REQUEST_TIMEOUT", "nan"),
        ("REQUEST_TIMEOUT", "1e3"),
        ("MAX_STALENESS", "\u00bd"),
        ("MAX_RESPONSE_BYTES", "\u00b2\u00b2\u00b2\u00b2"),
        ("MAX_RESPONSE_BYTES", "9" * 5000),
    ],
)
def test_numbers_are_ascii_only_and_a_bad_one_is_exit_2_naming_it(capsys, name, raw):
    assert main([], env={"ADMIN_KEY": TEST_KEY, name: raw}) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert name in line and "Traceback" not in line
    assert len(line) < 400  # a 5000-digit value is not echoed whole
    assert captured.out == ""


@pytest.mark.parametrize(
    "key",
    [
        "gw_live_\u200bsecret",  # a pasted zero-width space
        "gw_live_s\u00e9cret",  # Latin-1, but not ASCII
        "gw_live_secret\u2028x",
        "gw live secret",
        "gw_live_\x7fsecret",
    ],
)
def test_an_admin_key_that_cannot_go_into_a_header_is_exit_2_without_echoing_it(capsys, key):
    assert main([], env={"ADMIN_KEY": key}) == 2
    err = capsys.readouterr().err
    assert "ADMIN_KEY" in err and "gw_live" not in err and "secret" not in err


def test_an_api_url_with_an_impossible_port_is_rejected_at_start():
    for url in ("https://api.example:99999", "http://[::1", "http://api.exa mple"):
        with pytest.raises(ConfigError, match="GATEWAY_API_URL"):
            Config.from_env({"ADMIN_KEY": TEST_KEY, "GATEWAY_API_URL": url})
    with pytest.raises(ConfigError, match="LOKI_URL"):
        Config.from_env({"ADMIN_KEY": TEST_KEY, "LOKI_URL": "http://loki:0x10"})


def test_ascii_numbers_still_work():
    config = Config.from_env(
        {
            "ADMIN_KEY": TEST_KEY,
            "METRICS_PORT": " 9100 ",
            "SCRAPE_INTERVAL": "0.5",
            "REQUEST_TIMEOUT": "2.",
            "MAX_STALENESS": ".5",
            "MAX_RESPONSE_BYTES": "1024",
        }
    )
    assert (config.metrics_port, config.scrape_interval, config.request_timeout) == (9100, 0.5, 2.0)
    assert (config.max_staleness, config.max_response_bytes) == (0.5, 1024)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.gatewayz.ai/?api_key=s3cr3t-value",
        "https://api.gatewayz.ai#s3cr3t-value",
        "ftp://user:s3cr3t-value@api.gatewayz.ai/",
        "https://user:s3cr3t-value@api.gatewayz.ai:99999/",
        "gopher://api.gatewayz.ai/?token=s3cr3t-value",
    ],
)
def test_an_api_url_with_a_secret_in_it_is_refused_without_echoing_the_secret(url):
    with pytest.raises(ConfigError) as error:
        Config.from_env({"ADMIN_KEY": TEST_KEY, "GATEWAY_API_URL": url})
    assert "GATEWAY_API_URL" in str(error.value)
    assert "s3cr3t" not in str(error.value)
