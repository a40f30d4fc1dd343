import uuid
from datetime import UTC, datetime, timedelta

from billing.projection import apply_snapshot, plan_for

USER = uuid.uuid4()
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def snapshot(status="active", start=T0, days=30, cancel=False, sub_id="sub_1") -> dict:
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": "cus_1",
        "status": status,
        "cancel_at_period_end": cancel,
        "metadata": {"userId": str(USER)},
        "items": {
            "data": [
                {
                    "current_period_start": int(start.timestamp()),
                    "current_period_end": int((start + timedelta(days=days)).timestamp()),
                }
            ]
        },
    }


def test_the_period_comes_from_the_item():
    sub = apply_snapshot(None, snapshot(), USER, T0)
    assert sub.current_period_start == T0
    assert sub.current_period_end == T0 + timedelta(days=30)
    assert sub.stripe_customer_id == "cus_1"


def test_an_older_snapshot_never_overwrites_a_newer_one():
    newer = apply_snapshot(None, snapshot(status="canceled"), USER, T0 + timedelta(minutes=5))
    assert apply_snapshot(newer, snapshot(status="active"), USER, T0) is None
    assert apply_snapshot(newer, snapshot(status="active"), USER, newer.as_of) is None


def test_past_due_since_is_kept_across_past_due_snapshots():
    first = apply_snapshot(None, snapshot(status="past_due"), USER, T0)
    second = apply_snapshot(first, snapshot(status="past_due"), USER, T0 + timedelta(hours=5))
    assert second.past_due_since == T0
    paid = apply_snapshot(second, snapshot(status="active"), USER, T0 + timedelta(hours=6))
    assert paid.past_due_since is None


def test_plan_gives_grace_while_past_due():
    sub = apply_snapshot(None, snapshot(status="past_due"), USER, T0)
    plan = plan_for(USER, [sub], timedelta(hours=72))
    assert plan.grace_until == T0 + timedelta(hours=72)
    assert plan.tier(T0 + timedelta(hours=71)) == "PRO"
    assert plan.tier(T0 + timedelta(hours=73)) == "BASIC"
    assert plan_for(USER, [sub], timedelta(0)).tier(T0 + timedelta(seconds=1)) == "BASIC"


def test_plan_prefers_the_subscription_that_pays():
    old_active = apply_snapshot(None, snapshot(sub_id="sub_a"), USER, T0)
    new_canceled = apply_snapshot(
        None, snapshot(status="canceled", sub_id="sub_b"), USER, T0 + timedelta(1)
    )
    plan = plan_for(USER, [old_active, new_canceled], timedelta(0))
    assert plan.stripe_subscription_id == "sub_a"
    assert plan.as_of == T0 + timedelta(1)


def test_plan_changes_are_detected_on_what_consumers_derive():
    sub = apply_snapshot(None, snapshot(), USER, T0)
    plan = plan_for(USER, [sub], timedelta(0))
    later = apply_snapshot(sub, snapshot(), USER, T0 + timedelta(minutes=1))
    same = plan_for(USER, [later], timedelta(0))
    assert same.announces_the_same_as(plan)  # only as_of moved
    cancelling = apply_snapshot(later, snapshot(cancel=True), USER, T0 + timedelta(minutes=2))
    assert not plan_for(USER, [cancelling], timedelta(0)).announces_the_same_as(plan)
    assert not plan.announces_the_same_as(None)
