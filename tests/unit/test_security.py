"""Access control the Prometheus way (web config: TLS, basic auth) and a server that holds under load."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import ssl
import threading

import bcrypt
import pytest
import requests

from gatewayz_exporter.app import main
from gatewayz_exporter.webconfig import WebConfigError, load_web_config
from support.api import TEST_KEY
from support.wire import HASH, PASSWORD, basic_header, tls_config, write_config

# --- the web config file --------------------------------------------------------


@pytest.mark.parametrize(
    "document,problem",
    [
        ("tls_server_config: [unclosed", "not valid YAML"),
        ("- a\n- b\n", "must be a YAML mapping"),
        ({"tls_config": {}}, "unknown keys tls_config"),
        (
            {"tls_server_config": {"cert_file": "missing.crt", "key_file": "missing.key"}},
            "no such file 'missing.crt'",
        ),
        ({"tls_server_config": {"cert_file": "server.crt"}}, "needs cert_file and key_file"),
        (
            {
                "tls_server_config": {
                    "cert_file": "server.crt",
                    "key_file": "server.key",
                    "min_version": "TLS10",
                }
            },
            "min_version must be TLS12 or TLS13",
        ),
        (
            {
                "tls_server_config": {
                    "cert_file": "server.crt",
                    "key_file": "server.key",
                    "client_auth_type": "RequireAndVerifyClientCert",
                }
            },
            "needs client_ca_file",
        ),
        ({"tls_server_config": {"cert_file": "server.key", "key_file": "server.crt"}}, "cannot be loaded"),
        ({"basic_auth_users": {"prometheus": "plain-text-password"}}, "must be a bcrypt hash"),
        # bcrypt's alphabet everywhere, but a salt bcrypt cannot decode: every check would fail.
        ({"basic_auth_users": {"prometheus": HASH[:28] + "z" + HASH[29:]}}, "must be a bcrypt hash"),
        ({"basic_auth_users": ["prometheus"]}, "must map user names"),
        (
            {
                "tls_server_config": {
                    "cert_file": "server.crt",
                    "key_file": "server.key",
                    "client_allowed_sans": ["prometheus"],
                }
            },
            "client_allowed_sans is not supported",
        ),
        ({"http_server_config": {"headers": {"X-Frame-Options": "deny"}}}, "headers is not supported"),
        (
            {
                "tls_server_config": {
                    "cert_file": "server.crt",
                    "key_file": "server.key",
                    "min_version": "TLS13",
                    "max_version": "TLS12",
                }
            },
            "min_version TLS13 is above max_version TLS12",
        ),
        ({"basic_auth_users": {"prometheus": "$2b$12$" + "!" * 53}}, "must be a bcrypt hash"),
        ({"basic_auth_users": {"prometheus": "$2b$99$" + "a" * 53}}, "must be a bcrypt hash"),
        (
            {"basic_auth_users": {"prometheus": "$2b$15$" + "a" * 21 + "e" + "a" * 31}},
            "bcrypt cost 15 is above 14",
        ),
        (
            {"basic_auth_users": {"prometheus": "$2y$31$" + "a" * 21 + "e" + "a" * 31}},
            "bcrypt cost 31 is above 14",
        ),
    ],
)
def test_a_bad_web_config_is_refused_with_the_problem_named(certs, document, problem):
    with pytest.raises(WebConfigError, match=problem):
        load_web_config(write_config(certs, document))


def test_a_missing_web_config_file_is_refused():
    with pytest.raises(WebConfigError, match="no such file"):
        load_web_config("/nonexistent/web.yml")


def in_a_thread(function, *args):
    """Run ``function`` in a daemon thread; its result, or the test fails if it has not returned in 10 s."""
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(function(*args)), daemon=True)
    thread.start()
    thread.join(10)
    assert results, f"{function.__name__} hung"
    return results[0]


@pytest.mark.parametrize("kind", ["/dev/zero", "a FIFO", "a directory", "a 300 KiB file"])
def test_a_web_config_that_is_not_a_small_regular_file_stops_start_up_at_once_with_exit_code_2(
    tmp_path, capsys, kind
):
    path = str(tmp_path / "web.yml")
    if kind == "/dev/zero":
        path = "/dev/zero"
    elif kind == "a FIFO":
        os.mkfifo(path)
    elif kind == "a directory":
        os.mkdir(path)
    else:
        with open(path, "w") as file:
            file.write("# padding\n" * 30_000)
    code = in_a_thread(main, ["--web.config.file", path], {"ADMIN_KEY": TEST_KEY})
    assert code == 2
    err = capsys.readouterr().err
    assert "WEB_CONFIG_FILE" in err and len(err.strip().splitlines()) == 1
    assert "regular file" in err or "larger than 256 KiB" in err or "cannot be read" in err


@pytest.mark.parametrize("replacement", ["a FIFO", "nothing", "a symlink to /dev/zero"])
def test_a_web_config_replaced_by_an_unreadable_file_keeps_serving_and_logs_one_error(
    tmp_path, served, caplog, replacement
):
    path = write_config(tmp_path, {"basic_auth_users": {"prometheus": HASH}})
    exporter = served(path)
    url = f"http://127.0.0.1:{exporter.server.port}/metrics"
    os.unlink(path)
    if replacement == "a FIFO":
        os.mkfifo(path)
    elif replacement == "a symlink to /dev/zero":
        os.symlink("/dev/zero", path)

    def scrapes() -> list[int]:
        return [
            code
            for _ in range(5)
            for code in (
                requests.get(url, headers=basic_header("prometheus", PASSWORD), timeout=5).status_code,
                requests.get(url, timeout=5).status_code,
            )
        ]

    with caplog.at_level("INFO"):
        assert in_a_thread(scrapes) == [200, 401] * 5
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.getMessage() for r in errors] == ["Web config not reloaded; keeping the last good one"]


def test_start_up_stops_with_exit_code_2_naming_the_web_config(tmp_path, capsys):
    path = write_config(tmp_path, {"basic_auth_users": {"u": "nope"}})
    assert main(["--web.config.file", path], env={"ADMIN_KEY": TEST_KEY}) == 2
    err = capsys.readouterr().err
    assert "WEB_CONFIG_FILE" in err and "bcrypt" in err and len(err.strip().splitlines()) == 1
    assert main([], env={"ADMIN_KEY": TEST_KEY, "WEB_CONFIG_FILE": "/nope.yml"}) == 2


def test_a_bcrypt_cost_above_14_stops_start_up_with_exit_code_2(tmp_path, capsys):
    path = write_config(tmp_path, {"basic_auth_users": {"prometheus": "$2b$16$" + "a" * 21 + "e" + "a" * 31}})
    assert main([], env={"ADMIN_KEY": TEST_KEY, "WEB_CONFIG_FILE": path}) == 2
    err = capsys.readouterr().err
    assert "bcrypt cost 16 is above 14" in err and len(err.strip().splitlines()) == 1


def test_tls_versions_in_the_wrong_order_stop_start_up_with_exit_code_2(certs, capsys):
    tls = {
        "cert_file": "server.crt",
        "key_file": "server.key",
        "min_version": "TLS13",
        "max_version": "TLS12",
    }
    path = write_config(certs, {"tls_server_config": tls})
    assert main(["--web.config.file", path], env={"ADMIN_KEY": TEST_KEY}) == 2
    assert "above max_version" in capsys.readouterr().err


# --- basic auth -------------------------------------------------------------------


def test_basic_auth_protects_metrics_and_landing_page_but_not_health(tmp_path, served):
    exporter = served(write_config(tmp_path, {"basic_auth_users": {"prometheus": HASH}}))
    base = f"http://127.0.0.1:{exporter.server.port}"
    for path in ("/metrics", "/"):
        response = requests.get(base + path, timeout=5)
        assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Basic ")
        assert "gatewayz_" not in response.text
        assert (
            requests.get(base + path, headers=basic_header("prometheus", "wrong"), timeout=5).status_code
            == 401
        )
        assert (
            requests.get(base + path, headers=basic_header("intruder", PASSWORD), timeout=5).status_code
            == 401
        )
        assert requests.get(base + path, headers={"Authorization": "Basic !!!"}, timeout=5).status_code == 401
        assert requests.get(base + path, headers={"Authorization": "Bearer x"}, timeout=5).status_code == 401
    response = requests.get(base + "/metrics", headers=basic_header("prometheus", PASSWORD), timeout=5)
    assert response.status_code == 200 and "gatewayz_providers_total 4.0" in response.text
    assert requests.get(base + "/healthz", timeout=5).status_code == 200
    assert requests.get(base + "/readyz", timeout=5).status_code == 200


class CountingChecker:
    """bcrypt.checkpw that counts its calls and remembers the hashes it was given."""

    def __init__(self):
        self.calls: list[tuple[bytes, bytes]] = []

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.calls.append((password, hashed))
        return bcrypt.checkpw(password, hashed)


def test_verified_credentials_are_cached_by_digest_and_a_repeated_failure_costs_no_bcrypt(tmp_path):
    checker = CountingChecker()
    web = load_web_config(write_config(tmp_path, {"basic_auth_users": {"prometheus": HASH}}), checkpw=checker)
    good, bad = (
        basic_header("prometheus", PASSWORD)["Authorization"],
        basic_header("prometheus", "nope")["Authorization"],
    )
    assert web.authenticate(good)
    assert len(checker.calls) == 1
    for _ in range(3):
        assert web.authenticate(good)
    assert len(checker.calls) == 1  # answered from the cache: no bcrypt
    assert not web.authenticate(bad) and not web.authenticate(bad)
    assert len(checker.calls) == 2  # the same wrong pair is refused from its own cache
    assert not web.authenticate(basic_header("prometheus", "another")["Authorization"])
    assert len(checker.calls) == 3  # a new wrong password pays bcrypt
    assert web.verifier is not None and PASSWORD.encode() not in repr(vars(web.verifier)).encode()


def test_failures_never_push_a_verified_pair_out_of_the_cache():
    from gatewayz_exporter.credentials import CredentialVerifier, parse_basic

    calls = []

    def checker(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return password == PASSWORD.encode()

    verifier = CredentialVerifier({"prometheus": HASH.encode()}, checkpw=checker)
    assert verifier.authenticate(basic_header("prometheus", PASSWORD)["Authorization"])
    for i in range(10_000):
        assert not verifier.authenticate(basic_header("prometheus", f"guess {i}")["Authorization"])
    assert verifier.lookup(parse_basic(basic_header("prometheus", PASSWORD)["Authorization"])) is True
    assert len(calls) == 10_001


def test_a_scraper_with_verified_credentials_does_not_run_bcrypt_again(tmp_path, served):
    checker = CountingChecker()
    exporter = served(write_config(tmp_path, {"basic_auth_users": {"prometheus": HASH}}), checkpw=checker)
    url = f"http://127.0.0.1:{exporter.server.port}/metrics"
    for _ in range(3):
        assert requests.get(url, headers=basic_header("prometheus", PASSWORD), timeout=5).status_code == 200
    assert len(checker.calls) == 1


def test_an_unknown_user_costs_one_bcrypt_run_against_a_hash_as_costly_as_a_known_one(tmp_path):
    cost5 = bcrypt.hashpw(b"other password", bcrypt.gensalt(rounds=5)).decode()
    checker = CountingChecker()
    web = load_web_config(
        write_config(tmp_path, {"basic_auth_users": {"prometheus": cost5, "cheap": HASH}}), checkpw=checker
    )
    assert not web.authenticate(basic_header("intruder", "other password")["Authorization"])
    assert not web.authenticate(basic_header("prometheus", "wrong")["Authorization"])
    (_, unknown_hash), (_, known_hash) = checker.calls
    assert unknown_hash[:7] == known_hash[:7] == b"$2b$05$"  # same algorithm, same cost


LONG = "pässwörd-" * 12  # 132 bytes in UTF-8


@pytest.mark.parametrize(
    "sent,status",
    [
        (LONG, 200),
        (LONG.encode()[:72], 200),  # the bytes bcrypt reads
        (LONG + "anything after byte 72", 200),  # as Go's bcrypt and htpasswd: the first 72 bytes count
        ("x" + LONG[1:], 401),
        (LONG.encode()[:71], 401),
        ("a" * 1000, 401),
        ("a" * 12000, 401),
        ("", 401),
    ],
    ids=[
        "long",
        "first 72 bytes",
        "longer",
        "first byte wrong",
        "71 bytes",
        "1,000 bytes",
        "12,000 bytes",
        "empty",
    ],
)
def test_passwords_of_any_length_get_401_when_wrong_and_200_when_right(
    tmp_path, served, caplog, sent, status
):
    hashed = bcrypt.hashpw(LONG.encode()[:72], bcrypt.gensalt(rounds=4)).decode()  # as htpasswd -B makes it
    exporter = served(write_config(tmp_path, {"basic_auth_users": {"prometheus": hashed}}))
    password = sent.encode() if isinstance(sent, str) else sent
    header = "Basic " + base64.b64encode(b"prometheus:" + password).decode()
    with caplog.at_level("WARNING"):
        response = requests.get(
            f"http://127.0.0.1:{exporter.server.port}/metrics", headers={"Authorization": header}, timeout=5
        )
    assert response.status_code == status
    assert caplog.records == []


# --- the bcrypt gate: its own pool, bounded, throttled per address ---------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gate_and_verifier(checkpw, **limits):
    from gatewayz_exporter.auth import AuthGate
    from gatewayz_exporter.credentials import CredentialVerifier

    clock = Clock()
    gate = AuthGate(monotonic=clock, **limits)
    return gate, CredentialVerifier({"prometheus": HASH.encode()}, checkpw=checkpw), clock


def header(password: str) -> bytes:
    return basic_header("prometheus", password)["Authorization"].encode()


def test_failed_attempts_are_throttled_per_address_and_the_budget_refills():
    from gatewayz_exporter.auth import Verdict

    checker = CountingChecker()
    gate, verifier, clock = gate_and_verifier(checker, burst=3, refill_per_second=0.5)
    try:
        guesses = (f"guess {i}" for i in range(100))
        check = lambda password, address: asyncio.run(gate.check(verifier, header(password), address))
        assert [check(next(guesses), "10.0.0.1") for _ in range(4)] == [Verdict.DENIED] * 3 + [
            Verdict.THROTTLED
        ]
        assert len(checker.calls) == 3  # a throttled attempt runs no bcrypt
        assert check(next(guesses), "10.0.0.2") is Verdict.DENIED  # another address has its own budget
        assert check(PASSWORD, "10.0.0.1") is Verdict.THROTTLED  # until the budget refills
        assert gate.retry_after("10.0.0.1") == 2
        clock.now += 2.0
        assert check(PASSWORD, "10.0.0.1") is Verdict.ALLOWED  # a success costs no budget
        assert check(next(guesses), "10.0.0.1") is Verdict.DENIED
        assert check(next(guesses), "10.0.0.1") is Verdict.THROTTLED
        assert check(PASSWORD, "10.0.0.1") is Verdict.ALLOWED  # verified before: the cache, no bcrypt
        assert check(next(guesses), "10.0.0.1") is Verdict.THROTTLED
        assert check("guess 0", "10.0.0.1") is Verdict.DENIED  # failed before: 401 from the cache
    finally:
        gate.close()


def test_a_repeated_wrong_password_spends_no_budget_so_the_right_one_still_gets_through():
    from gatewayz_exporter.auth import Verdict

    checker = CountingChecker()
    gate, verifier, _ = gate_and_verifier(checker, burst=2)
    try:
        for _ in range(50):  # the same wrong password, as a misconfigured scraper or a dumb flood sends it
            assert asyncio.run(gate.check(verifier, header("wrong"), "10.0.0.1")) is Verdict.DENIED
        assert asyncio.run(gate.check(verifier, header(PASSWORD), "10.0.0.1")) is Verdict.ALLOWED
        assert len(checker.calls) == 2
    finally:
        gate.close()


def test_a_missing_or_malformed_header_is_denied_without_bcrypt_or_budget():
    from gatewayz_exporter.auth import Verdict

    checker = CountingChecker()
    gate, verifier, _ = gate_and_verifier(checker, burst=1)
    try:
        for value in (
            None,
            b"",
            b"Basic",
            b"Basic !!!",
            b"Bearer x",
            b"Basic " + base64.b64encode(b"nocolon"),
        ):
            assert asyncio.run(gate.check(verifier, value, "10.0.0.1")) is Verdict.DENIED
        assert checker.calls == []
        assert (
            asyncio.run(gate.check(verifier, header("guess"), "10.0.0.1")) is Verdict.DENIED
        )  # budget intact
    finally:
        gate.close()


@pytest.mark.parametrize(
    "first,second,shared",
    [
        ("2001:db8::1", "2001:db8::ffff:2", True),  # one /64
        ("2001:db8::1", "2001:db8:0:1::1", False),
        ("::ffff:127.0.0.1", "127.0.0.1", True),  # IPv4 on a dual-stack socket
        ("127.0.0.1", "127.0.0.2", False),
        ("64:ff9b::192.0.2.1", "64:ff9b::192.0.2.2", False),  # NAT64: IPv4 hosts behind one gateway
        ("64:ff9b::c000:201", "192.0.2.1", True),
    ],
)
def test_ipv6_clients_are_throttled_per_64_and_nat64_clients_per_ipv4(first, second, shared):
    from gatewayz_exporter.addresses import client_key

    assert (client_key(first) == client_key(second)) is shared


def test_bcrypt_checks_in_flight_are_bounded_and_the_rest_answered_at_once():
    from gatewayz_exporter.auth import Verdict

    release = threading.Event()

    def slow(password: bytes, hashed: bytes) -> bool:
        release.wait(10)
        return False

    gate, verifier, _ = gate_and_verifier(slow, workers=2, max_pending=4, reserved=0)

    async def flood():
        checks = [
            asyncio.ensure_future(gate.check(verifier, header("guess"), f"10.0.0.{i}")) for i in range(10)
        ]
        await asyncio.sleep(0.05)
        answered = [c.result() for c in checks if c.done()]
        release.set()
        return answered, await asyncio.gather(*checks)

    try:
        answered_at_once, verdicts = asyncio.run(flood())
    finally:
        gate.close()
    assert answered_at_once == [Verdict.THROTTLED] * 6  # no queue behind the 4 in flight
    assert sorted(v.value for v in verdicts) == ["denied"] * 4 + ["throttled"] * 6


def right_at_once_wrong_when_released(release: threading.Event):
    """A bcrypt stand-in: the right password passes at once, a wrong one fails once ``release`` is set."""

    def check(password: bytes, hashed: bytes) -> bool:
        if password == PASSWORD.encode():
            return True
        release.wait(10)
        return False

    return check


def test_a_flood_from_many_addresses_leaves_a_lane_for_an_address_with_no_failures():
    """A scraper whose credentials are not verified yet (after a restart or a password change)
    must get through while wrong passwords from many addresses keep the shared checks full."""
    from gatewayz_exporter.auth import Verdict

    release = threading.Event()
    slow_unless_right = right_at_once_wrong_when_released(release)

    gate, verifier, _ = gate_and_verifier(slow_unless_right, workers=2, max_pending=4, reserved=1)

    async def flood():
        # Each flooding address has failed before: it gets no place in the reserved lane.
        for i in range(10):
            release.set()
            assert await gate.check(verifier, header(f"first {i}"), f"10.0.1.{i}") is Verdict.DENIED
        release.clear()
        guesses = [
            asyncio.ensure_future(gate.check(verifier, header(f"guess {i}"), f"10.0.1.{i}"))
            for i in range(10)
        ]
        await asyncio.sleep(0.05)
        throttled = [c.result() for c in guesses if c.done()]
        scraper = await asyncio.wait_for(gate.check(verifier, header(PASSWORD), "10.0.2.1"), 5)
        release.set()
        await asyncio.gather(*guesses)
        return throttled, scraper

    try:
        throttled, scraper = asyncio.run(flood())
    finally:
        gate.close()
    assert throttled == [Verdict.THROTTLED] * 6  # the shared checks are full (4 in flight)
    assert scraper is Verdict.ALLOWED


def test_address_churn_within_one_network_cannot_win_back_the_lane_for_addresses_with_no_failures():
    """An attacker with a /48 (65,536 /64s) fails once from each of many /64s; however many it
    goes through, its next fresh /64 is not taken for a first login, so the lane stays free."""
    from gatewayz_exporter.auth import Verdict

    release = threading.Event()
    slow_unless_right = right_at_once_wrong_when_released(release)

    gate, verifier, _ = gate_and_verifier(
        slow_unless_right, workers=1, max_pending=1, reserved=1, max_addresses=64
    )

    async def churn():
        release.set()
        for i in range(300):  # more /64s than the table holds
            address = f"2001:db8:7:{i:x}::1"
            assert await gate.check(verifier, header(f"first {i}"), address) is Verdict.DENIED
        release.clear()
        fresh = [
            asyncio.ensure_future(gate.check(verifier, header(f"fresh {i}"), f"2001:db8:7:{0x1000 + i:x}::1"))
            for i in range(3)
        ]
        await asyncio.sleep(0.05)
        scraper = await asyncio.wait_for(gate.check(verifier, header(PASSWORD), "2001:db8:9::1"), 5)
        release.set()
        await asyncio.gather(*fresh)
        return scraper

    try:
        assert asyncio.run(churn()) is Verdict.ALLOWED
    finally:
        gate.close()


def test_the_table_of_addresses_stays_bounded():
    from gatewayz_exporter.auth import Verdict

    gate, verifier, _ = gate_and_verifier(lambda p, h: False, max_addresses=16)
    try:
        for i in range(200):
            assert (
                asyncio.run(gate.check(verifier, header(f"guess {i}"), f"10.0.{i // 250}.{i % 250}"))
                is Verdict.DENIED
            )
        assert gate.tracked_addresses <= 16
    finally:
        gate.close()


# --- the web config is re-read when it changes ---------------------------------------------


def test_a_changed_password_applies_to_the_next_request_without_a_restart(tmp_path, served, caplog):
    path = write_config(tmp_path, {"basic_auth_users": {"prometheus": HASH}})
    exporter = served(path)
    url = f"http://127.0.0.1:{exporter.server.port}/metrics"
    assert requests.get(url, headers=basic_header("prometheus", PASSWORD), timeout=5).status_code == 200
    new_hash = bcrypt.hashpw(b"rotated", bcrypt.gensalt(rounds=4)).decode()
    write_config(tmp_path, {"basic_auth_users": {"prometheus": new_hash}})
    with caplog.at_level("INFO"):
        assert requests.get(url, headers=basic_header("prometheus", "rotated"), timeout=5).status_code == 200
    assert (
        requests.get(url, headers=basic_header("prometheus", PASSWORD), timeout=5).status_code == 401
    )  # cache dropped
    assert [r.getMessage() for r in caplog.records if r.name == "gatewayz_exporter.webconfig"] == [
        "Web config reloaded"
    ]


def test_a_reload_keeps_verified_credentials_of_users_whose_hash_is_unchanged(tmp_path, served, caplog):
    """Else every edit (a rotated certificate, a user added) sends every scraper back to bcrypt,
    where a flood of wrong passwords from many addresses answers it 429."""
    path = write_config(tmp_path, {"basic_auth_users": {"prometheus": HASH}})
    exporter = served(path)
    url = f"http://127.0.0.1:{exporter.server.port}/metrics"
    gate = exporter.server.auth_gate
    assert requests.get(url, headers=basic_header("prometheus", PASSWORD), timeout=5).status_code == 200
    assert gate.bcrypt_runs == 1
    other = bcrypt.hashpw(b"other", bcrypt.gensalt(rounds=4)).decode()
    write_config(tmp_path, {"basic_auth_users": {"prometheus": HASH, "other": other}})
    with caplog.at_level("INFO"):
        assert requests.get(url, headers=basic_header("prometheus", PASSWORD), timeout=5).status_code == 200
    assert "Web config reloaded" in [r.getMessage() for r in caplog.records]
    assert gate.bcrypt_runs == 1  # no bcrypt again
    assert requests.get(url, headers=basic_header("other", "other"), timeout=5).status_code == 200
    assert gate.bcrypt_runs == 2


def peer_certificate(port: int, cafile: str) -> bytes:
    context = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            return tls.getpeercert(binary_form=True)


def test_a_rotated_certificate_is_presented_on_the_next_connection(certs, served, ca):
    exporter = served(tls_config(certs))
    port, cafile = exporter.server.port, str(certs / "ca.crt")
    before = peer_certificate(port, cafile)
    rotated = ca.issue_cert("127.0.0.1", "localhost", "rotated.example")
    rotated.cert_chain_pems[0].write_to_path(certs / "server.crt")
    rotated.private_key_pem.write_to_path(certs / "server.key")
    after = peer_certificate(port, cafile)
    assert after != before
    assert after == ssl.PEM_cert_to_DER_cert(rotated.cert_chain_pems[0].bytes().decode())


@pytest.mark.parametrize(
    "edit,problem",
    [
        ("basic_auth_users: [unclosed", "not valid YAML"),
        ("", "the file is empty"),  # mid-rewrite: it must not open /metrics to everyone
        ("basic_auth_users:\n  prometheus: not-a-hash\n", "must be a bcrypt hash"),
        (
            "basic_auth_users:\n  prometheus: $2b$15$" + "a" * 21 + "e" + "a" * 31 + "\n",
            "bcrypt cost 15 is above 14",
        ),
        ("basic_auth_users:\n  prometheus: $2b$12$" + "z" * 53 + "\n", "must be a bcrypt hash"),
        # Half-written or meant, an edit that leaves no users must not open /metrics to everyone.
        ("basic_auth_users:\n", "restart to turn authentication off"),
        ("basic_auth_users: null\ntls_server_config: null\n", "restart to turn authentication off"),
        ("basic_auth_users: {}\n", "restart to turn authentication off"),
    ],
)
def test_a_broken_edit_keeps_the_last_good_config_and_logs_one_error(tmp_path, served, caplog, edit, problem):
    path = write_config(tmp_path, {"basic_auth_users": {"prometheus": HASH}})
    exporter = served(path)
    url = f"http://127.0.0.1:{exporter.server.port}/metrics"
    write_config(tmp_path, edit)
    with caplog.at_level("INFO"):
        for _ in range(5):
            assert (
                requests.get(url, headers=basic_header("prometheus", PASSWORD), timeout=5).status_code == 200
            )
            assert requests.get(url, timeout=5).status_code == 401
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].getMessage() == "Web config not reloaded; keeping the last good one"
    assert problem in errors[0].error
    new_hash = bcrypt.hashpw(b"fixed", bcrypt.gensalt(rounds=4)).decode()
    write_config(tmp_path, {"basic_auth_users": {"prometheus": new_hash}})  # a good edit applies again
    assert requests.get(url, headers=basic_header("prometheus", "fixed"), timeout=5).status_code == 200


def test_an_edit_that_removes_tls_is_refused_while_running(certs, served, caplog):
    exporter = served(tls_config(certs))
    write_config(certs, {"basic_auth_users": {"prometheus": HASH}})
    url = f"https://127.0.0.1:{exporter.server.port}/metrics"
    with caplog.at_level("ERROR"):
        response = requests.get(
            url, verify=str(certs / "ca.crt"), headers=basic_header("prometheus", PASSWORD), timeout=5
        )
    assert response.status_code == 200
    assert [r.getMessage() for r in caplog.records] == ["Web config not reloaded; keeping the last good one"]


# --- TLS -------------------------------------------------------------------------


def test_tls_serves_metrics_and_plain_http_gets_none(certs, served):
    exporter = served(tls_config(certs))
    port = exporter.server.port
    response = requests.get(
        f"https://127.0.0.1:{port}/metrics",
        verify=str(certs / "ca.crt"),
        headers=basic_header("prometheus", PASSWORD),
        timeout=5,
    )
    assert response.status_code == 200 and "gatewayz_providers_total" in response.text
    with pytest.raises(requests.ConnectionError):
        requests.get(
            f"http://127.0.0.1:{port}/metrics", headers=basic_header("prometheus", PASSWORD), timeout=5
        )


def test_client_certificates_are_required_when_configured(certs, served):
    exporter = served(
        tls_config(certs, client_ca_file="ca.crt", client_auth_type="RequireAndVerifyClientCert")
    )
    url = f"https://127.0.0.1:{exporter.server.port}/metrics"
    with pytest.raises(requests.RequestException):  # handshake refused without a client certificate
        requests.get(
            url, verify=str(certs / "ca.crt"), headers=basic_header("prometheus", PASSWORD), timeout=5
        )
    response = requests.get(
        url,
        verify=str(certs / "ca.crt"),
        cert=(str(certs / "client.crt"), str(certs / "client.key")),
        headers=basic_header("prometheus", PASSWORD),
        timeout=5,
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "weaker",
    [
        {"client_ca_file": "ca.crt", "client_auth_type": "NoClientCert"},
        {"client_ca_file": "ca.crt", "client_auth_type": "VerifyClientCertIfGiven"},
        {},  # client_ca_file and client_auth_type both gone
    ],
)
def test_an_edit_that_stops_requiring_client_certificates_is_refused_while_running(
    certs, served, caplog, weaker
):
    exporter = served(
        tls_config(certs, client_ca_file="ca.crt", client_auth_type="RequireAndVerifyClientCert")
    )
    tls_config(certs, **weaker)
    url = f"https://127.0.0.1:{exporter.server.port}/metrics"
    with caplog.at_level("ERROR"):
        for _ in range(3):
            with pytest.raises(requests.RequestException):  # still no handshake without a certificate
                requests.get(
                    url, verify=str(certs / "ca.crt"), headers=basic_header("prometheus", PASSWORD), timeout=5
                )
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.getMessage() for r in errors] == ["Web config not reloaded; keeping the last good one"]
    assert "client certificates" in errors[0].error


def test_an_edit_that_lowers_the_minimum_tls_version_is_refused_while_running(certs, served, caplog):
    exporter = served(tls_config(certs, min_version="TLS13"))
    tls_config(certs, min_version="TLS12")
    context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with caplog.at_level("ERROR"):
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", exporter.server.port), timeout=5) as sock:
                with pytest.raises(ssl.SSLError):
                    context.wrap_socket(sock, server_hostname="127.0.0.1")
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.getMessage() for r in errors] == ["Web config not reloaded; keeping the last good one"]
    assert "min_version cannot be lowered" in errors[0].error


def test_minimum_tls_version_is_enforced(certs, served):
    exporter = served(tls_config(certs, min_version="TLS13"))
    context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", exporter.server.port), timeout=5) as sock:
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(sock, server_hostname="127.0.0.1")
