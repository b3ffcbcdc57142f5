//! Kafka services (`type: kafka`): the service's `listen` is the bootstrap address; every
//! upstream broker gets a proxy port of its own (`ports`), and the responses that name
//! brokers are rewritten to point at those ports, so clients never learn or reach the real
//! brokers. Each client connection has its own upstream connection (Kafka clients multiplex
//! on their own, and SASL state is per connection).

mod adapter;
mod by_cluster;
mod connect;
mod exchange;
mod idle;
pub mod metrics;
mod ports;
pub mod probe;
pub use adapter::Adapter;
mod sasl;
mod session;

pub use ports::{BrokerPorts, PortError, Upstream};
pub use session::serve;
