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
    common::run_python_client("redis_py.py", &[&listen.to_string()]);
}
