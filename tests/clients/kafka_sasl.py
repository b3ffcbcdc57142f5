"""SASL/SCRAM through Throome with kafka-python 3 and with confluent-kafka (librdkafka 2.16):
only the proxy's bootstrap address is given.

Usage:
  kafka_sasl.py roundtrip BOOTSTRAP TOPIC GROUP MECHANISM USER PASSWORD N
      kafka-python authenticates on every connection (bootstrap, broker port, coordinator),
      produces N messages and consumes them with consumer group GROUP.
  kafka_sasl.py rd-roundtrip BOOTSTRAP TOPIC GROUP MECHANISM USER PASSWORD N
      The same with confluent-kafka.
  kafka_sasl.py denied BOOTSTRAP MECHANISM USER PASSWORD
      The broker must turn the credentials down: librdkafka reports an authentication
      error within the deadline (no hang). (kafka-python 3.0.12 cannot read tansu's
      "e=invalid-proof" answer, drops the connection and retries until its bootstrap times
      out, through the proxy or not, so it is not the judge here.)
Prints OK on success."""
import sys
import time

from confluent_kafka import Consumer, KafkaError as RdKafkaError, Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, KafkaProducer

DEADLINE = 60  # seconds any wait below may take


def sasl(bootstrap, mechanism, user, password):
    return dict(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_plain_username=user,
        sasl_plain_password=password,
    )


def roundtrip(bootstrap, topic, group, mechanism, user, password, n):
    config = sasl(bootstrap, mechanism, user, password)
    producer = KafkaProducer(acks="all", linger_ms=5, **config)
    for i in range(n):
        producer.send(topic, value=f"secret-{i}".encode())
    producer.flush(timeout=DEADLINE)
    producer.close()

    consumer = KafkaConsumer(
        topic, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False, **config
    )
    got = set()
    start = time.time()
    while len(got) < n and time.time() - start < DEADLINE:
        for records in consumer.poll(timeout_ms=500).values():
            got.update(r.value.decode() for r in records)
    consumer.commit()
    consumer.close()
    assert got == {f"secret-{i}" for i in range(n)}, f"got {len(got)} of {n}"


def rd_sasl(bootstrap, mechanism, user, password, **extra):
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
        **extra,
    }


def rd_roundtrip(bootstrap, topic, group, mechanism, user, password, n):
    producer = Producer(rd_sasl(bootstrap, mechanism, user, password, acks="all"))
    for i in range(n):
        producer.produce(topic, f"rd-{i}".encode())
    assert producer.flush(DEADLINE) == 0, "not all delivered"

    config = rd_sasl(bootstrap, mechanism, user, password, **{
        "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer = Consumer(config)
    consumer.subscribe([topic])
    got = set()
    start = time.time()
    while len(got) < n and time.time() - start < DEADLINE:
        for m in consumer.consume(num_messages=1000, timeout=0.5):
            if m.error() is None and m.value().startswith(b"rd-"):
                got.add(m.value().decode())
    consumer.commit(asynchronous=False)
    consumer.close()
    assert got == {f"rd-{i}" for i in range(n)}, f"got {len(got)} of {n}"


def denied(bootstrap, mechanism, user, password):
    start = time.time()
    errors = []
    admin = AdminClient(rd_sasl(bootstrap, mechanism, user, password, error_cb=errors.append))
    while time.time() - start < DEADLINE and not any(
            e.code() == RdKafkaError._AUTHENTICATION for e in errors):
        admin.poll(0.2)
    assert any(e.code() == RdKafkaError._AUTHENTICATION for e in errors), errors


if __name__ == "__main__":
    mode, bootstrap = sys.argv[1], sys.argv[2]
    if mode == "roundtrip":
        roundtrip(bootstrap, *sys.argv[3:8], int(sys.argv[8]))
    elif mode == "rd-roundtrip":
        rd_roundtrip(bootstrap, *sys.argv[3:8], int(sys.argv[8]))
    elif mode == "denied":
        denied(bootstrap, *sys.argv[3:6])
    else:
        sys.exit(f"unknown mode {mode}")
    print("OK")
