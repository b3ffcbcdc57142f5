#!/usr/bin/env bash
# The whole test suite: what a developer runs and what CI runs (.ci/run calls this script).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Benches run once in test mode (they must build and not panic), then every test.
cargo test --benches --locked
# The examples are run by tests/data_sdk.rs as a user runs them (a plain `cargo test` builds
# them too; the target selection above and below does not).
cargo build --examples --locked
cargo test --lib --bins --tests --locked
