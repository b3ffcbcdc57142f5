"""kafka-python through Throome's shared Kafka listener, where the TLS server name names the
cluster and the broker (`<cluster>.bootstrap.<domain>`, `<cluster>.broker-<node>.<domain>`).
Names under DOMAIN resolve to 127.0.0.1 here, as a wildcard DNS record would make them.

Usage: kafka_sni.py PORT DOMAIN CAFILE CLUSTER NODE TOPIC OTHER_CLUSTER
  The first client bootstraps from the broker's name itself (the gateway has not seen this
  cluster's metadata yet), produces 20 records; a consumer group reads them back through
  the bootstrap name; every broker it learns of is named in CLUSTER on PORT; a client of
  OTHER_CLUSTER does not see TOPIC. Prints OK on success."""
import socket
import sys

port, domain, cafile, cluster, node, topic, other = sys.argv[1:8]
port = int(port)
_resolve = socket.getaddrinfo


def resolve(host, *args, **kwargs):
    if isinstance(host, str) and host.endswith("." + domain):
        host = "127.0.0.1"
    return _resolve(host, *args, **kwargs)


socket.getaddrinfo = resolve

from kafka import KafkaConsumer, KafkaProducer  # noqa: E402

# The certificate names localhost: the CA is checked, the host name is not.
TLS = {"security_protocol": "SSL", "ssl_cafile": cafile, "ssl_check_hostname": False}
broker_name = f"{cluster}.broker-{node}.{domain}:{port}"
bootstrap = f"{cluster}.bootstrap.{domain}:{port}"

producer = KafkaProducer(bootstrap_servers=broker_name, acks="all", **TLS)
for i in range(20):
    producer.send(topic, value=f"m{i}".encode())
producer.flush(timeout=60)
producer.close()

consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="g",
                         auto_offset_reset="earliest", consumer_timeout_ms=5000, **TLS)
got = [m.value.decode() for m in consumer]
assert got == [f"m{i}" for i in range(20)], got
brokers = consumer._client.cluster.brokers()
assert brokers, "no brokers learned"
for b in brokers:
    assert (b.host, b.port) == (f"{cluster}.broker-{node}.{domain}", port), b
consumer.close()

stranger = KafkaConsumer(bootstrap_servers=f"{other}.bootstrap.{domain}:{port}", **TLS)
assert topic not in stranger.topics(), stranger.topics()
stranger.close()
print("OK")
