#!/usr/bin/env bash
# Session state A/B: Throome's proxy CPU per transaction with `session_state: track` (the
# default) and `discard` (PgBouncer's behaviour), two services of one gateway over one
# PostgreSQL, in one run on loopback. CPU is the gateway's schedstat (all threads, user +
# kernel) across each run, divided by the transactions it completed.
#   benches/pg_session_state.sh [transactions per client=5000] [rounds=3]
# Workloads (pgbench, 4 clients, 1 thread, pool_size 8):
#   select-simple / select-prepared  pgbench -S: nothing changes state (the cost of the scan)
#   set-every-tx   each transaction SETs work_mem then selects (track: one read-back per tx)
#   tenants        each client keeps its own work_mem, re-set in 1 of 20 transactions
#                  (track: its settings replayed whenever its server last served another)
set -euo pipefail
cd "$(dirname "$0")/.."
TX=${1:-5000}; ROUNDS=${2:-3}
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[ -x "$BIN/pgbench" ] || scripts/setup.sh
cargo build --release --quiet --bin throome

. benches/lib.sh
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }

pg_port=$(free_port); track=$(free_port); discard=$(free_port); admin_port=$(free_port)
mkdir -p "$work/pg" && chown postgres "$work/pg" 2>/dev/null || true
as_pg "$BIN/initdb -D $work/pg/data -U postgres -A trust --no-sync >/dev/null"
as_pg "$BIN/postgres -D $work/pg/data -p $pg_port -c listen_addresses=127.0.0.1 -c fsync=off -k $work/pg" >/dev/null 2>&1 &
pids+=($!)
before_cleanup() { kill "$(head -1 "$work/pg/data/postmaster.pid" 2>/dev/null)" 2>/dev/null; }
for _ in $(seq 100); do "$BIN/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break; sleep 0.1; done

printf 'server: {port: %s}\ngateway: {clusters_dir: clusters, worker_threads: 1}\nlogging: {level: warn}\n' "$admin_port" > "$work/throome.yaml"
for mode in track discard; do
  port=${!mode}
  mkdir -p "$work/clusters/$mode"
  printf 'cluster_id: %s\nname: %s\nservices:\n  db:\n    type: postgres\n    listen: "127.0.0.1:%s"\n    pool_size: 8\n    session_state: %s\n    username: postgres\n    host: 127.0.0.1\n    port: %s\n' \
    "$mode" "$mode" "$port" "$mode" "$pg_port" > "$work/clusters/$mode/config.yaml"
done
(cd "$work" && exec "$OLDPWD/target/release/throome" --config throome.yaml 2>throome.log) & gw=$!; pids+=($gw)
for port in $track $discard; do
  for _ in $(seq 100); do "$BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -Atc 'select 1' postgres >/dev/null 2>&1 && break; sleep 0.1; done
done
"$BIN/pgbench" -i -s 1 -q -h 127.0.0.1 -p "$pg_port" -U postgres postgres >/dev/null 2>&1

cat > "$work/set-every-tx.sql" <<'SQL'
\set aid random(1, 100000)
SET work_mem = '8MB';
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
SQL
cat > "$work/tenants.sql" <<'SQL'
\set aid random(1, 100000)
\set r random(1, 20)
\if :r = 1
SELECT set_config('work_mem', (1024 + :client_id) || 'kB', false);
\endif
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
SQL

cpu_ns() { awk '{s += $1} END {printf "%.0f\n", s}' /proc/"$gw"/task/*/schedstat; }
# Proxy CPU per transaction (µs) of one pgbench run: port, then pgbench's workload options.
per_tx() {
  local port=$1; shift
  local before after out done_tx
  before=$(cpu_ns)
  out=$(timeout 300 "$BIN/pgbench" -n "$@" -c 4 -j 1 -t "$TX" -h 127.0.0.1 -p "$port" -U postgres postgres 2>&1 || true)
  after=$(cpu_ns)
  done_tx=$(awk '/number of transactions actually processed/ {split($NF, a, "/"); print a[1]}' <<<"$out")
  if [ -z "$done_tx" ] || [ "$done_tx" = 0 ] || grep -q "aborted" <<<"$out"; then echo 0; return; fi
  awk -v b="$before" -v a="$after" -v n="$done_tx" 'BEGIN {printf "%.2f\n", (a - b) / n / 1000}'
}
workload() {
  case $1 in
    select-simple) echo "-S -M simple" ;;
    select-prepared) echo "-S -M prepared" ;;
    set-every-tx) echo "-M simple -f $work/set-every-tx.sql" ;;
    tenants) echo "-M extended -f $work/tenants.sql" ;;
  esac
}
printf '%-16s %10s %10s %13s\n' workload track_us discard_us track/discard
for w in select-simple select-prepared set-every-tx tenants; do
  # shellcheck disable=SC2046
  per_tx "$track" $(workload "$w") >/dev/null  # warm-up: servers opened, statements prepared
  # shellcheck disable=SC2046
  per_tx "$discard" $(workload "$w") >/dev/null
  for r in $(seq "$ROUNDS"); do
    for k in $(order "$r" 2); do
      mode=$([ "$k" = 0 ] && echo track || echo discard)
      # shellcheck disable=SC2046
      per_tx "${!mode}" $(workload "$w") >> "$work/$w.$mode"
    done
  done
  t=$(median < "$work/$w.track"); d=$(median < "$work/$w.discard")
  printf '%-16s %10s %10s %13s\n' "$w" "$t" "$d" "$(awk -v t="$t" -v d="$d" 'BEGIN {if (d > 0) printf "%.2f", t / d; else print "n/a"}')"
done
echo "(pgbench -c 4 -j 1 -t $TX per run, medians of $ROUNDS rounds, pool_size 8, worker_threads 1, $(nproc) cores, $("$BIN/postgres" --version))"
