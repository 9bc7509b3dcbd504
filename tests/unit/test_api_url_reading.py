"""GATEWAY_API_URL: the host and port config accepts are the ones the client sends the key to."""

from urllib.parse import urlsplit

import pytest

from gatewayz_exporter import redirects
from gatewayz_exporter.config import Config, ConfigError

# urllib.parse (config's reading) and urllib3 (the client's) end the host at different places,
# or one decodes what the other keeps: each reads another host or port in these.
_READ_DIFFERENTLY = [
    "http://evil.example\\.api.example:8000",
    "https://evil.example\\\\api.example",
    "http://evil.example\\:8000",
    "http://evil.example%2Eapi.example",
    "http://api.example:0",
]


@pytest.mark.parametrize("url", _READ_DIFFERENTLY)
def test_an_api_url_the_parsers_read_as_different_hosts_is_refused_at_start(url):
    with pytest.raises(ConfigError) as refused:
        Config.from_env({"GATEWAY_API_URL": url, "ADMIN_KEY": "k"})
    assert "GATEWAY_API_URL" in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example:8000",
        "https://API.example/v1",
        "http://[::1]:8000",
        "http://[fe80::1%25eth0]:80",
        "http://api.example/pa%5Cth",
    ],
)
def test_every_accepted_api_url_names_the_host_and_port_the_client_connects_to(url):
    accepted = Config.from_env({"GATEWAY_API_URL": url, "ADMIN_KEY": "k"}).gateway_api_url
    origin = redirects.origin_of(accepted)
    parts = urlsplit(accepted)
    assert (origin.host, origin.port) == (
        (parts.hostname or "").replace("%25", "%"),
        parts.port or {"http": 80, "https": 443}[parts.scheme],
    )
