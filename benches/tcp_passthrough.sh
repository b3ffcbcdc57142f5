#!/usr/bin/env bash
# Load bench for the L4 path: redis-benchmark straight at redis-server, through Throome
# (`type: tcp`) and through HAProxy in TCP mode (the peer for an L4 pass-through), in one run
# on loopback. Prints requests/s and the ratio to direct. Bounded: fixed request counts.
#   benches/tcp_passthrough.sh [requests=200000] [clients=50] [pipeline=16]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}; C=${2:-50}; P=${3:-16}

command -v redis-benchmark >/dev/null || scripts/setup.sh
cargo build --release --quiet --bin throome

. benches/lib.sh

redis_port=$(free_port); throome_port=$(free_port); haproxy_port=$(free_port); admin_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null & pids+=($!)

mkdir -p "$work/clusters/bench"
printf 'server: {port: %s}\ngateway: {clusters_dir: clusters}\nlogging: {level: warn}\n' "$admin_port" > "$work/throome.yaml"
printf 'cluster_id: bench\nname: bench\nservices:\n  kv:\n    type: tcp\n    listen: "127.0.0.1:%s"\n    host: 127.0.0.1\n    port: %s\n' \
  "$throome_port" "$redis_port" > "$work/clusters/bench/config.yaml"
target/release/throome --config "$work/throome.yaml" 2>"$work/throome.log" & pids+=($!)

haproxy_tcp "$haproxy_port" "$redis_port"; pids+=($!)

for port in "$redis_port" "$throome_port" "$haproxy_port"; do
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  # redis-benchmark spins forever on a refused port: never start it against a dead one.
  redis-cli -p "$port" ping >/dev/null 2>&1 || { echo "nothing answers on port $port" >&2; exit 1; }
done

rps() { # port test
  timeout 300 redis-benchmark -p "$1" -t "$2" -n "$N" -c "$C" -P "$P" -q --csv 2>/dev/null | tail -1 | cut -d, -f2 | tr -d '"'
}
printf '%-6s %12s %12s %12s %8s %8s\n' test direct throome haproxy thr/dir hap/dir
for t in set get; do
  d=$(rps "$redis_port" $t); th=$(rps "$throome_port" $t); h=$(rps "$haproxy_port" $t)
  printf '%-6s %12.0f %12.0f %12.0f %8.2f %8.2f\n' "$t" "$d" "$th" "$h" \
    "$(echo "$th / $d" | bc -l)" "$(echo "$h / $d" | bc -l)"
done
echo "(requests=$N clients=$C pipeline=$P; $(nproc) cores; all on loopback)"
