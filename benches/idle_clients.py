"""Opens N idle client connections to a proxy and holds them, for benches/idle_connections.sh.

Usage: idle_clients.py PROTOCOL PORT N
  PROTOCOL redis: each connection sends GET of a missing key and reads its nil reply
      (twemproxy answers no PING).
  PROTOCOL postgres: each logs in (user postgres, trust) and reads to ReadyForQuery.
Prints READY once all are open and answered, then waits for a line on stdin, closes them
all, prints CLOSED, and waits for another line before exiting. Bounded: 120 s to open."""
import asyncio
import struct
import sys


async def redis_hello(reader, writer):
    writer.write(b"*2\r\n$3\r\nGET\r\n$4\r\nidle\r\n")
    await writer.drain()
    assert (await reader.readline()) == b"$-1\r\n"


async def postgres_hello(reader, writer):
    body = struct.pack(">I", 196608) + b"user\0postgres\0database\0postgres\0\0"
    writer.write(struct.pack(">I", len(body) + 4) + body)
    await writer.drain()
    while True:
        tag = await reader.readexactly(1)
        (size,) = struct.unpack(">I", await reader.readexactly(4))
        await reader.readexactly(size - 4)
        if tag == b"Z":
            return
        assert tag != b"E", "login refused"


async def main():
    protocol, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    hello = {"redis": redis_hello, "postgres": postgres_hello}[protocol]
    conns = []
    sem = asyncio.Semaphore(200)

    async def one():
        async with sem:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await hello(reader, writer)
            conns.append(writer)

    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), 120)
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    for w in conns:
        w.close()
    print("CLOSED", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)


asyncio.run(main())
