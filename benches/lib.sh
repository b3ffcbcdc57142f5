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
