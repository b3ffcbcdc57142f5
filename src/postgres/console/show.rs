//! The console's SHOW tables, with PgBouncer's column names and order (1.18), keeping the
//! columns Throome has a true value for.

use std::collections::BTreeSet;

use bytes::BytesMut;

use throome_pgwire::build;

use super::super::cancel;
use super::super::pool::PgPools;
use super::super::stats::Tally;
use crate::snapshot::ServiceRuntime;

/// One row per pool (backend, user, database).
pub fn pools(service: &ServiceRuntime, pools: &PgPools, out: &mut BytesMut) {
    let rows: Vec<Vec<String>> = pools
        .all()
        .iter()
        .map(|p| {
            let (in_use, idle, waiting) = p.counts();
            let max_wait = p.max_wait();
            vec![
                p.key.database.clone(),
                p.key.user.clone(),
                in_use.to_string(),
                waiting.to_string(),
                in_use.to_string(),
                idle.to_string(),
                max_wait.as_secs().to_string(),
                max_wait.subsec_micros().to_string(),
                pool_mode(service, Some(&p.key.user)).into(),
                backend_address(service, p.key.backend),
                p.pinned
                    .load(std::sync::atomic::Ordering::Relaxed)
                    .to_string(),
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
        "maxwait",
        "maxwait_us",
        "pool_mode",
        "server",
        "pinned",
    ];
    table(&cols, &rows, out);
}

/// PgBouncer's SHOW STATS for the service: totals since it started, then averages over the
/// last `stats_period` (times in microseconds).
pub fn stats(service: &ServiceRuntime, pools: &PgPools, out: &mut BytesMut) {
    let (totals, averages) = tallies(service, pools);
    let mut row = vec![service.name.clone()];
    row.extend(columns(totals).into_iter().chain(columns(averages)));
    let cols = [
        "database",
        "total_xact_count",
        "total_query_count",
        "total_received",
        "total_sent",
        "total_xact_time",
        "total_query_time",
        "total_wait_time",
        "avg_xact_count",
        "avg_query_count",
        "avg_recv",
        "avg_sent",
        "avg_xact_time",
        "avg_query_time",
        "avg_wait_time",
    ];
    table(&cols, &[row], out);
}

/// SHOW STATS_TOTALS (`averages` false) and SHOW STATS_AVERAGES: one half of SHOW STATS
/// each, under shorter names.
pub fn stats_half(service: &ServiceRuntime, pools: &PgPools, averages: bool, out: &mut BytesMut) {
    let (totals, avg) = tallies(service, pools);
    let mut row = vec![service.name.clone()];
    row.extend(columns(if averages { avg } else { totals }));
    let cols = [
        "database",
        "xact_count",
        "query_count",
        "bytes_received",
        "bytes_sent",
        "xact_time",
        "query_time",
        "wait_time",
    ];
    table(&cols, &[row], out);
}

fn tallies(service: &ServiceRuntime, pools: &PgPools) -> (Tally, Tally) {
    let averages = pools.totals.averages(service.spec.pg.stats_period);
    (pools.totals.read(), averages)
}

/// SHOW STATS' seven figures in PgBouncer's order.
fn columns(t: Tally) -> [String; 7] {
    [
        t.xacts, t.queries, t.received, t.sent, t.xact_us, t.query_us, t.wait_us,
    ]
    .map(|n| n.to_string())
}

pub fn config(service: &ServiceRuntime, out: &mut BytesMut) {
    let pg = &service.spec.pg;
    let secs = |d: std::time::Duration| d.as_secs_f64().to_string();
    let rows: Vec<Vec<String>> = [
        ("pool_mode", pool_mode(service, None).to_string()),
        ("default_pool_size", service.spec.pool_size.to_string()),
        ("min_pool_size", pg.min_pool_size.to_string()),
        ("max_client_conn", pg.max_client_conn.to_string()),
        (
            "max_db_connections",
            pg.max_server_connections.map_or(0, |n| n).to_string(),
        ),
        (
            "max_user_connections",
            pg.max_user_connections.map_or(0, |n| n).to_string(),
        ),
        ("query_wait_timeout", secs(pg.query_wait_timeout)),
        ("reserve_pool_size", pg.reserve_pool_size.to_string()),
        ("reserve_pool_timeout", secs(pg.reserve_pool_timeout)),
        ("stats_period", secs(pg.stats_period)),
        ("server_idle_timeout", secs(pg.server_idle_timeout)),
        ("server_lifetime", secs(pg.server_lifetime)),
        (
            "max_prepared_statements",
            pg.max_prepared_statements.to_string(),
        ),
        ("read_write_split", pg.read_write_split.to_string()),
        ("auth_type", auth_type(service).to_string()),
        ("server_reset_query", pg.server_reset_query.clone()),
        (
            "session_state",
            format!("{:?}", pg.session_state).to_lowercase(),
        ),
        ("max_pinned", pg.max_pinned.map_or(0, |n| n).to_string()),
    ]
    .into_iter()
    .map(|(k, v)| vec![k.to_string(), v, "yes".to_string()])
    .collect();
    table(&["key", "value", "changeable"], &rows, out);
}

/// PgBouncer's `auth_type` for the service: `hba` with rules, else its one method.
fn auth_type(service: &ServiceRuntime) -> &'static str {
    use crate::config::AuthMethod;
    let Some(auth) = &service.spec.auth else {
        return "trust";
    };
    if !service.spec.pg.hba.is_empty() {
        return "hba";
    }
    match auth.method.unwrap_or_default() {
        AuthMethod::ScramSha256 => "scram-sha-256",
        AuthMethod::Md5 => "md5",
        AuthMethod::Trust => "trust",
        AuthMethod::Cert => "cert",
    }
}

/// One row per backend: PgBouncer's `[databases]` entries are Throome's backends.
pub fn databases(service: &ServiceRuntime, pools: &PgPools, out: &mut BytesMut) {
    let all = pools.all();
    let rows: Vec<Vec<String>> = service
        .backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let current: usize = all
                .iter()
                .filter(|p| p.key.backend == i)
                .map(|p| {
                    let (in_use, idle, _) = p.counts();
                    in_use + idle
                })
                .sum();
            vec![
                service.name.clone(),
                b.host.clone(),
                b.port.to_string(),
                service.spec.database.clone().unwrap_or_default(),
                service.spec.username.clone().unwrap_or_default(),
                service.spec.pool_size.to_string(),
                service.spec.pg.min_pool_size.to_string(),
                service.spec.pg.reserve_pool_size.to_string(),
                pool_mode(service, None).into(),
                current.to_string(),
                u8::from(pools.is_paused(service.spec.database.as_deref().unwrap_or_default()))
                    .to_string(),
            ]
        })
        .collect();
    let cols = [
        "name",
        "host",
        "port",
        "database",
        "force_user",
        "pool_size",
        "min_pool_size",
        "reserve_pool",
        "pool_mode",
        "current_connections",
        "paused",
    ];
    table(&cols, &rows, out);
}

