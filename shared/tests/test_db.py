import pytest

from shared.db import Database, open_pool


@pytest.fixture
async def pool(database_url):
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS db_test")
        conn.execute("CREATE TABLE IF NOT EXISTS db_test.items (name text PRIMARY KEY)")
    pool = await open_pool(database_url, "db_test", min_size=1, max_size=2)
    yield pool
    await pool.close()


async def count(pool, name: str) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM items WHERE name = %s", (name,))
        return (await cur.fetchone())[0]


async def test_search_path_is_the_service_schema(pool):
    async with pool.connection() as conn:
        cur = await conn.execute("SHOW search_path")
        assert (await cur.fetchone())[0].startswith("db_test")


async def test_commit_runs_after_commit_callbacks(pool):
    seen = []
    async with Database(pool).transaction() as tx:
        await tx.conn.execute("INSERT INTO items VALUES ('committed')")

        async def callback():
            seen.append(await count(pool, "committed"))

        tx.after_commit(callback)
        assert seen == []
    assert seen == [1]


async def test_exception_rolls_back_and_skips_callbacks(pool):
    seen = []
    with pytest.raises(RuntimeError):
        async with Database(pool).transaction() as tx:
            await tx.conn.execute("INSERT INTO items VALUES ('rolled-back')")

            async def callback():
                seen.append(True)

            tx.after_commit(callback)
            raise RuntimeError("fail")
    assert seen == []
    assert await count(pool, "rolled-back") == 0


async def test_failing_callback_does_not_undo_the_commit(pool):
    async def broken():
        raise ConnectionError("cache down")

    async with Database(pool).transaction() as tx:
        await tx.conn.execute("INSERT INTO items VALUES ('kept')")
        tx.after_commit(broken)
    assert await count(pool, "kept") == 1


async def test_a_transaction_is_entered_once_and_the_database_gives_fresh_ones(pool):
    db = Database(pool)
    tx = db.transaction()
    async with tx:
        await tx.conn.execute("INSERT INTO items VALUES ('first')")
    with pytest.raises(RuntimeError, match="entered once"):
        async with tx:
            pass
    async with db.transaction() as again:
        await again.conn.execute("INSERT INTO items VALUES ('second')")
    assert await count(pool, "first") == 1
    assert await count(pool, "second") == 1


async def test_autocommit_commits_each_statement_and_hands_back_a_normal_connection(pool):
    db = Database(pool)
    with pytest.raises(RuntimeError):
        async with db.autocommit() as tx:
            await tx.conn.execute("INSERT INTO items VALUES ('autocommitted')")
            raise RuntimeError("after the statement")
    assert await count(pool, "autocommitted") == 1  # committed by itself, not rolled back
    async with db.transaction() as tx:
        assert not tx.conn.autocommit
