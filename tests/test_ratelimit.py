"""The rate limiter on a frozen clock that the test steps: no sleeping, no timing."""
from sms_cli.providers.ratelimit import RateLimiter


class Clock:
    def __init__(self):
        self.now = 100.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_slots_are_spaced_one_interval_apart():
    clock = Clock()
    rl = RateLimiter(10, clock, clock.sleep)
    assert [round(rl.reserve(), 6) for _ in range(4)] == [0.0, 0.1, 0.2, 0.3]
    clock.now += 5  # idle: no burst is saved up
    assert rl.reserve() == 0.0 and round(rl.reserve(), 6) == 0.1


def test_pace_keeps_late_requests_apart_on_the_wire():
    clock = Clock()
    rl = RateLimiter(10, clock, clock.sleep)
    rl.pace()  # the first request left late for its slot...
    clock.now += 0.03
    rl.pace()  # ...so the next one, on time for its own slot, waits the rest of the interval
    assert clock.slept == [0.07]


def test_unlimited_never_waits():
    clock = Clock()
    rl = RateLimiter(None, clock, clock.sleep)
    assert rl.reserve() == 0.0 and rl.acquire() and not clock.slept
    rl.pace()
    assert not clock.slept
