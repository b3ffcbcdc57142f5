//! redis-py (RESP2 and RESP3, `protocol=3`) through Throome: a client in another language,
//! from the venv that scripts/setup.sh makes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::gateway::cluster_of;
use common::{RedisServer, Throome, free_port};

#[test]
fn redis_py_resp2_and_resp3() {
    let backend = RedisServer::start();
    let listen = free_port();
    let yaml = cluster_of(
        "redis",
        "py",
        "cache",
        listen,
        &[(backend.port, "primary", 1)],
        "",
        "",
    );
    let _gw = Throome::start(&[("py", &yaml)]);
    let root = env!("CARGO_MANIFEST_DIR");
    let python = format!("{root}/.venv/bin/python");
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} missing: run scripts/setup.sh"
    );
    let out = std::process::Command::new(python)
        .arg(format!("{root}/tests/clients/redis_py.py"))
        .arg(listen.to_string())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.trim() == "OK",
        "{stdout}{stderr}"
    );
}
