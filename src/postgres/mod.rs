//! PostgreSQL services (`type: postgres`): the v3 protocol spoken natively, clients
//! authenticated by the proxy, server connections pooled per session or per transaction,
//! named prepared statements carried across pooled servers, cancel requests mapped.

mod adapter;
mod auth_query;
mod by_cluster;
mod cancel;
mod cap;
mod console;
mod dbops;
mod effects;
mod flow;
mod frontend;
pub(crate) mod hba;
mod hidden;
mod io;
mod lease;
mod local;
mod maintain;
pub mod metrics;
mod params;
pub mod pool;
pub mod prepared;
pub mod probe;
pub use adapter::Adapter;
mod readback;
mod relay;
mod reset;
pub mod scram;
mod scram_client;
mod secret;
mod session;
mod split;
mod startup;
mod state;
mod statements;
pub mod stats;
mod timeouts;
mod tokens;
mod upstream;

pub use cancel::forward as forward_cancel;
pub use session::serve;
