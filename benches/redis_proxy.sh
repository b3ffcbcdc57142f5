#!/usr/bin/env bash
# Redis proxy bench: redis-benchmark (50 clients; GET and SET; unpipelined and -P 16) straight
# at redis-server, through Throome (`type: redis`) and through twemproxy (Debian nutcracker),
# all with the same single backend, in one run on loopback. Prints requests/s and the ratios
# Throome/direct and Throome/twemproxy. Bounded: fixed request counts, 300 s per run at most.
#   benches/redis_proxy.sh [requests=200000] [rounds=3]
# Env: POOL_SIZE (upstream connections, default 2), WORKERS (gateway.worker_threads, default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
ROUNDS=${2:-3}

command -v nutcracker >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nutcracker >/dev/null; }
command -v redis-benchmark >/dev/null || scripts/setup.sh
cargo build --release --quiet --bin throome

. benches/lib.sh

redis_port=$(free_port); throome_port=$(free_port); twem_port=$(free_port); admin_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null & pids+=($!)

mkdir -p "$work/clusters/bench"
printf 'server: {port: %s}\ngateway: {clusters_dir: clusters, worker_threads: %s}\nlogging: {level: warn}\n' "$admin_port" "${WORKERS:-1}" > "$work/throome.yaml"
printf 'cluster_id: bench\nname: bench\nservices:\n  kv:\n    type: redis\n    listen: "127.0.0.1:%s"\n    pool_size: %s\n    host: 127.0.0.1\n    port: %s\n' \
  "$throome_port" "${POOL_SIZE:-2}" "$redis_port" > "$work/clusters/bench/config.yaml"
target/release/throome --config "$work/throome.yaml" 2>"$work/throome.log" & pids+=($!)

cat > "$work/nutcracker.yml" <<CFG
bench:
  listen: 127.0.0.1:$twem_port
  redis: true
  hash: fnv1a_64
  distribution: ketama
  servers:
    - 127.0.0.1:$redis_port:1
CFG
nutcracker -c "$work/nutcracker.yml" -s "$(free_port)" -o "$work/nutcracker.log" & pids+=($!)

for port in "$redis_port" "$throome_port" "$twem_port"; do
  for _ in $(seq 100); do redis-cli -p "$port" set ping 1 >/dev/null 2>&1 && break; sleep 0.1; done
  # redis-benchmark spins forever on a refused port: never start it against a dead one.
  redis-cli -p "$port" set ping 1 >/dev/null 2>&1 || { echo "nothing answers on port $port" >&2; exit 1; }
done

rps() { # port test pipeline
  timeout 300 redis-benchmark -p "$1" -t "$2" -n "$N" -c 50 -P "$3" -q --csv 2>/dev/null | tail -1 | cut -d, -f2 | tr -d '"'
}
printf '%-4s %4s %12s %12s %12s %9s %9s\n' test P direct throome twemproxy thr/dir thr/twem
for p in 1 16; do
  for t in get set; do
    ds=(); ths=(); tws=()
    # Interleaved rounds, medians reported: loopback figures on shared cores swing by 10-20%.
    for r in $(seq "$ROUNDS"); do
      for k in $(order "$r" 3); do
        case $k in
          0) ds+=("$(rps "$redis_port" $t $p)") ;;
          1) ths+=("$(rps "$throome_port" $t $p)") ;;
          2) tws+=("$(rps "$twem_port" $t $p)") ;;
        esac
      done
    done
    d=$(printf '%s\n' "${ds[@]}" | median); th=$(printf '%s\n' "${ths[@]}" | median); tw=$(printf '%s\n' "${tws[@]}" | median)
    printf '%-4s %4s %12.0f %12.0f %12.0f %9.2f %9.2f\n' "$t" "$p" "$d" "$th" "$tw" \
      "$(echo "$th / $d" | bc -l)" "$(echo "$th / $tw" | bc -l)"
  done
done
echo "(medians of $ROUNDS rounds; requests=$N clients=50; $(nproc) cores; all on loopback)"
