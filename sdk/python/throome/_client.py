"""The sync and async clients. Both build the same requests (``_Request``) and read the
same answers (``_answer``); only the transport differs (httpx.Client / AsyncClient)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence
from urllib.parse import quote

import httpx


class ThroomeError(Exception):
    """The gateway's error: HTTP status, code (a SQLSTATE, a Redis error word, a Kafka error
    name, or the API's own such as ``unauthorized``) and message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{code}: {message} (HTTP {status})")
        self.status, self.code, self.message = status, code, message


@dataclass
class Rows:
    command: str
    row_count: Optional[int]
    fields: list
    rows: list

    def column(self, name: str) -> list:
        i = [f["name"] for f in self.fields].index(name)
        return [r[i] for r in self.rows]


@dataclass
class Published:
    partition_id: int
    offset: int


@dataclass
class Record:
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    timestamp: int
    headers: dict = field(default_factory=dict)


@dataclass
class _Request:
    method: str
    path: str
    params: dict
    body: Any = None


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _bytes(v) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode()


def _answer(resp: httpx.Response) -> Any:
    try:
        data = resp.json()
    except ValueError:
        raise ThroomeError(resp.status_code, "bad_answer", resp.text[:200]) from None
    if resp.status_code >= 400:
        raise ThroomeError(resp.status_code, data.get("code", ""), data.get("error", ""))
    return data


def _rows(d: dict) -> Rows:
    return Rows(d["command"], d.get("rowCount"), d["fields"], d["rows"])


def _record(r: dict) -> Record:
    dec = lambda s: None if s is None else base64.b64decode(s)  # noqa: E731
    headers = {h["name"]: base64.b64decode(h["value"]) for h in r.get("headers", [])}
    return Record(r["offset"], dec(r.get("key")), dec(r.get("value")), r["timestamp"], headers)


class _Requests:
    """The requests of every call, for a service of the cluster (``None``: the first of its
    kind)."""

    def __init__(self, service: Optional[str]):
        self.params = {"service": service} if service else {}

    def q(self, **more) -> dict:
        return {**self.params, **{k: v for k, v in more.items() if v is not None}}

    # cache
    def set(self, key, value, ttl):
        return _Request("PUT", f"cache/{quote(key, safe='')}", self.q(encoding="base64", ttl=ttl), _b64(_bytes(value)))

    def get(self, key):
        return _Request("GET", f"cache/{quote(key, safe='')}", self.q(encoding="base64"))

    def delete(self, key):
        return _Request("DELETE", f"cache/{quote(key, safe='')}", self.q())

    def command(self, args):
        return _Request("POST", "redis", self.q(), [a if isinstance(a, (int, float)) else str(a) for a in args])

    def pipeline(self, commands):
        return _Request("POST", "redis/pipeline", self.q(), [list(c) for c in commands])

    # db
    def query(self, sql, params):
        return _Request("POST", "sql", self.q(), {"query": sql, "params": list(params or [])})

    def transaction(self, statements):
        queries = [{"query": s, "params": list(p or [])} for s, p in statements]
        return _Request("POST", "sql", self.q(), {"queries": queries})

    # queue
    def publish(self, topic, value, key, partition):
        body = {"value": {"type": "BINARY", "data": _b64(_bytes(value))}}
        if key is not None:
            body["key"] = {"type": "BINARY", "data": _b64(_bytes(key))}
        if partition is not None:
            body["partition_id"] = partition
        return _Request("POST", f"topics/{quote(topic, safe='')}/records", self.q(), body)

    def read(self, topic, partition, offset):
        path = f"topics/{quote(topic, safe='')}/partitions/{int(partition)}/records"
        return _Request("GET", path, self.q(offset=offset, encoding="base64"))


class _Base:
    def __init__(self, url: str, cluster_id: str, token: Optional[str] = None, timeout: float = 60.0):
        self._prefix = f"{url.rstrip('/')}/api/v1/clusters/{quote(cluster_id, safe='')}/"
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = timeout

    def _kw(self, r: _Request) -> dict:
        kw = {"params": r.params, "headers": self._headers}
        if r.body is not None:
            kw["json"] = r.body
        return kw


