"""confluent-kafka (librdkafka) through Throome's shared Kafka listener over TLS, where the
server name names the cluster and the broker. Run with `*.DOMAIN` names resolving to
127.0.0.1 (the test gives this process a hosts file of its own).

Usage: confluent_sni.py PORT DOMAIN CAFILE CLUSTER NODE TOPIC
  Produces 10 records to TOPIC through `<cluster>.bootstrap.<domain>`, reads them back with a
  consumer group, and checks every broker the metadata names is `<cluster>.broker-<node>.
  <domain>` on PORT. Prints OK on success."""
import sys
import time

from confluent_kafka import Consumer, Producer

port, domain, cafile, cluster, node, topic = sys.argv[1:7]
common = {
    "bootstrap.servers": f"{cluster}.bootstrap.{domain}:{port}",
    "security.protocol": "SSL",
    "ssl.ca.location": cafile,
    # The certificate names localhost: the CA is checked, the host name is not.
    "ssl.endpoint.identification.algorithm": "none",
}
producer = Producer(common)
for i in range(10):
    producer.produce(topic, value=f"c{i}".encode())
assert producer.flush(60) == 0, "records left unsent"
brokers = producer.list_topics(timeout=30).brokers
assert brokers, "no brokers"
for b in brokers.values():
    assert (b.host, b.port) == (f"{cluster}.broker-{node}.{domain}", int(port)), b

consumer = Consumer({**common, "group.id": "cg", "auto.offset.reset": "earliest"})
consumer.subscribe([topic])
got, deadline = [], time.time() + 60
while len(got) < 10 and time.time() < deadline:
    m = consumer.poll(1.0)
    if m is not None and m.error() is None:
        got.append(m.value().decode())
consumer.close()
assert got == [f"c{i}" for i in range(10)], got
print("OK")
