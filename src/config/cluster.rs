//! The cluster file, `clusters/<id>/config.yaml`: one team's services and their backends.
//!
//! The shape is the seed's (`cluster_id`, `name`, `services`, `routing`, `health`) plus the
//! extensions named in the gateway-core issue. Unknown keys are errors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::security::{ClientAuth, SaslMechanism, ServerTlsConfig, TlsConfig};
use super::types::{ListenAddr, Seconds, Secret};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub cluster_id: Spanned<String>,
    pub name: String,
    #[serde(default)]
    pub services: BTreeMap<String, Spanned<ServiceConfig>>,
    #[serde(default)]
    pub routing: RoutingConfig,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerConfig,
    /// Clients of this cluster at once on the gateway's shared listeners, all protocols
    /// together (default: no limit of its own; `gateway.max_connections` still applies).
    pub max_client_conn: Option<usize>,
    /// Bearer tokens for this cluster's HTTP data API (`/api/v1/clusters/<id>/...`); none:
    /// the data API refuses every request for the cluster. The admin token is not one.
    #[serde(default)]
    pub api_tokens: Vec<Spanned<ApiToken>>,
}

/// One data API token: what it may do (`scopes`) on which services (`services`, all when
/// empty). `token` is `sha256:<64 hex digits>` (what `throome-cli hash-token` prints) or,
/// typically as `${ENV}`, the token itself, hashed when loaded.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    pub name: String,
    pub token: Secret,
    #[serde(default = "ApiScope::all")]
    pub scopes: Vec<ApiScope>,
    #[serde(default)]
    pub services: Vec<String>,
    /// The PostgreSQL role SQL of this token runs as (default: the service's `username`).
    pub user: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiScope {
    /// Reads: GET on cache keys and records, read-only Redis commands, SQL in a read-only
    /// transaction.
    Read,
    /// Everything else a data request does.
    Write,
}

