"""Properties of the daily quota: the SQL counter (against the real test database) and the
day boundaries it is counted in."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import AsyncConnection

from chat.quota import next_midnight, utc_day
from chat.repository import give_back_quota_unit, quota_used, take_quota_unit
from shared.db import schema_conninfo

SQL_SETTINGS = settings(max_examples=50, deadline=None, derandomize=True, database=None)
PURE_SETTINGS = settings(max_examples=100, deadline=None, derandomize=True, database=None)

DAY = date(2026, 1, 1)
limits = st.none() | st.integers(min_value=0, max_value=6)


async def _connect(database_url: str) -> AsyncConnection:
    return await AsyncConnection.connect(schema_conninfo(database_url, "chat"), autocommit=True)


async def _forget(conn: AsyncConnection, user_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM daily_usage WHERE user_id = %s", (user_id,))


@SQL_SETTINGS
@given(limit=limits, operations=st.lists(st.sampled_from(["take", "give"]), max_size=25))
def test_the_count_follows_the_takes_and_give_backs_within_the_limit(
    chat_database_url: str, limit: int | None, operations: list[str]
) -> None:
    async def run() -> None:
        user_id = uuid.uuid4()  # a user of its own per example: nothing to clean up between
        conn = await _connect(chat_database_url)
        try:
            accepted = given_back = 0
            for operation in operations:
                before = await quota_used(conn, user_id, DAY)
                if operation == "take":
                    count = await take_quota_unit(conn, user_id, DAY, limit)
                    if limit is None or before < limit:
                        assert count == before + 1
                        accepted += 1
                    else:
                        assert count is None
                else:
                    await give_back_quota_unit(conn, user_id, DAY)
                    given_back += before > 0  # giving back at 0 changes nothing
                used = await quota_used(conn, user_id, DAY)
                assert used >= 0
                assert limit is None or used <= limit
                assert used == accepted - given_back
        finally:
            await _forget(conn, user_id)
            await conn.close()

    asyncio.run(run())


@settings(SQL_SETTINGS, max_examples=25)
@given(
    limit=st.integers(min_value=0, max_value=5),
    already=st.integers(min_value=0, max_value=5),
    takers=st.integers(min_value=1, max_value=8),
)
def test_concurrent_takes_never_accept_more_than_the_limit(
    chat_database_url: str, limit: int, already: int, takers: int
) -> None:
    async def run() -> None:
        user_id = uuid.uuid4()
        conns = await asyncio.gather(*(_connect(chat_database_url) for _ in range(takers)))
        try:
            for _ in range(already):  # a day that has counted some prompts already
                await take_quota_unit(conns[0], user_id, DAY, None)
            counts = await asyncio.gather(
                *(take_quota_unit(conn, user_id, DAY, limit) for conn in conns)
            )
            room = max(0, limit - already)
            granted = sorted(c for c in counts if c is not None)
            assert len(granted) == min(takers, room)
            # Each accepted take got its own number, right after the ones before.
            assert granted == list(range(already + 1, already + 1 + len(granted)))
            assert await quota_used(conns[0], user_id, DAY) == already + len(granted)
        finally:
            await _forget(conns[0], user_id)
            await asyncio.gather(*(conn.close() for conn in conns))

    asyncio.run(run())


# -- the day the quota counts in, and when it resets ----------------------------------------

OFFSETS = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11, minutes=-30))]
    + [timezone(timedelta(hours=h)) for h in (-12, -1, 1, 9, 14)]
)
# Well inside datetime's range, so the next day and any offset conversion exist.
aware_instants = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=OFFSETS
)


@PURE_SETTINGS
@given(now=aware_instants)
def test_the_next_midnight_is_within_the_coming_24_hours_at_0000_utc(now: datetime) -> None:
    reset = next_midnight(now)
    assert reset > now
    assert reset - now <= timedelta(hours=24)
    assert reset.utcoffset() == timedelta(0)
    assert reset.timetz() == time(0, tzinfo=UTC)
    assert utc_day(reset) == utc_day(now) + timedelta(days=1)


@PURE_SETTINGS
@given(now=aware_instants)
def test_the_day_is_the_utc_calendar_day_whatever_the_offset(now: datetime) -> None:
    day = utc_day(now)
    start = datetime.combine(day, time(0), tzinfo=UTC)
    assert start <= now < start + timedelta(days=1)
    assert utc_day(now.astimezone(UTC)) == day
