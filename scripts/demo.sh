#!/usr/bin/env bash
# A working gateway in one command: a local redis-server, PostgreSQL and the tansu Kafka
# broker in a temp dir (installed by scripts/setup.sh), a gateway with one cluster, `demo`,
# whose cache, database and queue all listen, and the commands to connect. Ctrl-C stops
# everything and removes the temp dir.
#
#   scripts/demo.sh                 # builds target/release/throome if needed
#   THROOME_BIN=path/to/throome scripts/demo.sh
#   DEMO_ADMIN_PORT=9000            # the admin API and status page (default 9000)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

bin="${THROOME_BIN:-$root/target/release/throome}"
if [ ! -x "$bin" ]; then
  echo "demo: building the gateway (cargo build --release)" >&2
  (cd "$root" && cargo build --release --bin throome >&2)
fi
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
tansu="${THROOME_TANSU:-${CARGO_HOME:-$HOME/.cargo}/bin/tansu}"
for need in redis-server "$pg_bin/initdb" "$tansu"; do
  command -v "$need" >/dev/null || { echo "demo: $need not found: run scripts/setup.sh" >&2; exit 1; }
done

dir="$(mktemp -d /tmp/throome-demo.XXXXXX)"
chmod 711 "$dir"   # the postgres user runs PostgreSQL under it
pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
  echo "demo: stopped" >&2
}
trap stop INT TERM EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 1 150); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "demo: $2 did not start on port $1" >&2
  exit 1
}

redis_port=$(free_port); pg_port=$(free_port); kafka_port=$(free_port)
cache=$(free_port); db=$(free_port); queue=$(free_port); brokers=$(( $(free_port) - 1 ))
admin="${DEMO_ADMIN_PORT:-9000}"
token="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"

# Backends: each logs to the temp dir.
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
  >"$dir/redis.log" 2>&1 &
pids+=($!)
mkdir "$dir/pg"
as_pg=()
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir/pg"; as_pg=(runuser -u postgres --); fi
"${as_pg[@]}" "$pg_bin/initdb" -D "$dir/pg/data" -U postgres -A trust --no-sync >/dev/null
"${as_pg[@]}" "$pg_bin/postgres" -D "$dir/pg/data" -p "$pg_port" -c listen_addresses=127.0.0.1 \
  -k "$dir/pg" >"$dir/postgres.log" 2>&1 &
pids+=($!)
RUST_LOG=error "$tansu" broker --listener-url "tcp://127.0.0.1:$kafka_port" \
  --advertised-listener-url "tcp://127.0.0.1:$kafka_port" --storage-engine memory://tansu/ \
  >"$dir/tansu.log" 2>&1 &
pids+=($!)
wait_port "$redis_port" redis-server
wait_port "$pg_port" PostgreSQL
wait_port "$kafka_port" tansu
"$tansu" topic create --broker "tcp://127.0.0.1:$kafka_port" --partitions 1 events >/dev/null 2>&1 || true

# The gateway: one cluster whose three services listen.
mkdir -p "$dir/clusters/demo"
cat >"$dir/throome.yaml" <<EOF
server: { host: 127.0.0.1, port: $admin }
gateway: { clusters_dir: clusters, watch: true, drain_timeout: 2 }
logging: { level: info }
EOF
cat >"$dir/clusters/demo/config.yaml" <<EOF
cluster_id: demo
name: Throome demo
health: { interval: 2, unhealthy_threshold: 1 }
services:
  cache:
    type: redis
    listen: "127.0.0.1:$cache"
    host: 127.0.0.1
    port: $redis_port
  db:
    type: postgres
    listen: "127.0.0.1:$db"
    host: 127.0.0.1
    port: $pg_port
    username: postgres
    database: postgres
    auth: { users: { demo: demo } }
  queue:
    type: kafka
    listen: "127.0.0.1:$queue"
    broker_port_base: $brokers
    host: 127.0.0.1
    port: $kafka_port
api_tokens:
  - { name: demo, token: "$token" }
EOF
"$bin" --config "$dir/throome.yaml" >"$dir/throome.log" 2>&1 &
pids+=($!)
wait_port "$admin" throome
for _ in $(seq 1 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$admin/ready', timeout=1)" 2>/dev/null && break
  sleep 0.2
done

cat <<EOF
Throome demo: cluster "demo" (logs and data in $dir)

  cache     redis-cli -p $cache
  database  psql "postgresql://demo:demo@127.0.0.1:$db/postgres"
  queue     kcat -b 127.0.0.1:$queue -L
  SDK       Client("http://127.0.0.1:$admin", "demo", token="$token")
  status    http://127.0.0.1:$admin/
  metrics   http://127.0.0.1:$admin/metrics

demo: ready (Ctrl-C stops everything)
EOF
wait "${pids[@]}"
