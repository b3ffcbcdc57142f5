"""Kafka load for benches/kafka_proxy.sh, with confluent-kafka (librdkafka 2.16, C speed).
Produces N records of SIZE bytes to TOPIC (acks=all), then consumes them all from the
beginning; prints "produce_msgs_per_s consume_msgs_per_s". Bounded: 120 s per phase.
With env CPU_PID (a proxy's pid) it also prints the proxy's CPU time in each phase, in ns:
the sum of the first field of /proc/PID/task/*/schedstat (user + kernel, all threads).
Usage: kafka_load.py BOOTSTRAP TOPIC N SIZE"""
import glob
import os
import sys
import time


def cpu_ns():
    pid = os.environ.get("CPU_PID")
    if not pid:
        return 0
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except OSError:  # a thread that ended between the glob and the read
            pass
    return total


from confluent_kafka import Consumer, Producer

bootstrap, topic, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
LIMIT = 120
payload = b"x" * size

p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
              "batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000,
              "enable.idempotence": False})
cpu0 = cpu_ns()
start = time.time()
for i in range(n):
    while True:
        try:
            p.produce(topic, payload)
            break
        except BufferError:
            p.poll(0.01)
    if i % 10000 == 0:
        p.poll(0)
left = p.flush(LIMIT)
produce = n / (time.time() - start)
assert left == 0, f"{left} messages not delivered"
cpu1 = cpu_ns()

c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{topic}",
              "auto.offset.reset": "earliest", "enable.auto.commit": False,
              "fetch.max.bytes": 52_428_800,
              # tansu holds a fetch for the whole fetch.wait.max.ms (500 ms by default)
              # even when it has data, which caps every path at ~25k records/s.
              "fetch.wait.max.ms": 5, "max.partition.fetch.bytes": 10_485_760})
c.subscribe([topic])
got, start = 0, None
deadline = time.time() + LIMIT
while got < n and time.time() < deadline:
    for m in c.consume(num_messages=10000, timeout=1.0):
        if m.error() is None:
            if start is None:
                start = time.time()
            got += 1
consume = got / (time.time() - start) if start else 0
c.close()
cpu2 = cpu_ns()
assert got >= n, f"consumed {got} of {n}"
extra = f" {cpu1 - cpu0} {cpu2 - cpu1}" if os.environ.get("CPU_PID") else ""
print(f"{produce:.0f} {consume:.0f}{extra}")