impl ApiScope {
    fn all() -> Vec<ApiScope> {
        vec![ApiScope::Read, ApiScope::Write]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    Tcp,
    Redis,
    Postgres,
    Kafka,
}

impl ServiceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Tcp => "tcp",
            ServiceKind::Redis => "redis",
            ServiceKind::Postgres => "postgres",
            ServiceKind::Kafka => "kafka",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    #[serde(rename = "type")]
    pub kind: ServiceKind,
    /// Shorthand for one primary backend (the seed's shape).
    pub host: Option<String>,
    pub port: Option<u16>,
    #[serde(default)]
    pub backends: Vec<BackendConfig>,
    /// Where clients connect. A service without it loads but is not exposed.
    pub listen: Option<Spanned<ListenAddr>>,
    /// Also (or only) listen on this Unix-domain socket, an absolute path (PgBouncer's
    /// `unix_socket_dir`, twemproxy's `listen: /path`; for psql name it
    /// `<dir>/.s.PGSQL.<port>`). redis, postgres and tcp services.
    pub unix_socket: Option<Spanned<String>>,
    /// Permissions of `unix_socket`, octal (default `"0777"`, as PostgreSQL and PgBouncer:
    /// clients still authenticate; restrict access with the directory's permissions or here).
    pub unix_socket_mode: Option<String>,
    /// Whether the gateway's shared listener of this protocol (`listeners:` in the gateway
    /// file) serves this service to clients that name the cluster (default true).
    pub shared_listener: Option<bool>,
    /// Per-service override of the cluster's `routing`.
    pub routing: Option<ServiceRouting>,
    /// Upper bound for one upstream TCP connect, in seconds (default 3).
    pub connect_timeout: Option<Seconds>,
    /// Backend credentials (used by protocol adapters, never printed).
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Postgres: the database servers are logged in to. Redis: the database number every
    /// backend connection SELECTs (twemproxy's `redis_db`).
    pub database: Option<String>,
    /// Redis: pipelined upstream connections per backend shared by all clients (default 2).
    pub pool_size: Option<usize>,
    /// Redis: send read-only commands to replicas (through the routing strategy; with
    /// `sharding: cluster`, to a replica of the slot's master).
    pub read_from_replicas: Option<bool>,
    /// Credentials clients must present to the proxy (checked by Throome, independent of the
    /// backend credentials above).
    pub auth: Option<ClientAuth>,
    /// Postgres: TLS for clients that ask for it (SSLRequest).
    pub tls: Option<TlsConfig>,
    /// Postgres: TLS to the servers.
    pub server_tls: Option<ServerTlsConfig>,
    /// Redis: seconds a backend may take to answer a request before the client gets an
    /// error (twemproxy's `timeout`); blocking commands are exempt. Default: no limit.
    pub request_timeout: Option<Seconds>,
    /// Redis: largest argument a client may send, in bytes (Redis's `proto-max-bulk-len`,
    /// default 512 MiB).
    pub proto_max_bulk_len: Option<u64>,
    /// Redis: most arguments in one command (default 1048576).
    pub max_multibulk_length: Option<u64>,
    /// Redis: reply bytes buffered for one client that is not reading them before it is
    /// closed (Redis's `client-output-buffer-limit` hard limit; default 1 GiB).
    pub client_output_buffer_limit: Option<u64>,
    /// Redis: spread keys over the backends (`ketama`, twemproxy-compatible).
    pub sharding: Option<Sharding>,
    /// Redis with sharding: the two characters around the part of a key that is hashed
    /// (default `"{}"`; `""` hashes whole keys).
    pub hash_tag: Option<String>,
    /// Redis with `sharding: ketama` or `modula`: twemproxy's key hash (default fnv1a_64).
    pub hash: Option<KeyHash>,
    /// Redis with `sharding: ketama`: while a shard is unavailable (health checks, circuit
    /// breaker) its keys go to the others, as twemproxy's `auto_eject_hosts: true` (default
    /// false: they get an error until it returns).
    pub auto_eject_hosts: Option<bool>,
    /// Postgres: `transaction` (default: a server connection per transaction) or `session`
    /// (one for the client's lifetime, reset with `DISCARD ALL` before reuse).
    pub pool_mode: Option<PoolMode>,
    /// Postgres: most client connections at once (default 10000); more are refused with
    /// SQLSTATE 53300.
    pub max_client_conn: Option<usize>,
    /// Postgres: most server connections to one backend across all its pools (users and
    /// databases), like PgBouncer's `max_db_connections`; idle ones of other pools are
    /// closed to make room (default: no limit beyond `pool_size` per pool).
    pub max_server_connections: Option<usize>,
    /// Postgres: most server connections of one user across all its pools (backends and
    /// databases), PgBouncer's `max_user_connections` (default: no limit).
    pub max_user_connections: Option<usize>,
    /// Postgres: server connections each pool keeps open even when idle (default 0).
    pub min_pool_size: Option<usize>,
    /// Postgres: seconds a client waits for a free server connection before it gets SQLSTATE
    /// 53300 (default 120, as PgBouncer).
    pub query_wait_timeout: Option<Seconds>,
    /// Postgres: extra server connections a pool may open for clients that waited
    /// `reserve_pool_timeout` (PgBouncer's `reserve_pool_size`; default 0).
    pub reserve_pool_size: Option<usize>,
    /// Postgres: seconds a client waits before the reserve is used (default 5).
    pub reserve_pool_timeout: Option<Seconds>,
    /// Postgres: seconds a client may sit idle inside a transaction, holding a server,
    /// before it is disconnected and the transaction rolled back (PgBouncer's
    /// `idle_transaction_timeout`; default: no limit).
    pub idle_transaction_timeout: Option<Seconds>,
    /// Seconds a client may sit idle, owed nothing and sending no whole request, before it
    /// is disconnected: Postgres between transactions (PgBouncer's `client_idle_timeout`;
    /// default: no limit), Redis (redis-server's `timeout`; default: no limit), Kafka (a
    /// broker's `connections.max.idle.ms`; default 600). Bytes of an unfinished request do
    /// not count as activity, so a client trickling one (slowloris) is cut off too.
    pub client_idle_timeout: Option<Seconds>,
    /// Postgres: seconds a client has to finish its startup and authentication (PgBouncer's
    /// `client_login_timeout`; default 60).
    pub client_login_timeout: Option<Seconds>,
    /// Postgres: seconds a query may run before the proxy cancels it (PgBouncer's
    /// `query_timeout`; default: no limit).
    pub query_timeout: Option<Seconds>,
    /// Postgres: seconds over which the admin console's SHOW STATS `avg_*` columns are
    /// averaged (PgBouncer's `stats_period`; default 60).
    pub stats_period: Option<Seconds>,
    /// Postgres: seconds an idle server connection is kept (default 600).
    pub server_idle_timeout: Option<Seconds>,
    /// Postgres: seconds after which a server connection is closed when next idle
    /// (default 3600).
    pub server_lifetime: Option<Seconds>,
    /// Postgres: read-only work (single SELECTs outside transactions, `BEGIN READ ONLY`)
    /// goes to replicas.
    pub read_write_split: Option<bool>,
    /// Postgres: prepared statements kept per server connection; past it the least
    /// recently used is closed on the server (default 1000, PgBouncer's
    /// `max_prepared_statements`).
    pub max_prepared_statements: Option<usize>,
    /// Postgres: settings of single users over the service's (PgBouncer's `[users]`):
    /// `pool_mode` for that user's clients, `pool_size` for the pools of that login.
    #[serde(default)]
    pub user_settings: BTreeMap<String, UserSettings>,
    /// Postgres, session mode: what a server runs when its client leaves, before another
    /// client gets it (default `DISCARD ALL`; empty: nothing), PgBouncer's
    /// `server_reset_query`.
    pub server_reset_query: Option<String>,
    /// Postgres, transaction mode: `track` (default) keeps each client's session state
    /// (settings and roles replayed on whichever server it gets; a client holding state that
    /// cannot be replayed keeps its server), `discard` forgets it as PgBouncer does.
    pub session_state: Option<SessionState>,
    /// Postgres, transaction mode with `session_state: track`: clients of one pool that may
    /// hold a server of their own for state that cannot be replayed (temporary tables,
    /// advisory locks, LISTEN, WITH HOLD cursors, SQL PREPARE); a statement that would pin
    /// one more gets SQLSTATE 53300 (default: half the pool, at least 1).
    pub max_pinned: Option<usize>,
    /// Kafka: the host clients are told to connect to for the per-broker ports (default: the
    /// `listen` address's IP).
    pub advertised_host: Option<String>,
    /// Kafka: each upstream broker is reachable through the proxy on `broker_port_base +
    /// node_id`, bound on the `listen` IP (default: the `listen` port + 1, as Kroxylicious's
    /// port-per-broker scheme).
    pub broker_port_base: Option<u16>,
    /// Kafka: explicit proxy ports for some node ids (override `broker_port_base`).
    #[serde(default)]
    pub broker_ports: BTreeMap<i32, u16>,
    /// Kafka: largest request or response frame in bytes (Kafka's
    /// `socket.request.max.bytes`, default 100 MiB); a bigger one closes the connection.
    pub max_frame_bytes: Option<u64>,
    /// Kafka: with `username` and `password`, the proxy logs in to every broker connection
    /// itself with this SASL mechanism (clients' own SASL then ends at the proxy).
    pub sasl_mechanism: Option<SaslMechanism>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolMode {
    Session,
    #[default]
    Transaction,
}

/// What transaction pooling does with a client's session state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Replay settings on each server, pin clients whose state cannot be replayed.
    #[default]
    Track,
    /// PgBouncer's behaviour: state set in one transaction may not be there in the next.
    Discard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sharding {
    /// Consistent hashing as twemproxy's `distribution: ketama` (with its `hash`).
    Ketama,
    /// twemproxy's `distribution: modula`: the key's hash modulo the total weight.
    Modula,
    /// The backends are (seed nodes of) a Redis Cluster: slots from `CLUSTER SLOTS`,
    /// MOVED and ASK followed inside the proxy.
    Cluster,
}

/// twemproxy's key hash functions (its `hash:`), by twemproxy's names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyHash {
    #[default]
    #[serde(rename = "fnv1a_64")]
    Fnv1a64,
    #[serde(rename = "fnv1_64")]
    Fnv164,
    #[serde(rename = "fnv1a_32")]
    Fnv1a32,
    #[serde(rename = "fnv1_32")]
    Fnv132,
    Md5,
    Murmur,
    OneAtATime,
    Crc16,
    Crc32,
    Crc32a,
    Hsieh,
    Jenkins,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// A name or address; one that starts with `/` is a Unix-domain socket (see
    /// `validate_backend_address`).
    pub host: String,
    /// Optional only for a Redis socket file.
    #[serde(default)]
    pub port: u16,
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default)]
    pub role: Role,
    /// Redis with ketama sharding: the server's name in twemproxy's `servers:` list
    /// (`host:port:weight name`); the ring is built from names where they are given, so a
    /// named shard keeps its keys when its address changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

