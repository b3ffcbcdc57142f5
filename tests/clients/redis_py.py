"""redis-py against a Throome Redis service, RESP2 and RESP3: commands, pipelines,
transactions, pub/sub. Prints OK on success; any failure raises. Usage: redis_py.py PORT"""
import sys
import time

import redis

port = int(sys.argv[1])
for protocol in (2, 3):
    r = redis.Redis(host="127.0.0.1", port=port, protocol=protocol, decode_responses=True)
    assert r.ping()
    r.set(f"py:{protocol}", "value")
    assert r.get(f"py:{protocol}") == "value"
    r.hset("py:h", mapping={"a": "1", "b": "2"})
    assert r.hgetall("py:h") == {"a": "1", "b": "2"}
    pipe = r.pipeline(transaction=False)
    for i in range(100):
        pipe.incr("py:counter")
    assert pipe.execute()[-1] % 100 == 0
    tx = r.pipeline(transaction=True)
    tx.set("py:tx", "1").incr("py:tx")
    assert tx.execute() == [True, 2]
    p = r.pubsub()
    p.subscribe("py:chan")
    deadline = time.time() + 10
    assert p.get_message(timeout=5)["type"] == "subscribe"
    assert r.publish("py:chan", "hello") == 1
    message = None
    while message is None and time.time() < deadline:
        message = p.get_message(timeout=1, ignore_subscribe_messages=True)
    assert message is not None and message["data"] == "hello", message
    p.close()
    # Every field redis-py's parser reads (it raised KeyError on the proxy's short line).
    info = r.client_info()
    assert info["cmd"] == "client|info" and info["db"] == 0 and "tot-mem" in info, info
    # A pipeline written whole before any reply is read (it stalled past 4096 requests).
    pipe = r.pipeline(transaction=False)
    for i in range(20000):
        pipe.incr(f"py:big:{protocol}")
        pipe.get(f"py:big:{protocol}")
    assert pipe.execute()[-2:] == [20000, "20000"]
    r.close()
print("OK")
