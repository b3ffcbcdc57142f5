#!/usr/bin/env bash
# Added latency below saturation: one client, straight at the server and through each proxy,
# in one run on loopback. Redis: redis-benchmark -c 1 GET (closed loop: one request at a
# time), its p50 and p99. PostgreSQL: pgbench -S -c 1 at a fixed rate (-R), p50 and p99 of
# the per-transaction log. Medians of ROUNDS interleaved rounds; "added" is the proxy's
# percentile minus the direct one; ratio = Throome's added latency over the peer's.
#   benches/latency.sh [rounds=3]
# Env: REDIS_N (requests per run, default 20000), PG_RATE (transactions/s, default 500),
# PG_SECS (default 10), WORKERS (Throome's worker_threads, default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}; REDIS_N=${REDIS_N:-20000}; RATE=${PG_RATE:-500}; SECS=${PG_SECS:-10}
. benches/lib.sh
bench_setup nutcracker pgbouncer
redis=$(free_port); pg=$(free_port); thr=$(free_port); pgthr=$(free_port); twem=$(free_port); bnc=$(free_port)
redis-server --port "$redis" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null & pids+=($!)
start_postgres "$pg"
"$BIN/pgbench" -i -s 1 -q -h 127.0.0.1 -p "$pg" -U postgres postgres >/dev/null 2>&1
mkdir -p "$work/t/clusters/b"
printf 'server: {port: %s}\ngateway: {clusters_dir: clusters, worker_threads: %s}\nlogging: {level: warn}\n' "$(free_port)" "${WORKERS:-1}" > "$work/t/throome.yaml"
printf 'cluster_id: b\nname: b\nservices:\n  kv:\n    type: redis\n    listen: "127.0.0.1:%s"\n    host: 127.0.0.1\n    port: %s\n  db:\n    type: postgres\n    listen: "127.0.0.1:%s"\n    pool_size: 8\n    username: postgres\n    host: 127.0.0.1\n    port: %s\n' \
  "$thr" "$redis" "$pgthr" "$pg" > "$work/t/clusters/b/config.yaml"
(cd "$work/t" && exec "$OLDPWD/target/release/throome" --config throome.yaml >/dev/null 2>throome.log) & pids+=($!)
printf 'b:\n  listen: 127.0.0.1:%s\n  redis: true\n  servers:\n    - 127.0.0.1:%s:1\n' "$twem" "$redis" > "$work/nutcracker.yml"
nutcracker -c "$work/nutcracker.yml" -s "$(free_port)" -o "$work/nutcracker.log" & pids+=($!)
printf '[databases]\npostgres = host=127.0.0.1 port=%s user=postgres\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = %s\nauth_type = trust\nauth_file = %s/userlist.txt\npool_mode = transaction\ndefault_pool_size = 8\nmax_client_conn = 200\nlogfile = %s/pgbouncer.log\npidfile = %s/pgbouncer.pid\nunix_socket_dir =\n' \
  "$pg" "$bnc" "$work" "$work" "$work" > "$work/pgbouncer.ini"
echo '"postgres" ""' > "$work/userlist.txt"; chown postgres "$work/pgbouncer.ini" "$work/userlist.txt" 2>/dev/null || true
pg_as "pgbouncer -d $work/pgbouncer.ini" >/dev/null 2>&1
for p in "$thr" "$twem"; do for _ in $(seq 100); do redis-cli -p "$p" set k 1 >/dev/null 2>&1 && break; sleep 0.1; done; done
for p in "$pgthr" "$bnc"; do
  for _ in $(seq 100); do "$BIN/psql" -h 127.0.0.1 -p "$p" -U postgres -Atc 'select 1' postgres >/dev/null 2>&1 && break; sleep 0.1; done
done

redis_pcts() { # port: "p50 p99" in µs
  redis-benchmark -p "$1" -t get -n "$REDIS_N" -c 1 2>/dev/null | tr '\r' '\n' |
    awk '/latency summary/ {getline; getline; printf "%.0f %.0f\n", $3 * 1000, $5 * 1000; exit}'
}
pg_pcts() { # port: "p50 p99" in µs, from pgbench's per-transaction log (field 3: latency)
  rm -f "$work"/pglog*
  (cd "$work" && "$BIN/pgbench" -n -S -c 1 -R "$RATE" -T "$SECS" -l --log-prefix=pglog -h 127.0.0.1 -p "$1" -U postgres postgres >/dev/null 2>&1) || true
  cat "$work"/pglog* 2>/dev/null | awk '{print $3}' | sort -n |
    awk '{v[NR] = $1} END {if (NR) printf "%d %d\n", v[int(NR * 0.5) + 1], v[int(NR * 0.99) + 1]; else print "0 0"}'
}
med() { cat "$1" 2>/dev/null | median; }
table() { # section names...
  local s=$1; shift
  printf '%-12s %10s %10s %12s %12s\n' "$s" "p50 µs" "p99 µs" "added p50" "added p99"
  local d50 d99; d50=$(med "$work/$s.direct.50"); d99=$(med "$work/$s.direct.99")
  for n in "$@"; do
    local a b; a=$(med "$work/$s.$n.50"); b=$(med "$work/$s.$n.99")
    printf '%-12s %10s %10s %12s %12s\n' "$n" "$a" "$b" $((a - d50)) $((b - d99))
    echo "$((a - d50)) $((b - d99))" > "$work/$s.$n.added"
  done
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }

rnames=(direct throome twemproxy); rports=("$redis" "$thr" "$twem")
pnames=(direct throome pgbouncer); pports=("$pg" "$pgthr" "$bnc")
for r in $(seq "$ROUNDS"); do
  for k in $(order "$r" 3); do
    read -r a b <<<"$(redis_pcts "${rports[$k]}")"; echo "$a" >> "$work/redis.${rnames[$k]}.50"; echo "$b" >> "$work/redis.${rnames[$k]}.99"
    read -r a b <<<"$(pg_pcts "${pports[$k]}")"; echo "$a" >> "$work/pg.${pnames[$k]}.50"; echo "$b" >> "$work/pg.${pnames[$k]}.99"
  done
done
echo "one client, medians of $ROUNDS rounds; redis-benchmark -c 1 -n $REDIS_N GET; pgbench -S -c 1 -R $RATE -T $SECS"
table redis throome twemproxy
read -r t50 t99 < "$work/redis.throome.added"; read -r w50 w99 < "$work/redis.twemproxy.added"
echo "redis added latency throome/twemproxy: p50 $(ratio "$t50" "$w50"), p99 $(ratio "$t99" "$w99")"
table pg throome pgbouncer
read -r t50 t99 < "$work/pg.throome.added"; read -r b50 b99 < "$work/pg.pgbouncer.added"
echo "postgres added latency throome/pgbouncer: p50 $(ratio "$t50" "$b50"), p99 $(ratio "$t99" "$b99")"
