//! The admin console: connecting to the virtual database `throome` (or `pgbouncer`, the name
//! PgBouncer's monitoring tools ask for) as one of the service's `auth.admin_users` gives
//! PgBouncer's commands over the simple query protocol, with PgBouncer's column names:
//! `SHOW POOLS|STATS|STATS_TOTALS|STATS_AVERAGES|CONFIG|CLIENTS|SERVERS|DATABASES|LISTS|USERS|VERSION|STATE`,
//! `PAUSE [db]`, `RESUME [db]`, `KILL [db]`, `KILL_CLIENT id`, `RECONNECT [db]`,
//! `WAIT_CLOSE [db]`, `DISABLE [db]`, `ENABLE [db]`, `RELOAD`
//! ([PgBouncer's console](https://www.pgbouncer.org/usage.html#admin-console)).
//! Not here: SUSPEND and SHUTDOWN (one console would stop every service of the gateway;
//! the gateway stops on SIGTERM).

mod show;

use std::sync::Arc;

use bytes::BytesMut;

use throome_pgwire::{build, msg};

use super::io::Wire;
use super::pool::PgPools;
use crate::snapshot::ServiceRuntime;

/// The console's database names: ours, and PgBouncer's for its monitoring tools.
pub fn is_console(database: &str) -> bool {
    matches!(database, "throome" | "pgbouncer")
}

/// What the console reads and acts on.
pub struct Console<'a> {
    pub service: &'a ServiceRuntime,
    pub pools: &'a PgPools,
    pub gateway: &'a Option<std::sync::Weak<dyn crate::protocol::Control>>,
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
        let (service, pools) = (self.service, self.pools);
        let words: Vec<String> = sql
            .trim()
            .trim_end_matches(';')
            .split_whitespace()
            .map(str::to_ascii_uppercase)
            .collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        // A database name argument, as written (PgBouncer's `RECONNECT db`).
        let db = sql
            .trim()
            .trim_end_matches(';')
            .split_whitespace()
            .nth(1)
            .map(|d| d.trim_matches('"'));
        match words.as_slice() {
            ["SHOW", "POOLS"] => show::pools(service, pools, out),
            ["SHOW", "STATS"] => show::stats(service, pools, out),
            ["SHOW", "STATS_TOTALS"] => show::stats_half(service, pools, false, out),
            ["SHOW", "STATS_AVERAGES"] => show::stats_half(service, pools, true, out),
            ["SHOW", "CONFIG"] => show::config(service, out),
            ["SHOW", "CLIENTS"] => show::clients(service, out),
            ["SHOW", "SERVERS"] => show::servers(service, pools, out),
            ["SHOW", "DATABASES"] => show::databases(service, pools, out),
            ["SHOW", "LISTS"] => show::lists(service, pools, out),
            ["SHOW", "USERS"] => show::users(service, pools, out),
            ["SHOW", "VERSION"] => show::version(out),
            ["SHOW", "STATE"] => show::state(pools, out),
            ["PAUSE"] | ["PAUSE", _] => {
                pools.pause(db, true);
                out.extend_from_slice(&build::command_complete("PAUSE"));
            }
            ["RESUME"] | ["RESUME", _] => {
                pools.pause(db, false);
                out.extend_from_slice(&build::command_complete("RESUME"));
            }
            ["KILL"] | ["KILL", _] => self.kill(db, out),
            ["KILL_CLIENT", _] => self.kill_client(db.unwrap_or_default(), out),
            ["WAIT_CLOSE"] | ["WAIT_CLOSE", _] => self.wait_close(db, out).await,
            ["RECONNECT"] | ["RECONNECT", _] => {
                pools.reconnect(db);
                out.extend_from_slice(&build::command_complete("RECONNECT"));
            }
            ["DISABLE"] | ["DISABLE", _] => {
                pools.disable(db, true);
                out.extend_from_slice(&build::command_complete("DISABLE"));
            }
            ["ENABLE"] | ["ENABLE", _] => {
                pools.disable(db, false);
                out.extend_from_slice(&build::command_complete("ENABLE"));
            }
            ["RELOAD"] => match self.gateway.as_ref().and_then(std::sync::Weak::upgrade) {
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
                     SHOW CLIENTS, SHOW SERVERS, SHOW DATABASES, SHOW LISTS, SHOW USERS, \
                     SHOW VERSION, SHOW STATE, PAUSE [db], RESUME [db], KILL [db], \
                     KILL_CLIENT id, RECONNECT [db], WAIT_CLOSE [db], DISABLE [db], ENABLE [db], \
                     RELOAD"
                );
                out.extend_from_slice(&build::error("ERROR", "42601", &text));
            }
        }
    }
}

impl Console<'_> {
    /// PgBouncer's KILL: the clients of `database` (all with `None`) are disconnected with
    /// 57P01, its server connections closed, and it stays paused until RESUME: new clients
    /// may log in, their queries wait.
    fn kill(&self, database: Option<&str>, out: &mut BytesMut) {
        self.pools.pause(database, true);
        let key = self.service.key();
        super::cancel::kill(&key, |_, c| database.is_none_or(|db| db == c.database));
        self.pools.reconnect(database);
        out.extend_from_slice(&build::command_complete("KILL"));
    }

    /// PgBouncer's KILL_CLIENT: one client, by the `id` SHOW CLIENTS gives it.
    fn kill_client(&self, id: &str, out: &mut BytesMut) {
        let Ok(id) = id.parse::<i32>() else {
            let text =
                format!("invalid client id {id:?}: KILL_CLIENT takes an id from SHOW CLIENTS");
            out.extend_from_slice(&build::error("ERROR", "22023", &text));
            return;
        };
        let key = self.service.key();
        match super::cancel::kill(&key, |pid, _| pid == id) {
            0 => {
                let text = format!("client {id} not found");
                out.extend_from_slice(&build::error("ERROR", "42704", &text));
            }
            _ => out.extend_from_slice(&build::command_complete("KILL_CLIENT")),
        }
    }

    /// PgBouncer's WAIT_CLOSE: answers once no client holds a server connection that is to
    /// close when it comes back (after RECONNECT, or from the pools a RELOAD replaced), of
    /// `database` or of all. Bounded by `query_wait_timeout`, then an error says how many
    /// are left: a client holding a transaction open must not hold the console forever.
    async fn wait_close(&self, database: Option<&str>, out: &mut BytesMut) {
        let key = self.service.key();
        let limit = self.service.spec.pg.query_wait_timeout;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let current = self.pools.all();
            let left = super::cancel::clients_of(&key)
                .iter()
                .filter_map(|c| c.server.as_ref()?.origin.as_ref())
                .filter(|(pool, _)| database.is_none_or(|db| db == pool.key.database))
                .filter(|(pool, epoch)| {
                    pool.is_stale(*epoch) || !current.iter().any(|p| Arc::ptr_eq(p, pool))
                })
                .count();
            if left == 0 {
                out.extend_from_slice(&build::command_complete("WAIT_CLOSE"));
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                let text = format!(
                    "WAIT_CLOSE gave up after query_wait_timeout ({limit:?}): {left} server \
                     connection(s) still lent to clients"
                );
                out.extend_from_slice(&build::error("ERROR", "57014", &text));
                return;
            }
            tokio::time::sleep(WAIT_CLOSE_POLL).await;
        }
    }
}

/// How often WAIT_CLOSE looks again.
const WAIT_CLOSE_POLL: std::time::Duration = std::time::Duration::from_millis(50);
