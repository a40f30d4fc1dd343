"""The waits of a reply stream whose Redis reads keep failing."""

from chat.streaming import Backoff


def test_waits_double_up_to_the_cap_with_jitter_then_start_over_after_a_success():
    backoff = Backoff(base=0.1, cap=5.0)
    for _ in range(3):
        delays = [backoff.next_delay() for _ in range(12)]
        ceilings = [min(5.0, 0.1 * 2**n) for n in range(12)]
        for delay, ceiling in zip(delays, ceilings, strict=True):
            assert ceiling / 2 <= delay <= ceiling
        assert sum(delays[:5]) >= 1.5  # five failures take at least 1.5 s, never a spin
        backoff.reset()
        assert backoff.failures == 0


def test_a_long_outage_stays_at_the_cap():
    backoff = Backoff(base=0.1, cap=5.0)
    delays = [backoff.next_delay() for _ in range(10_000)]
    assert max(delays) <= 5.0
    assert min(delays[10:]) >= 2.5
