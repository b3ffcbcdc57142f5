//! Throome: one gateway in front of Redis, PostgreSQL and Kafka backends.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod accepted;
pub mod adapters;
pub mod admin;
pub mod backend;
pub mod bufpool;
pub mod by_cluster;
pub mod cli;
pub mod config;
pub mod data;
pub mod error;
pub mod gateway;
pub mod handover;
pub mod health;
pub mod kafka;
pub mod latency;
pub mod listener;
pub mod memtrim;
pub mod metrics;
pub mod postgres;
pub mod protocol;
pub mod redis;
pub mod router;
pub mod session;
pub mod snapshot;
pub mod tcp;
#[cfg(test)]
mod test_support;
pub mod tls;
pub mod triggers;
pub mod upstream;
pub mod workers;
