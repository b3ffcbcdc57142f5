//! The ketama ring (or modula table) of a sharded service. With `auto_eject_hosts`, routing uses a ring over
//! the shards available right now (health checks, circuit breaker), as twemproxy rebuilds
//! its continuum over its live servers when one is ejected: the missing shard's keys go to
//! the others until it is back, the rest stay where they are.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::shard::{Continuum, server_name};
use crate::snapshot::ServiceRuntime;

pub struct Ring {
    /// (name, weight) of every backend, in config order.
    servers: Vec<(String, u32)>,
    /// `sharding: modula` rather than ketama.
    modula: bool,
    all: Arc<Continuum>,
    auto_eject: bool,
    /// The last ring over a subset: (bitmask of the available backends, ring).
    live: Mutex<(u64, Arc<Continuum>)>,
}

impl Ring {
    pub fn new(service: &ServiceRuntime) -> Ring {
        let servers: Vec<(String, u32)> = service
            .spec
            .backends
            .iter()
            .map(|b| {
                let name = b.name.clone();
                (
                    name.unwrap_or_else(|| server_name(&b.host, b.port)),
                    b.weight,
                )
            })
            .collect();
        let modula = service.spec.sharding == Some(crate::config::Sharding::Modula);
        let indexed: Vec<(&str, u32, usize)> = servers
            .iter()
            .enumerate()
            .map(|(i, (name, weight))| (name.as_str(), *weight, i))
            .collect();
        let all = Arc::new(build(modula, &indexed));
        Ring {
            modula,
            servers,
            live: Mutex::new((0, all.clone())),
            all,
            auto_eject: service.spec.auto_eject_hosts,
        }
    }

    /// The ring to route by now. All shards down: the full ring (its errors tell).
    pub fn current(&self, service: &ServiceRuntime, now: Instant) -> Arc<Continuum> {
        if !self.auto_eject {
            return self.all.clone();
        }
        let cooldown = service.probe_thresholds().cooldown;
        let mask = service
            .backends
            .iter()
            .take(64)
            .enumerate()
            .filter(|(_, b)| b.is_available(now, cooldown))
            .fold(0u64, |m, (i, _)| m | 1 << i);
        let full = match self.servers.len() {
            64.. => u64::MAX,
            n => (1u64 << n) - 1,
        };
        if mask == full || mask == 0 {
            return self.all.clone();
        }
        let Ok(mut live) = self.live.lock() else {
            return self.all.clone();
        };
        if live.0 != mask {
            let up: Vec<(&str, u32, usize)> = self
                .servers
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(i, (name, weight))| (name.as_str(), *weight, i))
                .collect();
            *live = (mask, Arc::new(build(self.modula, &up)));
        }
        live.1.clone()
    }
}

fn build(modula: bool, servers: &[(&str, u32, usize)]) -> Continuum {
    match modula {
        true => Continuum::modula(servers),
        false => Continuum::over(servers),
    }
}
