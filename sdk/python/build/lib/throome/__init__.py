"""One client for a Throome cluster's cache, database and queue over the gateway's HTTP
data API (``/api/v1/clusters/{id}/...``): no Redis, PostgreSQL or Kafka driver needed.

    from throome import Client
    client = Client("http://localhost:9000", "my-app", token="...")
    client.cache().set("user:1", b"ada", ttl=60)
    rows = client.db().query("select $1::int + 1 as n", [1])
    client.queue().publish("events", b"signed up")

``AsyncClient`` has the same API with ``await``. ``endpoints()`` gives the cluster's native
connection strings for the usual drivers.
"""

from ._client import AsyncClient, Client, Published, Record, Rows, ThroomeError

__all__ = ["AsyncClient", "Client", "Published", "Record", "Rows", "ThroomeError"]
