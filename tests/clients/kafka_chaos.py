"""confluent-kafka (librdkafka) through Throome while the broker is killed and restarted.

Usage:
  kafka_chaos.py BOOTSTRAP TOPIC GROUP SECONDS
      Produce unique payloads (acks=all) for SECONDS, then consume the topic with consumer
      group GROUP. Every acknowledged payload must be consumed, and at the partition and
      offset its acknowledgement named (a reply handed to the wrong request would name
      another). Prints one JSON line: acked, lost, misattributed, failed (delivery errors),
      slowest_failure_ms (how long a failed delivery took to be reported)."""
import json
import sys
import time

from confluent_kafka import Consumer, Producer

DEADLINE = 40  # seconds the final flush and the consume may take each


def main():
    bootstrap, topic, group, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        "message.timeout.ms": 10000,
        "linger.ms": 5,
    })
    acked, failed, slowest = {}, 0, 0.0

    def report(err, msg):
        nonlocal failed, slowest
        payload = msg.value().decode()
        if err is None:
            acked[payload] = (msg.partition(), msg.offset())
        else:
            failed += 1
            sent = float(payload.split(":")[1])
            slowest = max(slowest, time.time() - sent)

    start, i = time.time(), 0
    while time.time() - start < seconds:
        i += 1
        payload = f"{i}:{time.time()}"
        try:
            producer.produce(topic, payload.encode(), callback=report)
        except BufferError:
            pass
        producer.poll(0.002)
    producer.flush(DEADLINE)

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    seen, misattributed = set(), 0
    by_offset = {where: payload for payload, where in acked.items()}
    # Reading back may take long on a loaded machine: it goes on while records keep coming
    # (at most three DEADLINEs); DEADLINE without a first record (joining the group), or a
    # stall of DEADLINE / 4 after one, ends it (what is unread is lost).
    started = last_progress = time.time()
    while (time.time() - started < 3 * DEADLINE
           and time.time() - last_progress < (DEADLINE / 4 if seen else DEADLINE)
           and not set(acked) <= seen):
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        payload = msg.value().decode()
        if payload not in seen:
            last_progress = time.time()
        seen.add(payload)
        # The record at an acknowledged offset must be the one that acknowledgement was for.
        owner = by_offset.get((msg.partition(), msg.offset()))
        if owner is not None and owner != payload:
            misattributed += 1
    consumer.close()
    lost = len(set(acked) - seen)
    print(json.dumps({
        "acked": len(acked), "lost": lost, "misattributed": misattributed,
        "failed": failed, "slowest_failure_ms": int(slowest * 1000),
    }))


main()