/// PgBouncer's list sizes that have a Throome counterpart, as (list, items) rows.
pub fn lists(service: &ServiceRuntime, pools: &PgPools, out: &mut BytesMut) {
    let all = pools.all();
    let (mut used, mut free) = (0, 0);
    for p in &all {
        let (in_use, idle, _) = p.counts();
        used += in_use;
        free += idle;
    }
    let users: BTreeSet<&str> = all.iter().map(|p| p.key.user.as_str()).collect();
    let clients = cancel::clients_of(&service.key()).len();
    let rows: Vec<Vec<String>> = [
        ("databases", service.backends.len()),
        ("users", users.len()),
        ("pools", all.len()),
        ("used_clients", clients),
        ("free_servers", free),
        ("used_servers", used),
    ]
    .into_iter()
    .map(|(k, v)| vec![k.to_string(), v.to_string()])
    .collect();
    table(&["list", "items"], &rows, out);
}

/// The users that may log in (`auth.users`), those with `user_settings` and those that have
/// pools, with PgBouncer 1.24's columns: the pool size and mode that apply to each, the
/// server connections of its pools and its connected clients.
pub fn users(service: &ServiceRuntime, pools: &PgPools, out: &mut BytesMut) {
    let all = pools.all();
    let mut names: BTreeSet<String> = all.iter().map(|p| p.key.user.clone()).collect();
    if let Some(auth) = &service.spec.auth {
        names.extend(auth.users.keys().cloned());
    }
    names.extend(service.spec.pg.users.keys().cloned());
    let clients = cancel::clients_of(&service.key());
    let pg = &service.spec.pg;
    let rows: Vec<Vec<String>> = names
        .into_iter()
        .map(|n| {
            let servers: usize = all
                .iter()
                .filter(|p| p.key.user == n)
                .map(|p| p.open_count())
                .sum();
            let connected = clients.iter().filter(|c| c.info.user == n).count();
            let size = pg.pool_size_for(&n, service.spec.pool_size).to_string();
            let mode = pool_mode(service, Some(&n)).to_string();
            vec![
                n,
                size,
                pg.reserve_pool_size.to_string(),
                mode,
                pg.max_user_connections.unwrap_or(0).to_string(),
                servers.to_string(),
                connected.to_string(),
            ]
        })
        .collect();
    let cols = [
        "name",
        "pool_size",
        "reserve_pool_size",
        "pool_mode",
        "max_user_connections",
        "current_connections",
        "current_client_connections",
    ];
    table(&cols, &rows, out);
}

