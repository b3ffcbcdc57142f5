"""The original Throome README's example (NewClient(url, cluster), Cache().Set/Get,
DB().Execute/Query, Queue().Publish) with the Python SDK (``pip install ./sdk/python``), run
against a gateway whose cluster has a cache, a database, a queue with topic ``events`` and a
token:

    THROOME_URL=http://localhost:9000 THROOME_CLUSTER=my-app THROOME_TOKEN=... \\
      python examples/sdk_quickstart.py
"""

import asyncio
import os

from throome import AsyncClient, Client

url = os.environ.get("THROOME_URL", "http://localhost:9000")
cluster = os.environ.get("THROOME_CLUSTER", "my-app")
token = os.environ.get("THROOME_TOKEN")

with Client(url, cluster, token=token) as client:
    # Cache
    client.cache().set("user:1", "John Doe", ttl=3600)
    print("cache: user:1 =", client.cache().get("user:1").decode())

    # Database
    db = client.db()
    db.execute("CREATE TABLE IF NOT EXISTS users (id serial PRIMARY KEY, name text)")
    db.execute("INSERT INTO users (name) VALUES ($1)", ["John Doe"])
    rows = db.query("SELECT count(*)::int AS n FROM users WHERE name = $1", ["John Doe"])
    print("db: users named John Doe =", rows.column("n")[0])

    # Queue
    sent = client.queue().publish("events", b"user.created")
    print(f"queue: events partition {sent.partition_id} offset {sent.offset}")

    # The same cluster with the usual drivers
    for service, e in client.endpoints().items():
        print(f"native: {service} ({e['type']}) {' '.join(e['connect'])}")


async def main():
    # The same with asyncio.
    async with AsyncClient(url, cluster, token=token) as client:
        value = await client.cache().get("user:1")
        print("async cache: user:1 =", value.decode())


asyncio.run(main())
