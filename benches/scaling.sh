#!/usr/bin/env bash
# Scaling over cores: Throome with `worker_threads: K` pinned (taskset) to K cores, and the
# load generators and backends pinned to the other cores, for K = 1, 2, 4, ... while at least
# one core is left for them; twemproxy and PgBouncer (single-threaded) pinned to one core
# beside the K = 1 row. Prints requests/s (redis-benchmark -c 50 GET, unpipelined and -P 16)
# and transactions/s (pgbench -S -c 32 -j 2, simple protocol) per K and the ratio to K = 1.
# On a 2-core machine only K = 1 runs; the script is ready for a bigger one.
#   benches/scaling.sh [seconds=10]
# Env: REDIS_N (requests per redis-benchmark run, default 200000), MAX_K (largest K).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}; REDIS_N=${REDIS_N:-200000}
CORES=$(nproc); MAX_K=${MAX_K:-$((CORES - 1))}
[ "$CORES" -ge 2 ] || { echo "needs at least 2 cores (one for Throome, one for the load)"; exit 1; }
. benches/lib.sh
bench_setup nutcracker pgbouncer
span() { if [ "$1" = "$2" ]; then echo "$1"; else echo "$1-$2"; fi; }

# Backends start on the last core; each K moves them (every thread, and the children
# PostgreSQL forks later) to the cores Throome does not use.
last=$((CORES - 1))
redis=$(free_port); pg=$(free_port); twem=$(free_port); bnc=$(free_port)
taskset -c "$last" redis-server --port "$redis" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null & redis_pid=$!; pids+=($redis_pid)
start_postgres "$pg" "taskset -c $last"
"$BIN/pgbench" -i -s 10 -q -h 127.0.0.1 -p "$pg" -U postgres postgres >/dev/null 2>&1
postmaster=$(head -1 "$work/pg/data/postmaster.pid")

redis_rps() { # port pipeline cpus
  # -q prints progress lines ending in \r before the result on the same line.
  taskset -c "$3" redis-benchmark -p "$1" -t get -n "$REDIS_N" -c 50 -P "$2" -q 2>/dev/null | tr '\r' '\n' |
    awk '/requests per second/ {print $2; f=1} END {if (!f) print 0}'
}
pg_tps() { # port cpus
  taskset -c "$2" "$BIN/pgbench" -n -S -c 32 -j 2 -T "$SECS" -h 127.0.0.1 -p "$1" -U postgres postgres 2>/dev/null |
    awk '/^tps/ {print $3; f=1} END {if (!f) print 0}'
}
row() { printf '%-26s %12.0f %12.0f %12.0f\n' "$@"; }
printf '%-26s %12s %12s %12s\n' "proxy (cores)" "GET rps" "GET -P16 rps" "pgbench tps"

for ((k = 1; k <= MAX_K; k *= 2)); do
  mine=$(span 0 $((k - 1))); others=$(span "$k" "$last")
  taskset -a -cp "$others" "$redis_pid" >/dev/null; taskset -a -cp "$others" "$postmaster" >/dev/null
  thr=$(free_port); pgthr=$(free_port); mkdir -p "$work/k$k/clusters/b"
  printf 'server: {port: %s}\ngateway: {clusters_dir: clusters, worker_threads: %s}\nlogging: {level: warn}\n' "$(free_port)" "$k" > "$work/k$k/throome.yaml"
  printf 'cluster_id: b\nname: b\nservices:\n  kv:\n    type: redis\n    listen: "127.0.0.1:%s"\n    host: 127.0.0.1\n    port: %s\n  db:\n    type: postgres\n    listen: "127.0.0.1:%s"\n    pool_size: 16\n    username: postgres\n    host: 127.0.0.1\n    port: %s\n' \
    "$thr" "$redis" "$pgthr" "$pg" > "$work/k$k/clusters/b/config.yaml"
  (cd "$work/k$k" && exec taskset -c "$mine" "$OLDPWD/target/release/throome" --config throome.yaml >/dev/null 2>throome.log) & tpid=$!; pids+=($tpid)
  for _ in $(seq 100); do redis-cli -p "$thr" ping >/dev/null 2>&1 && break; sleep 0.1; done
  r1=$(redis_rps "$thr" 1 "$others"); r16=$(redis_rps "$thr" 16 "$others"); p=$(pg_tps "$pgthr" "$others")
  echo "$r1 $r16 $p" > "$work/k$k.result"
  row "throome ($mine)" "$r1" "$r16" "$p"
  kill "$tpid"; wait "$tpid" 2>/dev/null || true

  if [ "$k" = 1 ]; then
    printf 'b:\n  listen: 127.0.0.1:%s\n  redis: true\n  servers:\n    - 127.0.0.1:%s:1\n' "$twem" "$redis" > "$work/nutcracker.yml"
    taskset -c 0 nutcracker -c "$work/nutcracker.yml" -s "$(free_port)" -o "$work/nutcracker.log" & tw=$!; pids+=($tw)
    printf '[databases]\npostgres = host=127.0.0.1 port=%s user=postgres\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = %s\nauth_type = trust\nauth_file = %s/userlist.txt\npool_mode = transaction\ndefault_pool_size = 16\nmax_client_conn = 200\nlogfile = %s/pgbouncer.log\npidfile = %s/pgbouncer.pid\nunix_socket_dir =\n' \
      "$pg" "$bnc" "$work" "$work" "$work" > "$work/pgbouncer.ini"
    echo '"postgres" ""' > "$work/userlist.txt"; chown postgres "$work/pgbouncer.ini" "$work/userlist.txt" 2>/dev/null || true
    pg_as "taskset -c 0 pgbouncer -d $work/pgbouncer.ini" >/dev/null 2>&1
    for _ in $(seq 100); do redis-cli -p "$twem" set k 1 >/dev/null 2>&1 && break; sleep 0.1; done
    row "twemproxy (0)" "$(redis_rps "$twem" 1 "$others")" "$(redis_rps "$twem" 16 "$others")" 0
    row "pgbouncer (0)" 0 0 "$(pg_tps "$bnc" "$others")"
    kill "$tw"
  fi
done
read -r b1 b16 bp < "$work/k1.result"
for ((k = 2; k <= MAX_K; k *= 2)); do
  read -r r1 r16 p < "$work/k$k.result"
  awk -v k="$k" -v a="$r1" -v b="$r16" -v c="$p" -v x="$b1" -v y="$b16" -v z="$bp" \
    'BEGIN {printf "K=%d over K=1: GET %.2fx, GET -P16 %.2fx, pgbench %.2fx\n", k, a / x, b / y, c / z}'
done
echo "($CORES cores; backends and load generators on the cores Throome does not use; 0 = not run)"
