#!/usr/bin/env bash
# Memory per idle client connection, Throome beside twemproxy (Redis) and PgBouncer
# (PostgreSQL, when it can be installed), in one run on loopback: RSS (VmRSS) of each proxy
# with one client, with N idle clients (each after one GET, or after its login), and after
# they closed. Prints bytes per idle client and the ratios.
#   benches/idle_connections.sh [clients=10000]
# Env: MALLOC (e.g. /usr/lib/x86_64-linux-gnu/libjemalloc.so.2) preloads an allocator into
# Throome for comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
ulimit -n $((N * 2 + 1000)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
command -v nutcracker >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nutcracker >/dev/null; }
command -v pgbouncer >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null 2>&1; } || true
cargo build --release --quiet --bin throome
. benches/lib.sh
python=.venv/bin/python; [ -x "$python" ] || python=python3

rss() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status"; }
# measure PID PROTOCOL PORT: prints "base loaded closed" RSS in bytes.
measure() {
  local pid=$1 fifo="$work/ctl-$3" out="$work/out-$3"
  "$python" benches/idle_clients.py "$2" "$3" 1 < /dev/null > /dev/null <<< $'\n\n' || true
  sleep 1; local base; base=$(rss "$pid")
  mkfifo "$fifo"
  "$python" benches/idle_clients.py "$2" "$3" "$N" < "$fifo" > "$out" & local client=$!
  exec 7> "$fifo"
  for _ in $(seq 1200); do grep -q READY "$out" 2>/dev/null && break; sleep 0.1; done
  grep -q READY "$out" || { echo "clients did not connect to $3" >&2; exit 1; }
  sleep 1; local loaded; loaded=$(rss "$pid")
  echo >&7
  for _ in $(seq 100); do grep -q CLOSED "$out" && break; sleep 0.1; done
  sleep 3; local closed; closed=$(rss "$pid")
  echo >&7; exec 7>&-; wait "$client" || true
  echo "$base $loaded $closed"
}
row() { # name base loaded closed
  printf '%-22s %12s %12s %12s %10s\n' "$1" "$2" "$3" "$4" $(( ($3 - $2) / N ))
}

redis_port=$(free_port); throome_redis=$(free_port); throome_pg=$(free_port); twem_port=$(free_port); admin=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" --maxclients $((N + 100)) >/dev/null & pids+=($!)

pg_port=""
if [ -x "$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1)/initdb" ]; then
  bin=$(ls -d /usr/lib/postgresql/*/bin | tail -1); pg_port=$(free_port)
  mkdir -p "$work/pg"; chown postgres "$work/pg"
  su postgres -c "$bin/initdb -D $work/pg/data -A trust -U postgres" >/dev/null
  su postgres -c "$bin/pg_ctl -D $work/pg/data -o '-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1' -l $work/pg/log start" >/dev/null
  before_cleanup() { su postgres -c "$bin/pg_ctl -D $work/pg/data -m immediate stop" >/dev/null 2>&1; }
fi

# One gateway per protocol: memory a gateway freed (glibc keeps it) would otherwise be
# reused by the next protocol's clients and hide what they cost.
start_gateway() { # name services-yaml; prints the pid
  mkdir -p "$work/$1/clusters/b"
  printf 'server: {port: %s}\ngateway: {clusters_dir: clusters, max_connections: %s}\nlogging: {level: warn}\n' "$(free_port)" $((N * 3)) > "$work/$1/throome.yaml"
  printf 'cluster_id: b\nname: b\nservices:\n%s' "$2" > "$work/$1/clusters/b/config.yaml"
  LD_PRELOAD=${MALLOC:-} MALLOC_CONF=${MALLOC_CONF:-} target/release/throome --config "$work/$1/throome.yaml" >/dev/null 2>"$work/$1/throome.log" &
  echo $!
}
throome=$(start_gateway redis "$(printf '  kv:\n    type: redis\n    listen: "127.0.0.1:%s"\n    host: 127.0.0.1\n    port: %s\n' "$throome_redis" "$redis_port")")
pids+=($throome)
if [ -n "$pg_port" ]; then
  throome_p=$(start_gateway pg "$(printf '  db:\n    type: postgres\n    listen: "127.0.0.1:%s"\n    host: 127.0.0.1\n    port: %s\n    username: postgres\n    pool_size: 8\n    max_client_conn: %s\n' "$throome_pg" "$pg_port" $((N * 2)))")
  pids+=($throome_p)
fi

printf 'bench:\n  listen: 127.0.0.1:%s\n  redis: true\n  servers:\n    - 127.0.0.1:%s:1\n' "$twem_port" "$redis_port" > "$work/nutcracker.yml"
nutcracker -c "$work/nutcracker.yml" -s "$(free_port)" -o "$work/nutcracker.log" & twem=$!; pids+=($twem)
sleep 2

printf '%-22s %12s %12s %12s %10s\n' "proxy ($N clients)" "RSS base" "RSS idle" "RSS closed" "B/client"
read -r tb tl tc <<< "$(measure "$throome" redis "$throome_redis")"; row "throome redis" "$tb" "$tl" "$tc"
read -r wb wl wc <<< "$(measure "$twem" redis "$twem_port")"; row "twemproxy" "$wb" "$wl" "$wc"
echo "redis ratio throome/twemproxy: $(awk -v a=$(( (tl - tb) / N )) -v b=$(( (wl - wb) / N )) 'BEGIN {printf "%.1f", a / (b ? b : 1)}')"

if [ -n "$pg_port" ]; then
  read -r pb pl pc <<< "$(measure "$throome_p" postgres "$throome_pg")"; row "throome postgres" "$pb" "$pl" "$pc"
  if command -v pgbouncer >/dev/null; then
    bouncer=$(free_port); mkdir -p "$work/pgb"; chown postgres "$work/pgb"
    printf '[databases]\npostgres = host=127.0.0.1 port=%s\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = %s\nauth_type = trust\nauth_file = %s/pgb/users\npool_mode = transaction\ndefault_pool_size = 8\nmax_client_conn = %s\nunix_socket_dir =\n' \
      "$pg_port" "$bouncer" "$work" $((N * 2)) > "$work/pgb/pgbouncer.ini"
    echo '"postgres" ""' > "$work/pgb/users"; chown -R postgres "$work/pgb"
    su postgres -c "ulimit -n \$(ulimit -Hn); pgbouncer $work/pgb/pgbouncer.ini" > "$work/pgb/log" 2>&1 & sleep 2
    bpid=$(pgrep -f "^pgbouncer $work/pgb" | head -1); pids+=($bpid)
    read -r bb bl bc <<< "$(measure "$bpid" postgres "$bouncer")"; row "pgbouncer" "$bb" "$bl" "$bc"
    echo "postgres ratio throome/pgbouncer: $(awk -v a=$(( (pl - pb) / N )) -v b=$(( (bl - bb) / N )) 'BEGIN {printf "%.1f", a / (b ? b : 1)}')"
  fi
fi