fn default_weight() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Primary,
    Replica,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    RoundRobin,
    Weighted,
    LeastConnections,
    Adaptive,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::Weighted => "weighted",
            Strategy::LeastConnections => "least_connections",
            Strategy::Adaptive => "adaptive",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Default: `round_robin`, or `adaptive` when `gateway.enable_ai` is true.
    pub strategy: Option<Strategy>,
    #[serde(default = "yes")]
    pub failover_enabled: bool,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            strategy: None,
            failover_enabled: true,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRouting {
    pub strategy: Option<Strategy>,
    pub failover_enabled: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Seconds between active probes of each backend.
    #[serde(default = "default_interval")]
    pub interval: Seconds,
    /// Seconds one probe may take (default: the smaller of 2 and `interval`).
    pub timeout: Option<Seconds>,
    /// Consecutive failed probes that mark a backend down.
    #[serde(default = "two")]
    pub unhealthy_threshold: u32,
    /// Consecutive good probes that mark a down backend up again.
    #[serde(default = "two")]
    pub healthy_threshold: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: true,
            interval: default_interval(),
            timeout: None,
            unhealthy_threshold: 2,
            healthy_threshold: 2,
        }
    }
}

/// Passive failure detection: consecutive connect or I/O failures open a backend's circuit;
/// after `cooldown` one trial (a request or a probe) decides whether it closes again.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "five")]
    pub failure_threshold: u32,
    #[serde(default = "default_cooldown")]
    pub cooldown: Seconds,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            enabled: true,
            failure_threshold: 5,
            cooldown: default_cooldown(),
        }
    }
}

fn yes() -> bool {
    true
}
fn two() -> u32 {
    2
}
fn five() -> u32 {
    5
}
fn default_interval() -> Seconds {
    Seconds::from_secs(10)
}
fn default_cooldown() -> Seconds {
    Seconds::from_secs(10)
}

/// One user's settings over the service's (PgBouncer's `[users]` section).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserSettings {
    pub pool_mode: Option<PoolMode>,
    pub pool_size: Option<usize>,
}
