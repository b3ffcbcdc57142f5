"""The Python SDK (sdk/python, package `throome`) against a running gateway: every call of
the sync client and the async one, typed errors, binary values, and nothing of one cluster
seen with another's token. Prints OK."""

import asyncio
import sys

from throome import AsyncClient, Client, ThroomeError

url, writer, reader, other = sys.argv[1:5]


def expect_error(code, f, *args, **kw):
    try:
        f(*args, **kw)
    except ThroomeError as e:
        assert e.code == code, (e.code, code, e)
        return e
    raise AssertionError(f"no {code}")


with Client(url, "app", token=writer) as c:
    cache = c.cache()
    cache.set("py:bin", b"\x00\xffbytes", ttl=30)
    assert cache.get("py:bin") == b"\x00\xffbytes"
    assert cache.get("py:none") is None
    assert cache.command("TTL", "py:bin") in range(1, 31)
    assert cache.command("INCRBY", "py:n", 7) == 7
    pipe = cache.pipeline([["SET", "py:p", "1"], ["INCR", "py:p"], ["HGET", "py:p", "f"]])
    assert pipe[0] == {"result": "OK"} and pipe[1] == {"result": 2}, pipe
    assert pipe[2]["error"].startswith("WRONGTYPE"), pipe
    expect_error("WRONGTYPE", cache.command, "LPUSH", "py:p", "x")
    assert cache.delete("py:bin") is True and cache.delete("py:bin") is False

    db = c.db()
    db.execute("create table if not exists py_users (id serial primary key, name text unique, meta jsonb)")
    assert db.execute("insert into py_users (name, meta) values ($1, $2)", ["ada", {"langs": ["en"]}]) == 1
    rows = db.query("select id, name, meta, $1::numeric as price from py_users where name = $2", ["1.10", "ada"])
    assert rows.column("name") == ["ada"] and rows.column("meta") == [{"langs": ["en"]}], rows
    assert rows.column("price") == ["1.10"], rows
    err = expect_error("23505", db.transaction, [("insert into py_users (name) values ($1)", ["bob"]),
                                                 ("insert into py_users (name) values ($1)", ["ada"])])
    assert err.status == 400
    assert db.query("select count(*) from py_users where name = 'bob'").rows == [["0"]]
    results = db.transaction([("insert into py_users (name) values ('cy')", []), ("select count(*) from py_users", [])])
    assert results[1].rows == [["2"]], results

    q = c.queue()
    sent = q.publish("events", b"\x01py", key=b"k1")
    again = q.publish("events", b"\x02py", key=b"k1")
    assert sent.partition_id == again.partition_id and again.offset == sent.offset + 1
    records = q.read("events", sent.partition_id, sent.offset)
    assert [(r.key, r.value) for r in records[:2]] == [(b"k1", b"\x01py"), (b"k1", b"\x02py")], records
    expect_error("UNKNOWN_TOPIC_OR_PARTITION", q.publish, "nope", b"x")

    ends = c.endpoints()
    assert ends["cache"]["type"] == "redis" and ends["cache"]["connect"][0].startswith("redis://"), ends
    assert ends["db"]["connect"][0].startswith("postgresql://"), ends

with Client(url, "app", token=reader) as c:
    assert c.cache().get("py:n") == b"7"
    expect_error("forbidden", c.cache().set, "py:n", b"8")
    expect_error("25006", c.db().execute, "delete from py_users")

with Client(url, "app", token=other) as c:
    expect_error("unauthorized", c.cache().get, "py:n")
with Client(url, "nope", token=writer) as c:
    expect_error("cluster_not_found", c.cache().get, "py:n")


async def run_async():
    async with AsyncClient(url, "app", token=writer) as c:
        await c.cache().set("py:async", "v")
        got = await asyncio.gather(c.cache().get("py:async"), c.db().query("select 41 + 1 as n"),
                                   c.queue().publish("events", b"async", partition=0))
        assert got[0] == b"v" and got[1].rows == [[42]] and got[2].partition_id == 0, got
        assert (await c.cache().get("py:missing")) is None
        try:
            await c.db().query("selec")
            raise AssertionError("no error")
        except ThroomeError as e:
            assert e.code == "42601", e
        assert "queue" in await c.endpoints()


asyncio.run(run_async())
print("OK")
