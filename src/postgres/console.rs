//! The admin console: connecting to the virtual database `throome` as one of the service's
//! `auth.admin_users` gives PgBouncer-style commands over the simple query protocol:
//! `SHOW POOLS`, `SHOW STATS`, `SHOW CONFIG`, `SHOW CLIENTS` (a count), `PAUSE`, `RESUME`
//! ([PgBouncer's console](https://www.pgbouncer.org/usage.html#admin-console)).

use std::sync::atomic::Ordering;

use bytes::BytesMut;

use throome_pgwire::{build, msg};

use super::io::Wire;
use super::pool::PgPools;
use crate::metrics::{Metrics, RequestLabels};
use crate::snapshot::ServiceRuntime;

pub const DATABASE: &str = "throome";

/// Serves console commands until the client leaves.
pub async fn serve(
    client: &mut Wire,
    service: &ServiceRuntime,
    pools: &PgPools,
    metrics: &Metrics,
) {
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
                answer(&text, service, pools, metrics, &mut out);
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

fn answer(
    sql: &str,
    service: &ServiceRuntime,
    pools: &PgPools,
    metrics: &Metrics,
    out: &mut BytesMut,
) {
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
            ]
            .into_iter()
            .map(|(k, v)| vec![k.to_string(), v, "yes".to_string()])
            .collect();
            table(&["key", "value", "changeable"], &rows, "SHOW", out);
        }
        ["SHOW", "CLIENTS"] => {
            let n = pools.clients.load(Ordering::Relaxed).to_string();
            table(&["connected_clients"], &[vec![n]], "SHOW", out);
        }
        ["PAUSE"] => {
            pools.pause(true);
            out.extend_from_slice(&build::command_complete("PAUSE"));
        }
        ["RESUME"] => {
            pools.pause(false);
            out.extend_from_slice(&build::command_complete("RESUME"));
        }
        _ => {
            let text = format!(
                "unknown console command {sql:?}: try SHOW POOLS, SHOW STATS, SHOW CONFIG, \
                 SHOW CLIENTS, PAUSE, RESUME (reload: SIGHUP or POST /api/v1/reload)"
            );
            out.extend_from_slice(&build::error("ERROR", "42601", &text));
        }
    }
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