/// PgBouncer's SHOW STATE: whether the pools lend servers, and whether all of them are
/// paused (a PAUSE or KILL of one database shows in SHOW DATABASES instead).
pub fn state(pools: &PgPools, out: &mut BytesMut) {
    let all = pools.is_paused_all();
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    let rows = [
        vec!["active".to_string(), yes_no(!all)],
        vec!["paused".to_string(), yes_no(all)],
        vec!["suspended".to_string(), yes_no(false)],
    ];
    table(&["key", "value"], &rows, out);
}

pub fn version(out: &mut BytesMut) {
    let row = vec![format!("Throome {}", env!("CARGO_PKG_VERSION"))];
    table(&["version"], &[row], out);
}

fn backend_address(service: &ServiceRuntime, index: usize) -> String {
    service
        .backends
        .get(index)
        .map(|b| b.address())
        .unwrap_or_default()
}

/// One row per connected client. `link` is the backend pid of the server it holds, `pid`
/// the pid Throome gave it (a server's `link`), and `id` the same number under the name
/// PgBouncer's KILL_CLIENT takes it by.
pub fn clients(service: &ServiceRuntime, out: &mut BytesMut) {
    let rows: Vec<Vec<String>> = cancel::clients_of(&service.key())
        .into_iter()
        .map(|c| {
            vec![
                "C".into(),
                c.info.user.clone(),
                c.info.database.clone(),
                if c.server.is_some() { "active" } else { "idle" }.into(),
                c.info.peer.host(),
                c.info.peer.port().to_string(),
                utc(c.info.since),
                c.server.map(|s| s.pid.to_string()).unwrap_or_default(),
                c.pid.to_string(),
                c.pid.to_string(),
                c.info.pinned.lock().map(|p| p.clone()).unwrap_or_default(),
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
        "link",
        "pid",
        "id",
        "pinned",
    ];
    table(&cols, &rows, out);
}

/// Server connections: those lent to a client (active, `link` is the client's `pid`) and
/// the idle ones; `remote_pid` is the server's backend pid.
pub fn servers(service: &ServiceRuntime, pools: &PgPools, out: &mut BytesMut) {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for c in cancel::clients_of(&service.key()) {
        if let Some(s) = &c.server {
            rows.push(vec![
                "S".into(),
                c.info.user.clone(),
                c.info.database.clone(),
                "active".into(),
                s.backend.host.clone(),
                s.backend.port.to_string(),
                c.pid.to_string(),
                s.pid.to_string(),
            ]);
        }
    }
    for pool in pools.all() {
        let Some(backend) = service.backends.get(pool.key.backend) else {
            continue;
        };
        for pid in pool.idle_pids() {
            rows.push(vec![
                "S".into(),
                pool.key.user.clone(),
                pool.key.database.clone(),
                "idle".into(),
                backend.host.clone(),
                backend.port.to_string(),
                String::new(),
                pid.to_string(),
            ]);
        }
    }
    let cols = [
        "type",
        "user",
        "database",
        "state",
        "addr",
        "port",
        "link",
        "remote_pid",
    ];
    table(&cols, &rows, out);
}

/// `2026-11-24 10:05:11 UTC`, as PgBouncer prints times.
fn utc(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, <http://howardhinnant.github.io/date_algorithms.html#civil_from_days>).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The pool mode of `user`'s clients (the service's for a user without settings, or none).
fn pool_mode(service: &ServiceRuntime, user: Option<&str>) -> &'static str {
    let mode = match user {
        Some(user) => service.spec.pg.pool_mode_for(user),
        None => service.spec.pg.pool_mode,
    };
    match mode {
        crate::config::PoolMode::Session => "session",
        crate::config::PoolMode::Transaction => "transaction",
    }
}

fn table(columns: &[&str], rows: &[Vec<String>], out: &mut BytesMut) {
    out.extend_from_slice(&build::row_description(columns));
    for row in rows {
        let values: Vec<Option<&str>> = row.iter().map(|v| Some(v.as_str())).collect();
        out.extend_from_slice(&build::data_row(&values));
    }
    out.extend_from_slice(&build::command_complete(&format!("SHOW {}", rows.len())));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_pgbouncer_prints_them() {
        let at = |secs: u64| utc(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(at(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(at(1_795_515_911), "2026-11-24 10:25:11 UTC");
    }
}
