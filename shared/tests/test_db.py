import pytest

from shared.db import UnitOfWork, open_pool


@pytest.fixture
async def pool(database_url):
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS uow_test")
        conn.execute("CREATE TABLE IF NOT EXISTS uow_test.items (name text PRIMARY KEY)")
    pool = await open_pool(database_url, "uow_test", min_size=1, max_size=2)
    yield pool
    await pool.close()


async def count(pool, name: str) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM items WHERE name = %s", (name,))
        return (await cur.fetchone())[0]


async def test_search_path_is_the_service_schema(pool):
    async with pool.connection() as conn:
        cur = await conn.execute("SHOW search_path")
        assert (await cur.fetchone())[0].startswith("uow_test")


async def test_commit_runs_after_commit_callbacks(pool):
    seen = []
    async with UnitOfWork(pool) as uow:
        await uow.conn.execute("INSERT INTO items VALUES ('committed')")

        async def callback():
            seen.append(await count(pool, "committed"))

        uow.after_commit(callback)
        assert seen == []
    assert seen == [1]


async def test_exception_rolls_back_and_skips_callbacks(pool):
    seen = []
    with pytest.raises(RuntimeError):
        async with UnitOfWork(pool) as uow:
            await uow.conn.execute("INSERT INTO items VALUES ('rolled-back')")

            async def callback():
                seen.append(True)

            uow.after_commit(callback)
            raise RuntimeError("fail")
    assert seen == []
    assert await count(pool, "rolled-back") == 0


async def test_failing_callback_does_not_undo_the_commit(pool):
    async def broken():
        raise ConnectionError("cache down")

    async with UnitOfWork(pool) as uow:
        await uow.conn.execute("INSERT INTO items VALUES ('kept')")
        uow.after_commit(broken)
    assert await count(pool, "kept") == 1
