//! Throome: one gateway in front of Redis, PostgreSQL and Kafka backends.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
pub mod backend;
pub mod router;
pub mod snapshot;
pub mod metrics;
pub mod error;
pub mod health;
pub mod session;
pub mod tcp;
pub mod upstream;
pub mod listener;
pub mod gateway;
pub mod admin;
pub mod triggers;
pub mod cli;
