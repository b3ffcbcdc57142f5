#!/usr/bin/env bash
# Proxy CPU per request, Throome beside the peer users compare it with, in one run on loopback
# with the same backend: twemproxy (Redis: redis-benchmark -c 50 GET/SET, unpipelined and
# -P 16), PgBouncer (PostgreSQL: pgbench -S -c 32 -j 2, simple/extended/prepared, transaction
# pooling, same pool size) and HAProxy in TCP mode, a bare relay (every section; for Kafka the
# only peer: produce and fetch of 1 KiB records with confluent-kafka, CPU per MB).
# A proxy's CPU is the sum of the first field of /proc/PID/task/*/schedstat (ns on CPU, user +
# kernel, all threads) before and after a fixed run, divided by what the run completed.
# Medians of ROUNDS interleaved rounds (the proxies take turns at going first). Throughput is
# not the figure: on a small machine the load generator decides it.
#   benches/cpu_per_request.sh [rounds=3]
# Env: REDIS_N (requests per run, default 100000), PG_T (transactions per pgbench client,
# default 1000), KAFKA_N (records per run, default 50000), WORKERS (Throome's
# gateway.worker_threads, default 1 like its single-threaded peers), SECTIONS (default
# "redis postgres kafka").
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}; REDIS_N=${REDIS_N:-100000}; PG_T=${PG_T:-1000}; KAFKA_N=${KAFKA_N:-50000}
SECTIONS=${SECTIONS:-redis postgres kafka}
. benches/lib.sh
bench_setup nutcracker pgbouncer haproxy
TANSU="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
cpu() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'; }
med() { cat "$1" 2>/dev/null | median; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; }
# One table row: label, then "name value" pairs; the first value is Throome's, the ratio is
# Throome's over the second (the peer).
row() {
  local label=$1; shift
  awk -v l="$label" -v a="$2" -v b="$4" -v c="${6:-}" 'function f(v) { return v == "" ? "-" : sprintf("%.2f", v) }
    BEGIN { printf "%-28s %10s %10s %10s %8s\n", l, f(a), f(b), f(c), (b > 0 ? sprintf("%.2f", a / b) : "n/a") }'
}
header() { printf '%-28s %10s %10s %10s %8s\n' "$1" throome "$2" "${3:-haproxy}" ratio; }
# start_throome NAME YAML_SERVICES: a gateway in $work/NAME; prints its pid.
start_throome() {
  mkdir -p "$work/$1/clusters/b"
  printf 'server: {port: %s}\ngateway: {clusters_dir: clusters, worker_threads: %s, max_connections: 2000}\nlogging: {level: warn}\n' \
    "$(free_port)" "${WORKERS:-1}" > "$work/$1/throome.yaml"
  printf 'cluster_id: b\nname: b\nservices:\n%s' "$2" > "$work/$1/clusters/b/config.yaml"
  (cd "$work/$1" && exec "$OLDPWD/target/release/throome" --config throome.yaml >/dev/null 2>throome.log) &
  echo $!
}

redis_section() {
  local redis thr twem hap
  redis=$(free_port); thr=$(free_port); twem=$(free_port); hap=$(free_port)
  redis-server --port "$redis" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null & pids+=($!)
  local tpid; tpid=$(start_throome redis "$(printf '  kv:\n    type: redis\n    listen: "127.0.0.1:%s"\n    host: 127.0.0.1\n    port: %s\n' "$thr" "$redis")")
  pids+=("$tpid")
  printf 'b:\n  listen: 127.0.0.1:%s\n  redis: true\n  servers:\n    - 127.0.0.1:%s:1\n' "$twem" "$redis" > "$work/nutcracker.yml"
  nutcracker -c "$work/nutcracker.yml" -s "$(free_port)" -o "$work/nutcracker.log" & local tw=$!; pids+=($tw)
  haproxy_tcp "$hap" "$redis" 1; local hp=$!; pids+=($hp)
  for p in "$redis" "$thr" "$twem" "$hap"; do
    for _ in $(seq 100); do redis-cli -p "$p" set k 1 >/dev/null 2>&1 && break; sleep 0.1; done
  done
  local names=(throome twemproxy haproxy) ports=("$thr" "$twem" "$hap") procs=("$tpid" "$tw" "$hp")
  echo; header "redis-benchmark -c 50 (µs/req)" twemproxy
  for P in 1 16; do for t in get set; do
    for r in $(seq "$ROUNDS"); do
      for k in $(order "$r" 3); do
        local before after
        before=$(cpu "${procs[$k]}")
        timeout 300 redis-benchmark -p "${ports[$k]}" -t "$t" -n "$REDIS_N" -c 50 -P "$P" -q >/dev/null 2>&1 || true
        after=$(cpu "${procs[$k]}")
        awk -v d=$((after - before)) -v n="$REDIS_N" 'BEGIN {printf "%.3f\n", d / n / 1000}' >> "$work/redis.$t.$P.${names[$k]}"
      done
    done
    row "$t -P $P" throome "$(med "$work/redis.$t.$P.throome")" twemproxy "$(med "$work/redis.$t.$P.twemproxy")" \
      haproxy "$(med "$work/redis.$t.$P.haproxy")"
  done; done
}

