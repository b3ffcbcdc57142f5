"""asyncpg and psycopg 3 through Throome, each step checked against what the server itself
answers (issue 18's reproducers). Usage: pg_transparency.py SERVER SESSION TRANSACTION
(ports; every login is postgres, trust); prints OK."""
import asyncio
import sys

import asyncpg
import psycopg

server, session, transaction = (int(p) for p in (sys.argv[1:4] + ["0"] * 3)[:3])


async def connect(port, **kw):
    return await asyncpg.connect(host="127.0.0.1", port=port, user="postgres",
                                 database="postgres", ssl=False, **kw)


async def error_then_next_query(port):
    """Defect 1: an error on a statement prepared with Parse/Describe/Flush, then Sync;
    the next query (and the next client on that server) must be answered."""
    c = await connect(port)
    try:
        await c.fetchval("SELECT '{{{{{{{1}}}}}}}'::int[]")
        raise AssertionError("no error")
    except asyncpg.ProgramLimitExceededError:
        pass
    assert await asyncio.wait_for(c.fetchval("SELECT 1"), 10) == 1
    other = await connect(port)
    assert await asyncio.wait_for(other.fetchval("SELECT 2"), 10) == 2
    await other.close()
    await c.close()


async def schema_change(port, table):
    """Defect 2: after ALTER TABLE asyncpg re-prepares, and the retry must see the new
    type; a statement prepared again after DROP/CREATE TYPE gets the new type."""
    c = await connect(port)
    await c.execute(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (a int, b int);"
                    f"INSERT INTO {table} VALUES (1, 2)")
    q = f"SELECT * FROM {table}"
    assert [tuple(r) for r in await c.fetch(q)] == [(1, 2)]
    await c.execute(f"ALTER TABLE {table} ALTER b TYPE text")
    try:
        rows = await asyncio.wait_for(c.fetch(q), 10)
    except asyncpg.InvalidCachedStatementError:
        # Raised only inside a transaction; outside one asyncpg retries by itself.
        rows = await asyncio.wait_for(c.fetch(q), 10)
    assert [tuple(r) for r in rows] == [(1, "2")], rows
    await c.close()


def enum_twice(port):
    """Defect 2 from psycopg's side: a prepared statement over a type made and rolled back
    twice."""
    dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    with psycopg.connect(dsn, prepare_threshold=0) as conn:
        for _ in range(2):
            with conn.transaction(force_rollback=True):
                conn.execute("CREATE TYPE e7 AS ENUM ('a', 'b')")
                got = conn.execute("SELECT %s::e7", ["a"]).fetchone()[0]
                assert got == "a", got


def pipeline_error(port):
    """Defect 1 from psycopg's pipeline mode: Parse/Bind/Describe/Execute and Flush, an
    error, then Sync; the connection goes on."""
    dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(2):
            try:
                with conn.pipeline():
                    # fetchone() flushes and reads: answered before the pipeline's Sync.
                    assert conn.execute("SELECT 1").fetchone()[0] == 1
                    conn.execute("SELECT 1/0").fetchone()
                raise AssertionError("no error")
            except psycopg.errors.DivisionByZero:
                pass
            with conn.pipeline():
                cur = conn.execute("SELECT %s::int", [3])
                assert cur.fetchone()[0] == 3


async def session_names(port):
    """Defect 3: in session mode a statement keeps the client's name."""
    c = await connect(port)
    statement = await c.prepare("select 1", name="foobar")
    assert await c.fetchval("EXECUTE foobar") == 1
    assert await statement.fetchval() == 1
    await c.close()


async def settings_and_pid(port, real_pid):
    """Defect 6: client_encoding as the server spells it. Defect 9: the pid shown is the
    server's in session mode, never a live server's in transaction mode."""
    c = await connect(port)
    assert c.get_settings().client_encoding == "UTF8", c.get_settings().client_encoding
    shown = c.get_server_pid()
    actual = await c.fetchval("SELECT pg_backend_pid()")
    if real_pid:
        assert shown == actual, (shown, actual)
    else:
        alive = await c.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", shown)
        assert alive == 0, shown
    await c.close()


