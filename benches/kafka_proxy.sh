#!/usr/bin/env bash
# Kafka proxy bench: produce then consume N records of 1 KiB (confluent-kafka, librdkafka
# 2.16) straight at the tansu broker, through Throome (`type: kafka`) and through
# `tansu proxy`, on loopback. Prints
# the median records/s per path and the ratios Throome/direct and Throome/tansu-proxy.
# Every run gets a fresh broker (tansu keeps records in memory and slows as it fills) and the
# order of the paths rotates each round. Bounded: N records per run, 120 s per phase.
#   benches/kafka_proxy.sh [records=200000] [rounds=3]
# Env: WORKERS (gateway.worker_threads, default 1), FLOOR=1 adds HAProxy in TCP mode (one
# thread, no parsing): the relay floor, what merely being in the path costs. For that path the
# broker advertises HAProxy's address, so the client's fetches and produces go through it too.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}; ROUNDS=${2:-3}
scripts/setup.sh >/dev/null
.venv/bin/python -c 'import confluent_kafka' 2>/dev/null ||
  .venv/bin/pip install -q --disable-pip-version-check "confluent-kafka==2.16.1"
cargo build --release --quiet --bin throome
TANSU="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"

. benches/lib.sh
broker=$(free_port); thr=$(free_port); tproxy=$(free_port); admin=$(free_port); base=$(free_port); hap=$(free_port)
url() { echo "tcp://127.0.0.1:$1"; }
mkdir -p "$work/clusters/bench"
printf 'server: {port: %s}\ngateway: {clusters_dir: clusters, worker_threads: %s}\nlogging: {level: warn}\n' "$admin" "${WORKERS:-1}" > "$work/throome.yaml"
printf 'cluster_id: bench\nname: bench\nservices:\n  events:\n    type: kafka\n    listen: "127.0.0.1:%s"\n    broker_port_base: %s\n    host: 127.0.0.1\n    port: %s\n' \
  "$thr" "$((base - 111))" "$broker" > "$work/clusters/bench/config.yaml"

# tansu keeps every record in memory and slows down as it fills, so each run gets a fresh
# broker (and proxies in front of it); the order of the paths rotates every round.
start_stack() { # advertised_port
  stack=()
  RUST_LOG=error "$TANSU" broker --listener-url "$(url $broker)" --advertised-listener-url "$(url "$1")" \
    --storage-engine memory://tansu/ >>"$work/tansu.log" 2>&1 & stack+=($!)
  RUST_LOG=error "$TANSU" proxy --listener-url "$(url $tproxy)" --advertised-listener-url "$(url $tproxy)" \
    --origin-url "$(url $broker)" >>"$work/tproxy.log" 2>&1 & stack+=($!)
  (cd "$work" && exec "$OLDPWD/target/release/throome" --config throome.yaml 2>>throome.log) & stack+=($!)
  local ports=("$broker" "$tproxy" "$thr")
  if [ "${FLOOR:-0}" = 1 ]; then haproxy_tcp "$hap" "$broker" 1; stack+=($!); ports+=("$hap"); fi
  pids+=("${stack[@]}")
  for p in "${ports[@]}"; do
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
  done
}
stop_stack() {
  kill "${stack[@]}" 2>/dev/null || true
  wait "${stack[@]}" 2>/dev/null || true
}
run() { # name port round
  local topic="bench-$1-$3"
  if [ "$1" = haproxy_tcp ]; then start_stack "$hap"; else start_stack "$broker"; fi
  "$TANSU" topic create --broker "$(url $broker)" --partitions 1 "$topic" >/dev/null 2>&1
  local res
  res=$(.venv/bin/python benches/kafka_load.py "127.0.0.1:$2" "$topic" "$N" 1024) || res="0 0"
  stop_stack # before the result line goes out: the next run starts on the same ports
  echo "$res"
}
paths=("direct $broker" "throome $thr" "tansu_proxy $tproxy")
if [ "${FLOOR:-0}" = 1 ]; then paths+=("haproxy_tcp $hap"); fi
for r in $(seq "$ROUNDS"); do
  for k in $(order "$r" ${#paths[@]}); do
    set -- ${paths[$k]}
    read -r prod cons < <(run "$1" "$2" "$r")
    echo "round $r $1: produce $prod/s consume $cons/s"
    echo "$prod" >> "$work/$1.produce"; echo "$cons" >> "$work/$1.consume"
  done
done
for phase in produce consume; do
  d=$(median < "$work/direct.$phase"); t=$(median < "$work/throome.$phase"); p=$(median < "$work/tansu_proxy.$phase")
  echo "$phase (median records/s): direct $d  throome $t  tansu-proxy $p"
  awk -v d="$d" -v t="$t" -v p="$p" -v ph="$phase" 'BEGIN {
    printf "%s: throome/direct %.2f  throome/tansu-proxy %.2f\n", ph, (d>0?t/d:0), (p>0?t/p:0) }'
  if [ -f "$work/haproxy_tcp.$phase" ]; then
    h=$(median < "$work/haproxy_tcp.$phase")
    awk -v d="$d" -v t="$t" -v h="$h" -v ph="$phase" 'BEGIN {
      printf "%s relay floor: haproxy-tcp %d, haproxy-tcp/direct %.2f  throome/haproxy-tcp %.2f\n", ph, h, (d>0?h/d:0), (h>0?t/h:0) }'
  fi
done
