# Shared by the bench scripts (sourced): a work dir removed on exit with every process
# started into `pids`, free loopback ports, medians, the order of paths in a round.
work=$(mktemp -d); chmod 755 "$work"; pids=()
# A script may define `before_cleanup` for what `kill` of a recorded pid does not reach
# (a daemon started through su).
cleanup() {
  if declare -F before_cleanup >/dev/null; then before_cleanup || true; fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 1; rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
# The indices 0..N-1 rotated by ROUND: the paths compared take turns at going first, so none
# always runs on a warmer or busier machine.
order() { local i; for ((i = 0; i < $2; i++)); do echo $(( (i + $1 - 1) % $2 )); done; }
# HAProxy in TCP mode relaying LISTEN to TARGET: a pure byte relay (no parsing, no pooling),
# the floor any proxy in the path pays on this machine. THREADS sets nbthread (default: all
# cores); env HAPROXY_BUFSIZE sets tune.bufsize (HAProxy's default is 16 KiB). Runs in the
# background, so the caller records `$!`.
haproxy_tcp() { # listen_port target_port [threads]
  command -v haproxy >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; }
  cat > "$work/haproxy-$1.cfg" <<CFG
global
  maxconn 4096
  ${3:+nbthread $3}
  ${HAPROXY_BUFSIZE:+tune.bufsize $HAPROXY_BUFSIZE}
defaults
  mode tcp
  timeout connect 3s
  timeout client 60s
  timeout server 60s
frontend f
  bind 127.0.0.1:$1
  default_backend b
backend b
  server s 127.0.0.1:$2
CFG
  haproxy -f "$work/haproxy-$1.cfg" -db >/dev/null 2>&1 &
}
# A PostgreSQL server for the benches in $work/pg on PORT (trust, fsync off, 200
# connections), started through PREFIX (e.g. "taskset -c 1"), ready when this returns, and
# stopped on exit with a PgBouncer whose pidfile is $work/pgbouncer.pid. Needs BIN (the
# PostgreSQL bin directory).
pg_as() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
start_postgres() { # port [prefix]
  mkdir -p "$work/pg" && chown postgres "$work/pg" 2>/dev/null || true; chmod 777 "$work"
  pg_as "$BIN/initdb -D $work/pg/data -U postgres -A trust --no-sync >/dev/null"
  pg_as "${2:-} $BIN/postgres -D $work/pg/data -p $1 -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 -k $work/pg" >/dev/null 2>&1 &
  before_cleanup() {
    kill "$(cat "$work/pgbouncer.pid" 2>/dev/null)" 2>/dev/null
    kill "$(head -1 "$work/pg/data/postmaster.pid" 2>/dev/null)" 2>/dev/null
  }
  for _ in $(seq 100); do "$BIN/pg_isready" -q -h 127.0.0.1 -p "$1" && break; sleep 0.1; done
}
# The set-up the comparison benches share: scripts/setup.sh, the Debian packages of the
# peers named (nutcracker, pgbouncer, haproxy, ...), a release build of Throome, and BIN
# (the PostgreSQL bin directory).
bench_setup() { # packages...
  scripts/setup.sh >/dev/null
  local pkg
  for pkg in "$@"; do
    command -v "$pkg" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null; }
  done
  cargo build --release --quiet --bin throome
  BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
}
