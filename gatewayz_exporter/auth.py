"""Basic auth that a flood of wrong passwords cannot turn against real scrapes.

bcrypt runs in its own small bounded pool; known credentials are answered from caches without
it. Failed checks are throttled per address (per /64 for IPv6; a whole /24 or /48 once several
of its addresses fail), and one worker is kept for addresses with no failure on record, so a
scraper can still be verified during a flood.
"""

from __future__ import annotations

import asyncio
import enum
import math
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

from .addresses import client_group, client_key
from .credentials import CredentialVerifier, parse_basic


class Verdict(enum.Enum):
    ALLOWED = "allowed"
    DENIED = "denied"  # 401
    THROTTLED = "throttled"  # 429: too many failures from this address, or too many checks queued


@dataclass(slots=True)
class _Budget:
    tokens: float
    updated: float
    in_flight: int = 0
    failures: int = 0  # wrong passwords checked by bcrypt; any keeps the address out of the reserved lane


class DaemonPool(Executor):
    """A fixed pool of daemon threads: a check still running at exit is abandoned, never joined.

    ThreadPoolExecutor joins its workers at interpreter exit, so one bcrypt check in
    progress would hold a SIGTERM'd process for as long as the check takes.
    """

    def __init__(self, workers: int, name: str):
        self._tasks: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._workers, self._name = workers, name
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("pool closed")
            if not self._threads:
                for index in range(self._workers):
                    thread = threading.Thread(target=self._work, name=f"{self._name}-{index}", daemon=True)
                    thread.start()
                    self._threads.append(thread)
            self._tasks.put((future, fn, args) if not kwargs else (future, lambda: fn(*args, **kwargs), ()))
        return future

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            future, fn, args = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as error:  # noqa: BLE001 -- handed to the waiter
                future.set_exception(error)
            else:
                future.set_result(result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    task = self._tasks.get_nowait()
                except queue.Empty:
                    break
                if task is not None:
                    task[0].cancel()
        for _ in threads:
            self._tasks.put(None)
        if wait:
            for thread in threads:
                thread.join()


# Addresses of one network with failures on record before the whole network counts as failed.
FAILING_ADDRESSES_PER_NETWORK = 4


class AuthGate:
    """Decides a request's basic auth; ``check`` runs on the server's event loop."""

    def __init__(
        self,
        *,
        workers: int = 2,
        max_pending: int = 8,
        reserved: int = 2,
        burst: int = 10,
        refill_per_second: float = 1.0,
        per_address_in_flight: int = 2,
        max_addresses: int = 4096,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._pool = DaemonPool(workers, "bcrypt")
        self._max_pending = max_pending
        self._reserve_pool = DaemonPool(1, "bcrypt-reserved")
        self._reserved = reserved
        self._reserve_pending = 0
        self._burst = float(burst)
        self._refill = refill_per_second
        self._per_address_in_flight = per_address_in_flight
        self._max_addresses = max_addresses
        self._monotonic = monotonic
        self._budgets: dict[str, _Budget] = {}
        # network -> addresses in it that failed (counted once each, while remembered), newest last
        self._failing_networks: OrderedDict[str, int] = OrderedDict()
        self._pending = 0
        self.bcrypt_runs = 0  # checks handed to the pool, for tests and diagnosis

    @property
    def tracked_addresses(self) -> int:
        """Addresses with a budget in the table (bounded by ``max_addresses``)."""
        return len(self._budgets)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._reserve_pool.shutdown(wait=False, cancel_futures=True)

    def retry_after(self, address: str | None) -> int:
        """Whole seconds until the address may try again (at least 1)."""
        budget = self._budgets.get(client_key(address))
        if budget is None or budget.tokens >= 1:
            return 1
        return max(1, math.ceil((1 - budget.tokens) / self._refill))

    async def check(
        self, verifier: CredentialVerifier, authorization: bytes | None, address: str | None
    ) -> Verdict:
        credentials = parse_basic(authorization)
        if credentials is None:
            return Verdict.DENIED  # nothing to verify: no bcrypt, no budget spent
        known = verifier.lookup(credentials)
        if known is not None:  # decided before: no bcrypt, no budget spent
            return Verdict.ALLOWED if known else Verdict.DENIED
        key = client_key(address)
        budget = self._budget(key)
        if budget.tokens < 1 or budget.in_flight >= self._per_address_in_flight:
            return Verdict.THROTTLED
        if budget.failures == 0 and not self._network_failing(key) and self._reserve_pending < self._reserved:
            reserved = True
        elif self._pending < self._max_pending:
            reserved = False
        else:
            return Verdict.THROTTLED
        budget.tokens -= 1  # reserved now, so concurrent attempts cannot overspend; refunded on success
        budget.in_flight += 1
        if reserved:
            self._reserve_pending += 1
        else:
            self._pending += 1
        self.bcrypt_runs += 1
        try:
            loop = asyncio.get_running_loop()
            pool = self._reserve_pool if reserved else self._pool
            valid = await loop.run_in_executor(pool, verifier.verify, credentials)
        finally:
            budget.in_flight -= 1
            if reserved:
                self._reserve_pending -= 1
            else:
                self._pending -= 1
        if valid:
            budget.tokens = min(self._burst, budget.tokens + 1)
            return Verdict.ALLOWED
        budget.failures += 1
        if budget.failures == 1:
            self._note_failing(key)
        return Verdict.DENIED

    def _network_failing(self, key: str) -> bool:
        return self._failing_networks.get(client_group(key), 0) >= FAILING_ADDRESSES_PER_NETWORK

    def _note_failing(self, key: str) -> None:
        network = client_group(key)
        self._failing_networks[network] = self._failing_networks.pop(network, 0) + 1
        while len(self._failing_networks) > self._max_addresses:
            self._failing_networks.popitem(last=False)

    def _budget(self, key: str) -> _Budget:
        now = self._monotonic()
        budget = self._budgets.get(key)
        if budget is None:
            if len(self._budgets) >= self._max_addresses:
                self._forget(now)
            budget = self._budgets[key] = _Budget(self._burst, now)
        else:
            budget.tokens = min(self._burst, budget.tokens + (now - budget.updated) * self._refill)
            budget.updated = now
        return budget

    def _forget(self, now: float) -> None:
        """Keep the table bounded: drop addresses back at a full budget, then the oldest.

        Among those at a full budget, addresses with failures on record go last: forgetting
        one lets it into the reserved lane again, forgetting a clean one loses nothing.
        """
        full = [
            key
            for key, budget in self._budgets.items()
            if budget.in_flight == 0 and budget.tokens + (now - budget.updated) * self._refill >= self._burst
        ]
        full.sort(key=lambda key: self._budgets[key].failures > 0)
        # Down to three quarters, so the next new addresses do not each pay for this scan.
        room = self._max_addresses * 3 // 4
        for key in full:
            if self._budgets[key].failures > 0 and len(self._budgets) <= room:
                break
            del self._budgets[key]
        if len(self._budgets) >= self._max_addresses:
            # Still full of addresses in use: the oldest go, those with no failures first.
            order = sorted(self._budgets, key=lambda key: self._budgets[key].failures > 0)
            for key in order[: len(self._budgets) - room]:
                del self._budgets[key]
