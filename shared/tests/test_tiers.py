from datetime import UTC, datetime, timedelta

import pytest

from shared.tiers import derive_tier

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=10)
EARLIER = NOW - timedelta(seconds=1)


@pytest.mark.parametrize(
    ("status", "period_end", "grace_until", "tier"),
    [
        ("active", LATER, None, "PRO"),
        ("trialing", LATER, None, "PRO"),
        ("active", EARLIER, None, "BASIC"),  # the period ended (a missed renewal webhook)
        ("active", None, None, "BASIC"),
        ("past_due", LATER, NOW + timedelta(days=1), "PRO"),  # within the grace period
        ("past_due", LATER, EARLIER, "BASIC"),  # grace over
        ("past_due", LATER, None, "BASIC"),
        ("canceled", LATER, None, "BASIC"),
        ("unpaid", LATER, None, "BASIC"),
        ("incomplete", LATER, None, "BASIC"),
        (None, None, None, "BASIC"),
    ],
)
def test_tier_rule(status, period_end, grace_until, tier):
    assert derive_tier(status, period_end, NOW, grace_until) == tier
