"""Start and stop as an operator sees them: the daemon as a process, real signals, hanging peers."""

import ctypes
import json
import os
import platform
import signal
import time

import pytest

from support.api import TEST_KEY, Reply
from support.process import ExporterProcess
from support.receivers import LokiReceiver, OtlpReceiver
from support.waits import eventually
from support.wire import keep_alive_scrape


def trickle_head(api):
    def reply(handler):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        handler.wfile.flush()
        for index in range(1000):
            if api.released.wait(0.2):
                return
            handler.wfile.write(b"X-Slow-%d: 1\r\n" % index)
            handler.wfile.flush()

    return Reply(raw=reply)


@pytest.mark.parametrize(
    "state,signum",
    [
        ("api_hangs", signal.SIGTERM),
        ("api_trickles_its_head", signal.SIGTERM),
        ("everything_hangs_and_scrapes_keep_alive", signal.SIGTERM),
        ("everything_hangs_and_scrapes_keep_alive", signal.SIGINT),
    ],
)
def test_a_signal_exits_0_within_3_seconds_whatever_hangs(api, state, signum):
    # REQUEST_TIMEOUT stays at its default of 10 s: longer than the exit may take.
    env = {"GATEWAY_API_URL": api.url, "ADMIN_KEY": TEST_KEY}
    receivers = []
    if state == "api_trickles_its_head":
        api.routes["/providers/"] = trickle_head(api)
        api.routes["/providers/stats"] = trickle_head(api)
    else:
        api.routes["/providers/"] = Reply(body=[], delay=60)
        api.routes["/providers/stats"] = Reply(body={}, delay=60)
    if state.startswith("everything"):
        loki, otlp = LokiReceiver(), OtlpReceiver()
        loki.hang = otlp.hang = True
        receivers = [loki, otlp]
        env.update(LOKI_URL=loki.url, OTEL_EXPORTER_OTLP_ENDPOINT=otlp.url)
    exporter = ExporterProcess.start(env)
    process = exporter.process
    sockets = []
    try:
        assert eventually(lambda: api.count("/providers/stats") >= 1)  # the poll is in flight
        if state.startswith("everything"):
            sockets = [keep_alive_scrape(exporter.port) for _ in range(3)]
            assert eventually(lambda: all(r.bodies or r.hang for r in receivers))
        started = time.monotonic()
        process.send_signal(signum)
        code = process.wait(10)
        elapsed = time.monotonic() - started
        print(f"{state}, {signal.Signals(signum).name}: exit {code} after {elapsed:.2f}s")
        assert code == 0
        assert elapsed < 3.0
    finally:
        for sock in sockets:
            sock.close()
        exporter.stop(signal.SIGKILL)
        out, err = exporter.stdout, exporter.stderr
        for receiver in receivers:
            receiver.close()
    messages = [json.loads(line)["message"] for line in out.splitlines()]
    assert "Stopping" in messages and messages[-1] == "Exporter stopped"
    assert err == ""
    assert TEST_KEY not in out


def test_start_up_names_the_url_to_open_and_warns_about_a_fast_interval(api):
    # TEST-NET-1: not loopback, and nothing answers there.
    exporter = ExporterProcess.start(
        {
            "METRICS_ADDR": "127.0.0.1",
            "GATEWAY_API_URL": "http://192.0.2.1",
            "ADMIN_KEY": TEST_KEY,
            "SCRAPE_INTERVAL": "0.25",
            "REQUEST_TIMEOUT": "0.2",
        }
    )
    exporter.stop()
    out, err = exporter.stdout, exporter.stderr
    lines = [json.loads(line) for line in out.splitlines()]
    (started,) = [line for line in lines if line["message"] == "Exporter started"]
    assert started["url"] == f"http://127.0.0.1:{exporter.port}/"
    (warning,) = [
        line for line in lines if line["level"] == "warning" and "SCRAPE_INTERVAL" in line["message"]
    ]
    assert warning["requests_per_second"] == 12.0 and warning["scrape_interval"] == 0.25
    assert err == "" and exporter.process.returncode == 0


def test_a_fast_interval_against_a_loopback_api_is_not_warned_about(api):
    exporter = ExporterProcess.start(
        {
            "GATEWAY_API_URL": api.url,
            "ADMIN_KEY": TEST_KEY,
            "SCRAPE_INTERVAL": "0.25",
        }
    )
    out = exporter.stop()
    lines = [json.loads(line) for line in out.splitlines()]
    assert not [line for line in lines if "SCRAPE_INTERVAL" in line["message"]]
    (started,) = [line for line in lines if line["message"] == "Exporter started"]
    assert started["url"] == f"http://localhost:{exporter.port}/"


# tgkill(2) sends a signal to one thread; the kernel may pick any thread for a process-wide kill.
TGKILL = {"x86_64": 234, "aarch64": 131}


@pytest.mark.skipif(platform.machine() not in TGKILL, reason="tgkill's syscall number is known here")
def test_a_sigterm_the_kernel_gives_to_another_thread_still_stops_the_exporter(api, exporter_process):
    exporter = exporter_process(SCRAPE_INTERVAL="0.2")
    assert exporter.wait_for_log("Updated provider metrics", timeout=20)
    others = [int(task) for task in os.listdir(f"/proc/{exporter.pid}/task") if int(task) != exporter.pid]
    assert others  # the poller and the server run on threads of their own
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(TGKILL[platform.machine()], exporter.pid, others[0], signal.SIGTERM) == 0
    assert exporter.process.wait(5) == 0


def _voluntary_switches(pid: int, tid: int) -> int:
    with open(f"/proc/{pid}/task/{tid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches line")


def test_the_main_thread_sleeps_until_a_signal_between_polls(api, exporter_process):
    # Waking in slices to look for a signal costs CPU all day; once start-up is over (its GIL
    # hand-offs count as switches too), the main thread must not wake at all.
    exporter = exporter_process(SCRAPE_INTERVAL="3600")
    assert exporter.wait_for_log("Updated provider metrics", timeout=20)

    def settled() -> int | None:
        before = _voluntary_switches(exporter.pid, exporter.pid)
        time.sleep(0.5)  # the behaviour is what happens while time passes
        return before if _voluntary_switches(exporter.pid, exporter.pid) == before else None

    assert eventually(settled, timeout=10) is not None  # a thread that woke to look would switch
    exporter.process.send_signal(signal.SIGTERM)
    assert exporter.process.wait(5) == 0
