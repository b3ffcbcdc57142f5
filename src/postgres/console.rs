//! The admin console: connecting to the virtual database `throome` as one of the service's
//! `auth.admin_users` gives PgBouncer-style commands over the simple query protocol:
//! `SHOW POOLS`, `SHOW STATS`, `SHOW CONFIG`, `SHOW CLIENTS`, `SHOW SERVERS`, `PAUSE`, `RESUME`, `RELOAD`
//! ([PgBouncer's console](https://www.pgbouncer.org/usage.html#admin-console)).

use bytes::BytesMut;

use throome_pgwire::{build, msg};

use super::cancel;
use super::io::Wire;
use super::pool::PgPools;
use crate::metrics::{Metrics, RequestLabels};
use crate::snapshot::ServiceRuntime;

pub const DATABASE: &str = "throome";

/// What the console reads and acts on.
pub struct Console<'a> {
    pub service: &'a ServiceRuntime,
    pub pools: &'a PgPools,
    pub metrics: &'a Metrics,
    pub gateway: &'a std::sync::Weak<crate::gateway::Gateway>,
}

impl Console<'_> {
    /// Serves console commands until the client leaves.
    pub async fn serve(&self, client: &mut Wire) {
        let mut out = BytesMut::new();
        for (name, value) in [
            ("server_version", "16.0 (Throome console)"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO"),
            ("standard_conforming_strings", "on"),
        ] {
            out.extend_from_slice(&build::parameter_status(name.as_bytes(), value.as_bytes()));
        }
        out.extend_from_slice(&build::backend_key_data(0, &[0; 4]));
        out.extend_from_slice(&build::ready_for_query(b'I'));
        let mut skip_to_sync = false;
        loop {
            if client.send(&out).await.is_err() {
                return;
            }
            out.clear();
            let Ok(frame) = client.frame().await else {
                return;
            };
            match frame.tag() {
                msg::front::TERMINATE => return,
                msg::front::QUERY => {
                    let sql = msg::query(frame.body()).unwrap_or_default();
                    let text = String::from_utf8_lossy(sql);
                    self.answer(&text, &mut out).await;
                    out.extend_from_slice(&build::ready_for_query(b'I'));
                }
                msg::front::SYNC if skip_to_sync => {
                    skip_to_sync = false;
                    out.extend_from_slice(&build::ready_for_query(b'I'));
                }
                _ if skip_to_sync => {}
                _ => {
                    let text = "the admin console takes simple queries only";
                    out.extend_from_slice(&build::error("ERROR", "0A000", text));
                    skip_to_sync = true;
                }
            }
        }
    }

    async fn answer(&self, sql: &str, out: &mut BytesMut) {
        let (service, pools, metrics) = (self.service, self.pools, self.metrics);
        let words: Vec<String> = sql
            .trim()
            .trim_end_matches(';')
            .split_whitespace()
            .map(str::to_ascii_uppercase)
            .collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["SHOW", "POOLS"] => {
                let rows: Vec<Vec<String>> = pools
                    .all()
                    .iter()
                    .map(|p| {
                        let (in_use, idle, waiting) = p.counts();
                        let backend = service
                            .backends
                            .get(p.key.backend)
                            .map(|b| b.address())
                            .unwrap_or_default();
                        vec![
                            p.key.database.clone(),
                            p.key.user.clone(),
                            in_use.to_string(),
                            waiting.to_string(),
                            in_use.to_string(),
                            idle.to_string(),
                            backend,
                            pool_mode(service).into(),
                        ]
                    })
                    .collect();
                let cols = [
                    "database",
                    "user",
                    "cl_active",
                    "cl_waiting",
                    "sv_active",
                    "sv_idle",
                    "server",
                    "pool_mode",
                ];
                table(&cols, &rows, "SHOW", out);
            }
            ["SHOW", "STATS"] => {
                let count = |what: &str| {
                    let labels = RequestLabels {
                        cluster: service.cluster.clone(),
                        service: service.name.clone(),
                        command: what.to_string(),
                    };
                    metrics.requests.get_or_create(&labels).get().to_string()
                };
                let row = vec![service.name.clone(), count("transaction"), count("query")];
                table(
                    &["database", "total_xact_count", "total_query_count"],
                    &[row],
                    "SHOW",
                    out,
                );
            }
            ["SHOW", "CONFIG"] => {
                let pg = &service.spec.pg;
                let rows: Vec<Vec<String>> = [
                    ("pool_mode", pool_mode(service).to_string()),
                    ("pool_size", service.spec.pool_size.to_string()),
                    ("max_client_conn", pg.max_client_conn.to_string()),
                    (
                        "query_wait_timeout",
                        pg.query_wait_timeout.as_secs_f64().to_string(),
                    ),
                    (
                        "server_idle_timeout",
                        pg.server_idle_timeout.as_secs_f64().to_string(),
                    ),
                    (
                        "server_lifetime",
                        pg.server_lifetime.as_secs_f64().to_string(),
                    ),
                    ("read_write_split", pg.read_write_split.to_string()),
                    (
                        "max_prepared_statements",
                        pg.max_prepared_statements.to_string(),
                    ),
                ]
                .into_iter()
                .map(|(k, v)| vec![k.to_string(), v, "yes".to_string()])
                .collect();
                table(&["key", "value", "changeable"], &rows, "SHOW", out);
            }
            ["SHOW", "CLIENTS"] => show_clients(service, out),
            ["SHOW", "SERVERS"] => show_servers(service, pools, out),
            ["PAUSE"] => {
                pools.pause(true);
                out.extend_from_slice(&build::command_complete("PAUSE"));
            }
            ["RESUME"] => {
                pools.pause(false);
                out.extend_from_slice(&build::command_complete("RESUME"));
            }
            ["RELOAD"] => match self.gateway.upgrade() {
                Some(gw) => match gw.reload("console").await {
                    Ok(_) => out.extend_from_slice(&build::command_complete("RELOAD")),
                    Err(e) => {
                        let text = format!("reload failed, the running configuration stays: {e}");
                        out.extend_from_slice(&build::error("ERROR", "F0000", &text));
                    }
                },
                None => out.extend_from_slice(&build::error(
                    "ERROR",
                    "55000",
                    "the gateway is shutting down",
                )),
            },
            _ => {
                let text = format!(
                    "unknown console command {sql:?}: try SHOW POOLS, SHOW STATS, SHOW CONFIG, \
                 SHOW CLIENTS, SHOW SERVERS, PAUSE, RESUME, RELOAD"
                );
                out.extend_from_slice(&build::error("ERROR", "42601", &text));
            }
        }
    }
}

