#!/usr/bin/env bash
# Postgres proxy bench: pgbench -S (select-only; 32 clients, 2 threads; simple and prepared
# protocol) straight at PostgreSQL, through Throome (`type: postgres`, transaction pooling)
# and through PgBouncer (Debian package, transaction pooling, same pool size), in one run on
# loopback. Prints transactions/s and the ratios Throome/direct and Throome/PgBouncer.
# Bounded: fixed duration per run.
#   benches/pg_proxy.sh [seconds=10] [rounds=3]
# Env: POOL_SIZE (server connections, default 8), WORKERS (gateway.worker_threads, default 2:
# PgBouncer is single-threaded, Throome need not be), FLOOR=1 adds HAProxy in TCP mode (one
# thread, no parsing, no pooling): the relay floor, what merely being in the path costs.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}; ROUNDS=${2:-3}; POOL=${POOL_SIZE:-8}

command -v pgbouncer >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; }
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[ -x "$BIN/pgbench" ] || scripts/setup.sh
cargo build --release --quiet --bin throome

. benches/lib.sh
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }

pg_port=$(free_port); thr_port=$(free_port); bouncer_port=$(free_port); admin_port=$(free_port); hap_port=$(free_port)
mkdir -p "$work/pg" && chown postgres "$work/pg" 2>/dev/null || true
as_pg "$BIN/initdb -D $work/pg/data -U postgres -A trust --no-sync >/dev/null"
as_pg "$BIN/postgres -D $work/pg/data -p $pg_port -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 -k $work/pg" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do "$BIN/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break; sleep 0.1; done

mkdir -p "$work/clusters/bench"
printf 'server: {port: %s}\ngateway: {clusters_dir: clusters, worker_threads: %s}\nlogging: {level: warn}\n' "$admin_port" "${WORKERS:-2}" > "$work/throome.yaml"
printf 'cluster_id: bench\nname: bench\nservices:\n  db:\n    type: postgres\n    listen: "127.0.0.1:%s"\n    pool_size: %s\n    username: postgres\n    host: 127.0.0.1\n    port: %s\n' \
  "$thr_port" "$POOL" "$pg_port" > "$work/clusters/bench/config.yaml"
(cd "$work" && exec "$OLDPWD/target/release/throome" --config throome.yaml 2>throome.log) & pids+=($!)

cat > "$work/pgbouncer.ini" <<CFG
[databases]
postgres = host=127.0.0.1 port=$pg_port user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = transaction
default_pool_size = $POOL
max_client_conn = 200
logfile = $work/pgbouncer.log
pidfile = $work/pgbouncer.pid
unix_socket_dir =
CFG
echo '"postgres" ""' > "$work/userlist.txt"
chown -R postgres "$work/pgbouncer.ini" "$work/userlist.txt" 2>/dev/null || true; chmod 777 "$work"
as_pg "pgbouncer $work/pgbouncer.ini" >/dev/null 2>&1 & pids+=($!)
# Killing su leaves pgbouncer (and postgres) running: stop them by their own pids.
before_cleanup() {
  kill "$(cat "$work/pgbouncer.pid" 2>/dev/null)" 2>/dev/null
  kill "$(head -1 "$work/pg/data/postmaster.pid" 2>/dev/null)" 2>/dev/null
}
ports=("$pg_port" "$thr_port" "$bouncer_port"); names=(direct throome pgbouncer)
if [ "${FLOOR:-0}" = 1 ]; then
  haproxy_tcp "$hap_port" "$pg_port" 1; pids+=($!); ports+=("$hap_port"); names+=(haproxy_tcp)
fi
for port in "${ports[@]:1}"; do
  for _ in $(seq 100); do "$BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -Atc 'select 1' postgres >/dev/null 2>&1 && break; sleep 0.1; done
done
"$BIN/pgbench" -i -s 10 -q -h 127.0.0.1 -p "$pg_port" -U postgres postgres >/dev/null 2>&1

tps() { # port mode
  # A run in which any client aborted (PgBouncer 1.18 and -M prepared: "prepared statement
  # P_0 already exists / does not exist") counts as 0: its tps is only what the clients left
  # standing did.
  local out
  out=$({ timeout $((SECS + 60)) "$BIN/pgbench" -n -S -M "$2" -c 32 -j 2 -T "$SECS" -h 127.0.0.1 -p "$1" -U postgres postgres 2>&1 || true; })
  if grep -q "aborted" <<<"$out"; then echo 0; return; fi
  awk '/^tps/ {print $3; found=1} END {if (!found) print 0}' <<<"$out"
}
ratio() { if [ "$(echo "$2 > 0" | bc)" = 1 ]; then printf '%.2f' "$(echo "$1 / $2" | bc -l)"; else echo n/a; fi; }
printf '%-9s' mode; printf ' %11s' "${names[@]}"; printf ' %9s %9s\n' thr/dir thr/bnc
for mode in simple prepared; do
  for r in $(seq "$ROUNDS"); do
    for k in $(order "$r" ${#ports[@]}); do tps "${ports[$k]}" $mode >> "$work/${names[$k]}.$mode"; done
  done
  med=(); for name in "${names[@]}"; do med+=("$(median < "$work/$name.$mode")"); done
  printf '%-9s' "$mode"; printf ' %11.0f' "${med[@]}"
  printf ' %9s %9s\n' "$(ratio "${med[1]}" "${med[0]}")" "$(ratio "${med[1]}" "${med[2]}")"
  if [ ${#med[@]} -gt 3 ]; then
    echo "  relay floor: haproxy_tcp/direct $(ratio "${med[3]}" "${med[0]}"), haproxy_tcp/pgbouncer $(ratio "${med[3]}" "${med[2]}")"
  fi
done
echo "(pgbench -S -c 32 -j 2, ${SECS}s, medians of $ROUNDS rounds; pool_size $POOL; Throome worker_threads ${WORKERS:-2}; $(nproc) cores; pgbouncer $(pgbouncer --version | head -1 | awk '{print $2}'))"
