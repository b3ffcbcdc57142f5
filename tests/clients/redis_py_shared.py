"""redis-py on Throome's shared Redis listener: the cluster named by the user name, RESP2
(AUTH) and RESP3 (HELLO 3 AUTH); commands, pipelines, transactions and pub/sub (a second
connection of the pool, logged in the same way) stay in the named cluster. Prints OK on
success; any failure raises. Usage: redis_py_shared.py PORT"""
import sys
import time

import redis

port = int(sys.argv[1])
for protocol in (2, 3):
    shop = redis.Redis(host="127.0.0.1", port=port, username="shop", password="",
                       protocol=protocol, decode_responses=True)
    blog = redis.Redis(host="127.0.0.1", port=port, username="default@blog", password="",
                       protocol=protocol, decode_responses=True)
    assert shop.ping() and blog.ping()
    shop.set("py:where", "shop")
    blog.set("py:where", "blog")
    assert shop.get("py:where") == "shop", shop.get("py:where")
    assert blog.get("py:where") == "blog"
    pipe = shop.pipeline(transaction=False)
    for i in range(50):
        pipe.incr("py:n")
    assert pipe.execute()[-1] % 50 == 0
    tx = blog.pipeline(transaction=True)
    tx.set("py:tx", "1").incr("py:tx")
    assert tx.execute() == [True, 2]
    p = shop.pubsub()
    p.subscribe("py:chan")
    assert p.get_message(timeout=5)["type"] == "subscribe"
    assert blog.publish("py:chan", "other cluster") == 0
    assert shop.publish("py:chan", "hello") == 1
    deadline, message = time.time() + 10, None
    while message is None and time.time() < deadline:
        message = p.get_message(timeout=1, ignore_subscribe_messages=True)
    assert message["data"] == "hello", message
    p.close()
    try:
        redis.Redis(host="127.0.0.1", port=port, username="nosuch", password="x",
                    protocol=protocol).ping()
        raise AssertionError("an unknown cluster was admitted")
    except redis.exceptions.AuthenticationError:
        pass
print("OK")