class Client(_Base):
    """A cluster on a gateway, over blocking HTTP."""

    def __init__(self, url: str, cluster_id: str, token: Optional[str] = None, timeout: float = 60.0):
        super().__init__(url, cluster_id, token, timeout)
        self._http = httpx.Client(timeout=timeout)

    def _do(self, r: _Request) -> Any:
        return _answer(self._http.request(r.method, self._prefix + r.path, **self._kw(r)))

    def cache(self, service: Optional[str] = None) -> "Cache":
        return Cache(self, _Requests(service))

    def db(self, service: Optional[str] = None) -> "Db":
        return Db(self, _Requests(service))

    def queue(self, service: Optional[str] = None) -> "Queue":
        return Queue(self, _Requests(service))

    def endpoints(self) -> dict:
        """Each service's type and native connection strings."""
        return self._do(_Request("GET", "endpoints", {}))["services"]

    def close(self):
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Cache:
    def __init__(self, c: Client, r: _Requests):
        self._c, self._r = c, r

    def set(self, key: str, value, ttl: Optional[int] = None) -> None:
        self._c._do(self._r.set(key, value, ttl))

    def get(self, key: str) -> Optional[bytes]:
        try:
            return base64.b64decode(self._c._do(self._r.get(key))["result"])
        except ThroomeError as e:
            if e.code == "not_found":
                return None
            raise

    def delete(self, key: str) -> bool:
        return self._c._do(self._r.delete(key))["result"] > 0

    def command(self, *args) -> Any:
        return self._c._do(self._r.command(args))["result"]

    def pipeline(self, commands: Sequence[Sequence]) -> list:
        return self._c._do(self._r.pipeline(commands))


class Db:
    def __init__(self, c: Client, r: _Requests):
        self._c, self._r = c, r

    def query(self, sql: str, params: Sequence = ()) -> Rows:
        return _rows(self._c._do(self._r.query(sql, params)))

    def execute(self, sql: str, params: Sequence = ()) -> int:
        return self.query(sql, params).row_count or 0

    def transaction(self, statements: Sequence) -> list:
        return [_rows(r) for r in self._c._do(self._r.transaction(statements))["results"]]


class Queue:
    def __init__(self, c: Client, r: _Requests):
        self._c, self._r = c, r

    def publish(self, topic: str, value, key=None, partition: Optional[int] = None) -> Published:
        d = self._c._do(self._r.publish(topic, value, key, partition))
        return Published(d["partition_id"], d["offset"])

    def read(self, topic: str, partition: int, offset: int = 0) -> list:
        return [_record(r) for r in self._c._do(self._r.read(topic, partition, offset))["records"]]


class AsyncClient(_Base):
    """The same over asyncio (``await client.cache().get(...)``)."""

    def __init__(self, url: str, cluster_id: str, token: Optional[str] = None, timeout: float = 60.0):
        super().__init__(url, cluster_id, token, timeout)
        self._http = httpx.AsyncClient(timeout=timeout)

    async def _do(self, r: _Request) -> Any:
        return _answer(await self._http.request(r.method, self._prefix + r.path, **self._kw(r)))

    def cache(self, service: Optional[str] = None) -> "AsyncCache":
        return AsyncCache(self, _Requests(service))

    def db(self, service: Optional[str] = None) -> "AsyncDb":
        return AsyncDb(self, _Requests(service))

    def queue(self, service: Optional[str] = None) -> "AsyncQueue":
        return AsyncQueue(self, _Requests(service))

    async def endpoints(self) -> dict:
        return (await self._do(_Request("GET", "endpoints", {})))["services"]

    async def aclose(self):
        await self._http.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()


class AsyncCache(Cache):
    async def set(self, key: str, value, ttl: Optional[int] = None) -> None:
        await self._c._do(self._r.set(key, value, ttl))

    async def get(self, key: str) -> Optional[bytes]:
        try:
            return base64.b64decode((await self._c._do(self._r.get(key)))["result"])
        except ThroomeError as e:
            if e.code == "not_found":
                return None
            raise

    async def delete(self, key: str) -> bool:
        return (await self._c._do(self._r.delete(key)))["result"] > 0

    async def command(self, *args) -> Any:
        return (await self._c._do(self._r.command(args)))["result"]

    async def pipeline(self, commands: Sequence[Sequence]) -> list:
        return await self._c._do(self._r.pipeline(commands))


class AsyncDb(Db):
    async def query(self, sql: str, params: Sequence = ()) -> Rows:
        return _rows(await self._c._do(self._r.query(sql, params)))

    async def execute(self, sql: str, params: Sequence = ()) -> int:
        return (await self.query(sql, params)).row_count or 0

    async def transaction(self, statements: Sequence) -> list:
        return [_rows(r) for r in (await self._c._do(self._r.transaction(statements)))["results"]]


class AsyncQueue(Queue):
    async def publish(self, topic: str, value, key=None, partition: Optional[int] = None) -> Published:
        d = await self._c._do(self._r.publish(topic, value, key, partition))
        return Published(d["partition_id"], d["offset"])

    async def read(self, topic: str, partition: int, offset: int = 0) -> list:
        return [_record(r) for r in (await self._c._do(self._r.read(topic, partition, offset)))["records"]]