postgres_section() {
  local pg thr bnc hap
  pg=$(free_port); thr=$(free_port); bnc=$(free_port); hap=$(free_port)
  start_postgres "$pg"
  local tpid; tpid=$(start_throome pg "$(printf '  db:\n    type: postgres\n    listen: "127.0.0.1:%s"\n    pool_size: 8\n    username: postgres\n    host: 127.0.0.1\n    port: %s\n' "$thr" "$pg")")
  pids+=("$tpid")
  printf '[databases]\npostgres = host=127.0.0.1 port=%s user=postgres\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = %s\nauth_type = trust\nauth_file = %s/userlist.txt\npool_mode = transaction\ndefault_pool_size = 8\nmax_client_conn = 200\nlogfile = %s/pgbouncer.log\npidfile = %s/pgbouncer.pid\nunix_socket_dir =\n' \
    "$pg" "$bnc" "$work" "$work" "$work" > "$work/pgbouncer.ini"
  echo '"postgres" ""' > "$work/userlist.txt"
  chown postgres "$work/pgbouncer.ini" "$work/userlist.txt" 2>/dev/null || true
  pg_as "pgbouncer -d $work/pgbouncer.ini" >/dev/null 2>&1
  haproxy_tcp "$hap" "$pg" 1; local hp=$!; pids+=($hp)
  for p in "$thr" "$bnc" "$hap"; do
    for _ in $(seq 100); do "$BIN/psql" -h 127.0.0.1 -p "$p" -U postgres -Atc 'select 1' postgres >/dev/null 2>&1 && break; sleep 0.1; done
  done
  "$BIN/pgbench" -i -s 10 -q -h 127.0.0.1 -p "$pg" -U postgres postgres >/dev/null 2>&1
  local bpid; bpid=$(cat "$work/pgbouncer.pid")
  local names=(throome pgbouncer haproxy) ports=("$thr" "$bnc" "$hap") procs=("$tpid" "$bpid" "$hp")
  echo; header "pgbench -S -c 32 -j 2 (µs/tx)" pgbouncer
  for mode in simple extended prepared; do
    for r in $(seq "$ROUNDS"); do
      for k in $(order "$r" 3); do
        local before after out done_tx
        before=$(cpu "${procs[$k]}")
        out=$(timeout 300 "$BIN/pgbench" -n -S -M "$mode" -c 32 -j 2 -t "$PG_T" -h 127.0.0.1 -p "${ports[$k]}" -U postgres postgres 2>&1 || true)
        after=$(cpu "${procs[$k]}")
        # Transactions the run completed. A run whose clients aborted (PgBouncer 1.18's do
        # with -M prepared: it does not track protocol-level prepared statements) is no figure.
        done_tx=$(awk -F'[ /]+' '/actually processed/ {print $(NF-1)}' <<<"$out")
        if grep -q aborted <<<"$out"; then
          echo "  ${names[$k]} $mode round $r: clients aborted after $done_tx transactions, no figure" >&2; continue
        fi
        awk -v d=$((after - before)) -v n="${done_tx:-0}" 'BEGIN {printf "%.3f\n", (n > 0 ? d / n / 1000 : 0)}' >> "$work/pg.$mode.${names[$k]}"
      done
    done
    row "$mode" throome "$(med "$work/pg.$mode.throome")" pgbouncer "$(med "$work/pg.$mode.pgbouncer")" \
      haproxy "$(med "$work/pg.$mode.haproxy")"
  done
}

# Kafka: a fresh tansu broker per run (it keeps records in memory and slows as it fills),
# advertising the proxy's address so every produce and fetch goes through the proxy.
kafka_section() {
  local broker thr hap base
  broker=$(free_port); thr=$(free_port); hap=$(free_port); base=$(free_port)
  echo; header "kafka 1 KiB records (µs/MB)" haproxy -
  for r in $(seq "$ROUNDS"); do
    for k in $(order "$r" 2); do
      local stack=() proxy adv port
      if [ "$k" = 0 ]; then
        proxy=$(start_throome kafka "$(printf '  events:\n    type: kafka\n    listen: "127.0.0.1:%s"\n    broker_port_base: %s\n    host: 127.0.0.1\n    port: %s\n' "$thr" "$((base - 111))" "$broker")")
        adv=$broker; port=$thr
      else
        haproxy_tcp "$hap" "$broker" 1; proxy=$!; adv=$hap; port=$hap
      fi
      RUST_LOG=error "$TANSU" broker --listener-url "tcp://127.0.0.1:$broker" --advertised-listener-url "tcp://127.0.0.1:$adv" \
        --storage-engine memory://tansu/ >>"$work/tansu.log" 2>&1 & stack=($! "$proxy"); pids+=("${stack[@]}")
      wait_port "$broker"; wait_port "$port"
      "$TANSU" topic create --broker "tcp://127.0.0.1:$broker" --partitions 1 "t$r" >/dev/null 2>&1
      local res; res=$(CPU_PID=$proxy .venv/bin/python benches/kafka_load.py "127.0.0.1:$port" "t$r" "$KAFKA_N" 1024) || res="0 0 0 0"
      kill "${stack[@]}" 2>/dev/null || true; wait "${stack[@]}" 2>/dev/null || true
      local name; name=$([ "$k" = 0 ] && echo throome || echo haproxy)
      read -r _ _ pc cc <<<"$res"
      awk -v p="$pc" -v c="$cc" -v n="$KAFKA_N" 'BEGIN {mb = n * 1024 / 1e6; printf "%.1f\n%.1f\n", p / mb / 1000, c / mb / 1000}' |
        { read -r a; read -r b; echo "$a" >> "$work/kafka.produce.$name"; echo "$b" >> "$work/kafka.fetch.$name"; }
    done
  done
  for phase in produce fetch; do
    row "$phase" throome "$(med "$work/kafka.$phase.throome")" haproxy "$(med "$work/kafka.$phase.haproxy")"
  done
}

echo "proxy CPU per request: medians of $ROUNDS rounds; Throome worker_threads ${WORKERS:-1}; $(nproc) cores; ratio = throome / peer"
for s in $SECTIONS; do "${s}_section"; done
