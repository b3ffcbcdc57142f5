#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine, and nothing that is already there.
# Safe to run any number of times.
#   redis-server, redis-cli   Debian redis-server, redis-tools
#   PostgreSQL server         Debian postgresql (initdb/postgres under /usr/lib/postgresql)
#   promtool                  Debian prometheus (lints the /metrics output)
#   nutcracker                Debian nutcracker (twemproxy: ketama compatibility test)
#   kcat                      Debian kcat (librdkafka 2.0.2: a Kafka client in C)
#   openssl                   Debian openssl (throwaway certificates for the TLS tests)
#   haproxy                   Debian haproxy (terminates TLS in front of tansu, which has none)
#   tansu                     crates.io tansu 0.6.0 (the Kafka test broker; ~10 min build,
#                             once: cargo install puts it in $CARGO_HOME/bin), with SQLite
#                             storage (libsql) for the SASL tests' SCRAM users
#   .venv with redis-py       PyPI redis (a RESP3 client in another language)
#     psycopg 3               PyPI psycopg[binary] (a PostgreSQL driver in another language)
#     asyncpg                 PyPI asyncpg (a driver speaking the protocol itself, no libpq)
#     kafka-python 3          PyPI kafka-python (a Kafka client with consumer groups and admin)
#     httpx, schemathesis     PyPI (the Python SDK's HTTP client; fuzzing the data API's OpenAPI)
#     kubernetes-validate     PyPI (checks deploy/kubernetes against the Kubernetes schemas)
#   kubectl                   Debian kubernetes-client when missing (kubectl kustomize)
#   chromium, node            Debian (the status page's browser test) and playwright-core
#                             from npm (tests/browser/package-lock.json)
#     and confluent-kafka     PyPI confluent-kafka 2.16 (bundles librdkafka 2.16; Debian's
#                             kcat links 2.0.2, whose SCRAM strict brokers refuse)
set -euo pipefail

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v promtool >/dev/null || missing+=(prometheus)
command -v openssl >/dev/null || missing+=(openssl)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v nutcracker >/dev/null || missing+=(nutcracker)
command -v kcat >/dev/null || missing+=(kcat)
# kubectl kustomize builds deploy/kubernetes (Debian's client when none is installed).
command -v kubectl >/dev/null || missing+=(kubernetes-client)
# The status page's browser test: Debian's Chromium, driven by playwright-core from npm.
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs npm)

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python clients for the tests (redis-py, psycopg 3, asyncpg), in a venv of the
# repository's own.
venv="$(cd "$(dirname "$0")/.." && pwd)/.venv"
if ! "$venv/bin/python" -c 'import redis, psycopg, asyncpg, kafka, confluent_kafka' >/dev/null 2>&1; then
  echo "setup: creating $venv with redis-py, psycopg, asyncpg, kafka-python and confluent-kafka"
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "redis==6.4.0" \
    "psycopg==3.2.10" "psycopg-binary==3.2.10" "asyncpg==0.32.0" "kafka-python==3.0.12" \
    "confluent-kafka==2.16.1"
fi
# The Python SDK's HTTP client and the OpenAPI fuzzer of the data API's tests.
if ! "$venv/bin/python" -c 'import httpx, schemathesis, wheel, kubernetes_validate' >/dev/null 2>&1; then
  echo "setup: adding httpx, schemathesis and kubernetes-validate to $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "httpx==0.29.0" "schemathesis==4.32.5" \
    "wheel==0.45.1" "kubernetes-validate==1.37.0"
fi

# The Kafka test broker, built from crates.io only when missing or built with other
# features (the stamp beside it records them).
tansu="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
features=dynostore,libsql
if [ ! -x "$tansu" ] || [ "$(cat "$tansu.features" 2>/dev/null)" != "$features" ]; then
  echo "setup: building tansu 0.6.0 (about 10 minutes on 2 cores)"
  cargo install -q --force tansu --version 0.6.0 --locked --features "$features"
  echo "$features" > "$tansu.features"
fi

# PostgreSQL refuses to run as root; the harness runs it as this user.
id postgres >/dev/null 2>&1 || { echo "setup: the postgres user is missing" >&2; exit 1; }

# playwright-core for tests/status_page.rs, as package-lock.json pins it.
browser="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
if [ ! -d "$browser/node_modules/playwright-core" ]; then
  echo "setup: npm ci in $browser"
  (cd "$browser" && npm ci --no-audit --no-fund --silent)
fi
echo "setup: ok"