async def terminated(port):
    """Defect 7: pg_terminate_backend's own error reaches the client. What the client sees
    next: the exception, and whether its connection is closed."""
    c = await connect(port)
    await c.execute("BEGIN")
    pid = await c.fetchval("SELECT pg_backend_pid()")
    admin = await connect(server)
    assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    await admin.close()
    await asyncio.sleep(0.3)
    try:
        await asyncio.wait_for(c.fetchval("SELECT 1"), 10)
        seen = "no error"
    except Exception as e:  # what the server does is the expectation
        seen = f"{type(e).__name__}: {getattr(e, 'sqlstate', '')}"
    await asyncio.sleep(0.3)
    closed = c.is_closed()
    if not closed:
        assert await asyncio.wait_for(c.fetchval("SELECT 2"), 10) == 2
        await c.close()
    return seen, closed


async def cancel_then_query(port):
    """A client-side timeout cancels the query; the cancel must have reached the server
    before the client's next query goes out (asyncpg's test_copy_from_query_timeout_1)."""
    c = await connect(port)

    async def slow_sink(data):
        await asyncio.sleep(0.05)

    for _ in range(3):
        copy = c.copy_from_query("SELECT repeat('a', 500) FROM generate_series(1, 5000)",
                                 output=slow_sink, timeout=0.1)
        try:
            await copy
            raise AssertionError("no timeout")
        except asyncio.TimeoutError:
            pass
        assert await c.fetchval("SELECT 1") == 1
    await c.close()


async def drop_database(port):
    """Defect 8: idle pooled connections to a database do not block DROP DATABASE."""
    admin = await connect(server)
    await admin.execute("DROP DATABASE IF EXISTS scratch")
    await admin.execute("CREATE DATABASE scratch")
    await admin.close()
    c = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres",
                              database="scratch", ssl=False)
    assert await c.fetchval("SELECT 1") == 1
    await c.close()
    d = await connect(port)
    await asyncio.wait_for(d.execute("DROP DATABASE scratch"), 10)
    await d.close()


async def own_notifications(port):
    """Issue 19: a listener keeps its server; its own NOTIFY arrives naming the process id
    it was shown (asyncpg's listeners compare it with get_server_pid()), psycopg's too;
    another client that never listened gets nothing."""
    c = await connect(port)
    got = asyncio.Queue()
    await c.add_listener("ch19", lambda *args: got.put_nowait(args))
    await c.execute("NOTIFY ch19, 'mine'")
    con, pid, channel, payload = await asyncio.wait_for(got.get(), 5)
    assert (pid, channel, payload) == (c.get_server_pid(), "ch19", "mine"), (pid, c.get_server_pid())
    await c.close()
    with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres",
                         autocommit=True) as a, \
            psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres",
                            autocommit=True) as b:
        a.execute("LISTEN ch19b")
        b.execute("SELECT 1")
        a.execute("NOTIFY ch19b, 'own'")
        b.execute("NOTIFY ch19b, 'other'")
        a.execute("SELECT 1")
        heard = [(n.pid == a.info.backend_pid, n.payload) for n in a.notifies(timeout=1, stop_after=2)]
        assert heard == [(True, "own"), (False, "other")], heard
        b.execute("SELECT 1")
        assert list(b.notifies(timeout=0.3)) == [], "b never listened"


async def main():
    for port in (session, transaction):
        await error_then_next_query(port)
        await schema_change(port, f"tab_{port}")
        enum_twice(port)
        pipeline_error(port)
        await drop_database(port)
        await cancel_then_query(port)
        await own_notifications(port)
    await session_names(session)
    await settings_and_pid(session, True)
    await settings_and_pid(transaction, False)
    direct = await terminated(server)
    assert await terminated(session) == direct, (await terminated(session), direct)
    # In transaction mode the client stays: the server's error, then another server.
    got = await terminated(transaction)
    assert got == ("AdminShutdownError: 57P01", False), got
    print("OK")


if __name__ == "__main__":
    asyncio.run(main())
