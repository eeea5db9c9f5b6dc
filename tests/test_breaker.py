"""The circuit breaker's state machine, driven by a fake clock."""

from __future__ import annotations

import threading

import pytest

from sync_core.breaker import CLOSED, HALF_OPEN, OPEN, STATE_CODES, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(clock=clock)


def open_it(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        assert breaker.allow()
        breaker.record_failure()


def test_defaults_and_state_codes():
    breaker = CircuitBreaker()
    assert (breaker.failure_threshold, breaker.reset_timeout) == (5, 30.0)
    assert breaker.state == CLOSED and breaker.consecutive_failures == 0
    assert STATE_CODES == {"closed": 0, "half_open": 1, "open": 2}


def test_closed_allows_everything(breaker):
    assert all(breaker.allow() for _ in range(100))
    assert breaker.seconds_until_probe() == 0.0


def test_opens_after_five_consecutive_failures(breaker):
    for n in range(1, 5):
        breaker.record_failure()
        assert breaker.state == CLOSED and breaker.consecutive_failures == n
    breaker.record_failure()
    assert breaker.state == OPEN and not breaker.allow()


def test_a_success_resets_the_count(breaker):
    for _ in range(4):
        breaker.record_failure()
    breaker.record_success()
    assert breaker.consecutive_failures == 0
    for _ in range(4):
        breaker.record_failure()
    assert breaker.state == CLOSED


def test_open_refuses_until_the_reset_timeout(breaker, clock):
    open_it(breaker)
    assert breaker.seconds_until_probe() == 30.0
    clock.now += 29.999
    assert breaker.state == OPEN and not breaker.allow()
    assert breaker.seconds_until_probe() == pytest.approx(0.001)
    clock.now += 0.001
    assert breaker.state == HALF_OPEN and breaker.seconds_until_probe() == 0.0


def test_half_open_lets_exactly_one_probe_through(breaker, clock):
    open_it(breaker)
    clock.now += 30
    assert breaker.allow()
    assert not breaker.allow() and not breaker.allow()
    assert breaker.state == HALF_OPEN
    clock.now += 1000  # a probe in flight is not replaced by time alone
    assert not breaker.allow()


def test_probe_success_closes(breaker, clock):
    open_it(breaker)
    clock.now += 30
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == CLOSED and breaker.consecutive_failures == 0
    assert all(breaker.allow() for _ in range(10))


def test_probe_failure_reopens_for_a_full_timeout(breaker, clock):
    open_it(breaker)
    clock.now += 45
    assert breaker.allow()
    breaker.record_failure()  # one failure is enough in half-open state
    assert breaker.state == OPEN and not breaker.allow()
    assert breaker.seconds_until_probe() == 30.0
    clock.now += 30
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == CLOSED
    for _ in range(4):
        breaker.record_failure()
    assert breaker.state == CLOSED  # the count started again from zero


def test_custom_threshold_and_timeout(clock):
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=5, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == OPEN
    clock.now += 5
    assert breaker.allow()


def race(n: int, action) -> list:
    """Run ``action`` in ``n`` threads released together; return their results."""
    barrier = threading.Barrier(n)
    results: list = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        result = action()
        with lock:
            results.append(result)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    return results


def test_twenty_threads_in_half_open_get_exactly_one_probe(breaker, clock):
    for _ in range(20):  # repeat: races are probabilistic
        open_it(breaker)
        clock.now += 30
        assert breaker.state == HALF_OPEN
        allowed = race(20, breaker.allow)
        assert len(allowed) == 20 and allowed.count(True) == 1
        breaker.record_success()
        assert breaker.state == CLOSED


def test_concurrent_failures_open_it(breaker):
    race(20, breaker.record_failure)
    assert breaker.consecutive_failures == 20 and breaker.state == OPEN
    assert race(20, breaker.allow).count(True) == 0