/// PgBouncer's SHOW CLIENTS columns that apply: one row per connected client.
fn show_clients(service: &ServiceRuntime, out: &mut BytesMut) {
    let rows: Vec<Vec<String>> = cancel::clients_of(&service_key(service))
        .into_iter()
        .map(|c| {
            let since = c
                .info
                .since
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            vec![
                "C".into(),
                c.info.user.clone(),
                c.info.database.clone(),
                if c.server.is_some() { "active" } else { "idle" }.into(),
                c.info.peer.host(),
                c.info.peer.port().to_string(),
                since.to_string(),
                c.pid.to_string(),
                c.server.map(|s| s.pid.to_string()).unwrap_or_default(),
            ]
        })
        .collect();
    let cols = [
        "type",
        "user",
        "database",
        "state",
        "addr",
        "port",
        "connect_time",
        "pid",
        "link",
    ];
    table(&cols, &rows, "SHOW", out);
}

/// Server connections: those lent to a client (active, linked to it) and the idle ones.
fn show_servers(service: &ServiceRuntime, pools: &PgPools, out: &mut BytesMut) {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for c in cancel::clients_of(&service_key(service)) {
        if let Some(s) = &c.server {
            rows.push(vec![
                "S".into(),
                c.info.user.clone(),
                c.info.database.clone(),
                "active".into(),
                s.backend.address(),
                s.pid.to_string(),
                c.pid.to_string(),
            ]);
        }
    }
    for pool in pools.all() {
        let address = service
            .backends
            .get(pool.key.backend)
            .map(|b| b.address())
            .unwrap_or_default();
        for pid in pool.idle_pids() {
            rows.push(vec![
                "S".into(),
                pool.key.user.clone(),
                pool.key.database.clone(),
                "idle".into(),
                address.clone(),
                pid.to_string(),
                String::new(),
            ]);
        }
    }
    let cols = [
        "type",
        "user",
        "database",
        "state",
        "server",
        "backend_pid",
        "link",
    ];
    table(&cols, &rows, "SHOW", out);
}

fn service_key(service: &ServiceRuntime) -> String {
    format!("{}/{}", service.cluster, service.name)
}

fn pool_mode(service: &ServiceRuntime) -> &'static str {
    match service.spec.pg.pool_mode {
        crate::config::PoolMode::Session => "session",
        crate::config::PoolMode::Transaction => "transaction",
    }
}

fn table(columns: &[&str], rows: &[Vec<String>], tag: &str, out: &mut BytesMut) {
    out.extend_from_slice(&build::row_description(columns));
    for row in rows {
        let values: Vec<Option<&str>> = row.iter().map(|v| Some(v.as_str())).collect();
        out.extend_from_slice(&build::data_row(&values));
    }
    out.extend_from_slice(&build::command_complete(&format!("{tag} {}", rows.len())));
}
