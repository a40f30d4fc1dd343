import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from billing.projection import apply_snapshot, plan_for
from shared.tiers import derive_tier

USER = uuid.uuid4()
T0 = datetime(2026, 11, 1, tzinfo=UTC)
PRO = "price_pro_monthly"
OTHER = "price_team_addon"


def snapshot(
    status="active", start=T0, days=30, cancel=False, sub_id="sub_1", prices=(PRO,)
) -> dict:
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
                    "price": {"id": price, "object": "price"},
                }
                for price in prices
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
    plan = plan_for(USER, [sub], timedelta(hours=72), PRO)
    assert plan.grace_until == T0 + timedelta(hours=72)
    assert plan.tier(T0 + timedelta(hours=71)) == "PRO"
    assert plan.tier(T0 + timedelta(hours=73)) == "BASIC"
    assert plan_for(USER, [sub], timedelta(0), PRO).tier(T0 + timedelta(seconds=1)) == "BASIC"


def test_plan_prefers_the_subscription_that_pays():
    old_active = apply_snapshot(None, snapshot(sub_id="sub_a"), USER, T0)
    new_canceled = apply_snapshot(
        None, snapshot(status="canceled", sub_id="sub_b"), USER, T0 + timedelta(1)
    )
    plan = plan_for(USER, [old_active, new_canceled], timedelta(0), PRO)
    assert plan.stripe_subscription_id == "sub_a"
    assert plan.as_of == T0 + timedelta(1)


def test_plan_changes_are_detected_on_what_consumers_derive():
    sub = apply_snapshot(None, snapshot(), USER, T0)
    plan = plan_for(USER, [sub], timedelta(0), PRO)
    later = apply_snapshot(sub, snapshot(), USER, T0 + timedelta(minutes=1))
    same = plan_for(USER, [later], timedelta(0), PRO)
    assert same.announces_the_same_as(plan)  # only as_of moved
    cancelling = apply_snapshot(later, snapshot(cancel=True), USER, T0 + timedelta(minutes=2))
    assert not plan_for(USER, [cancelling], timedelta(0), PRO).announces_the_same_as(plan)
    assert not plan.announces_the_same_as(None)


def test_the_plan_carries_the_period_start_and_announces_a_new_one():
    plan = plan_for(USER, [apply_snapshot(None, snapshot(), USER, T0)], timedelta(0), PRO)
    assert (plan.current_period_start, plan.current_period_end) == (T0, T0 + timedelta(days=30))
    # A plan saved without it (before it was announced) is announced again.
    assert not plan.announces_the_same_as(replace(plan, current_period_start=None))


def test_only_a_subscription_for_the_pro_price_makes_the_user_pro():
    other = apply_snapshot(None, snapshot(prices=(OTHER,)), USER, T0)
    assert other.price_ids == (OTHER,)
    plan = plan_for(USER, [other], timedelta(hours=72), PRO)
    assert plan.tier(T0 + timedelta(days=1)) == "BASIC"
    # What SubscriptionChanged carries: nothing a consumer could derive PRO from.
    assert (plan.stripe_subscription_id, plan.status) == (None, "none")
    assert (plan.current_period_end, plan.grace_until, plan.cancel_at_period_end) == (
        None,
        None,
        False,
    )
    assert derive_tier(plan.status, plan.current_period_end, T0, plan.grace_until) == "BASIC"
    assert plan.as_of == T0


def test_a_past_due_other_subscription_gets_no_grace_either():
    other = apply_snapshot(None, snapshot(status="past_due", prices=(OTHER,)), USER, T0)
    plan = plan_for(USER, [other], timedelta(hours=72), PRO)
    assert plan.tier(T0 + timedelta(hours=1)) == "BASIC"


def test_the_pro_price_among_several_items_makes_the_user_pro():
    both = apply_snapshot(None, snapshot(prices=(OTHER, PRO)), USER, T0)
    plan = plan_for(USER, [both], timedelta(0), PRO)
    assert plan.tier(T0 + timedelta(days=1)) == "PRO"
    assert plan.stripe_subscription_id == "sub_1"


def test_an_item_whose_price_is_an_id_counts_too():
    snap = snapshot()
    snap["items"]["data"][0]["price"] = PRO
    assert apply_snapshot(None, snap, USER, T0).price_ids == (PRO,)


def test_a_newer_active_other_subscription_does_not_stand_for_an_ended_pro_one():
    ended_pro = apply_snapshot(None, snapshot(status="canceled", sub_id="sub_pro"), USER, T0)
    other = apply_snapshot(
        None, snapshot(sub_id="sub_other", prices=(OTHER,)), USER, T0 + timedelta(1)
    )
    plan = plan_for(USER, [ended_pro, other], timedelta(0), PRO)
    assert plan.stripe_subscription_id == "sub_pro"
    assert plan.tier(T0 + timedelta(1)) == "BASIC"
    assert plan.as_of == T0 + timedelta(1)
    paying_pro = apply_snapshot(None, snapshot(sub_id="sub_pro2"), USER, T0)
    plan = plan_for(USER, [paying_pro, other], timedelta(0), PRO)
    assert plan.stripe_subscription_id == "sub_pro2"
    assert plan.tier(T0 + timedelta(1)) == "PRO"
