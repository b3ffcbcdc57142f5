"""kafka-python 3 through Throome: only the proxy's bootstrap address is given.

Usage:
  kafka_client.py roundtrip BOOTSTRAP TOPIC GROUP N ALLOWED_PORTS
      Produce N messages (acks=all), consume them with consumer group GROUP (JoinGroup,
      SyncGroup, Heartbeat, OffsetCommit through the rewritten coordinator), commit, and
      check a second member of the group starts after the committed offsets. Every broker
      the client learns of must be on one of ALLOWED_PORTS (comma-separated).
  kafka_client.py big BOOTSTRAP TOPIC N SIZE
      Produce N records of SIZE random bytes each (one batch per record, so every Produce
      request and most Fetch answers are bigger than the proxy holds whole), read them all
      back and compare their SHA-256 digests in order.
  kafka_client.py admin BOOTSTRAP TOPIC
      Create TOPIC with an admin client, see it listed, delete it, see it gone.
  kafka_client.py survive BOOTSTRAP TOPIC
      Produce "before", print READY, wait for a line on stdin (the broker is restarted
      meanwhile, empty), then with the same producer produce "after" and read it back.
Prints OK on success."""
import hashlib
import os
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata, TopicPartition

DEADLINE = 60  # seconds any wait below may take
# With KAFKA_SSL_CAFILE set, roundtrip's clients speak TLS to the proxy and verify it
# against that CA (and the host name they connect to).
TLS = (
    {"security_protocol": "SSL", "ssl_cafile": os.environ["KAFKA_SSL_CAFILE"]}
    if os.environ.get("KAFKA_SSL_CAFILE")
    else {}
)


def check_brokers(client, allowed):
    cluster = client._metadata if hasattr(client, "_metadata") else client._client.cluster
    seen = cluster.brokers()
    assert seen, "no brokers in metadata"
    for b in seen:
        assert b.port in allowed, f"broker {b} is not a proxy port {allowed}"


def roundtrip(bootstrap, topic, group, n, allowed):
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **TLS)
    for i in range(n):
        producer.send(topic, key=str(i).encode(), value=f"message-{i}".encode())
    producer.flush(timeout=DEADLINE)
    check_brokers(producer, allowed)
    producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=2000,
        **TLS,
    )
    got = set()
    start = time.time()
    while len(got) < n and time.time() - start < DEADLINE:
        for records in consumer.poll(timeout_ms=500).values():
            got.update(r.value.decode() for r in records)
    assert got == {f"message-{i}" for i in range(n)}, f"got {len(got)} of {n}"
    check_brokers(consumer, allowed)
    consumer.commit()
    committed = {
        tp: consumer.committed(tp) for tp in consumer.assignment()
    }
    # The topic is new, so the committed offsets add up to N. (tansu answers ListOffsets
    # "latest" with 1 per partition, directly as through the proxy, so end_offsets is no help.)
    assert sum(o or 0 for o in committed.values()) == n, committed
    consumer.close()

    # A new member of the same group resumes after the committed offsets: nothing left.
    again = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **TLS,
    )
    left = []
    start = time.time()
    while not again.assignment() and time.time() - start < DEADLINE:
        for records in again.poll(timeout_ms=500).values():
            left.extend(records)
    for records in again.poll(timeout_ms=1000).values():
        left.extend(records)
    assert again.assignment(), "second member got no partitions"
    assert not left, f"{len(left)} records read again after commit"
    again.close()


def big(bootstrap, topic, n, size):
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=0, max_request_size=4 * size,
        batch_size=size * 2,
    )
    sent = []
    for _ in range(n):
        value = os.urandom(size)
        sent.append(hashlib.sha256(value).hexdigest())
        producer.send(topic, value)
    producer.flush(timeout=DEADLINE)
    producer.close()
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        fetch_max_bytes=8 * size, max_partition_fetch_bytes=8 * size,
    )
    got = []
    start = time.time()
    while len(got) < n and time.time() - start < DEADLINE:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(hashlib.sha256(r.value).hexdigest() for r in records)
    consumer.close()
    assert got == sent, f"{len(got)} of {n} records back, or changed"


def admin(bootstrap, topic):
    client = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
    client.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    start = time.time()
    while topic not in client.list_topics() and time.time() - start < DEADLINE:
        time.sleep(0.2)
    assert topic in client.list_topics(), "created topic not listed"
    client.delete_topics([topic])
    start = time.time()
    while topic in client.list_topics() and time.time() - start < DEADLINE:
        time.sleep(0.2)
    assert topic not in client.list_topics(), "deleted topic still listed"
    client.close()


def survive(bootstrap, topic):
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", retries=50, retry_backoff_ms=200,
        reconnect_backoff_max_ms=1000, max_block_ms=DEADLINE * 1000,
        # The restarted broker keeps nothing (memory storage), not even producer ids.
        enable_idempotence=False,
    )
    producer.send(topic, b"before").get(timeout=DEADLINE)
    print("READY", flush=True)
    sys.stdin.readline()
    producer.send(topic, b"after").get(timeout=DEADLINE)
    producer.close()
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        consumer_timeout_ms=DEADLINE * 1000,
    )
    got = next(iter(consumer)).value
    assert got == b"after", got
    consumer.close()


if __name__ == "__main__":
    mode, bootstrap = sys.argv[1], sys.argv[2]
    if mode == "roundtrip":
        allowed = {int(p) for p in sys.argv[6].split(",")}
        roundtrip(bootstrap, sys.argv[3], sys.argv[4], int(sys.argv[5]), allowed)
    elif mode == "survive":
        survive(bootstrap, sys.argv[3])
    elif mode == "big":
        big(bootstrap, sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif mode == "admin":
        admin(bootstrap, sys.argv[3])
    else:
        sys.exit(f"unknown mode {mode}")
    print("OK")
