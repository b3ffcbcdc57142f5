//! Connections kept open and ready for the next client that needs one of its own (a
//! blocking command, a transaction, a subscriber). Opening one takes a connect and a
//! handshake; meanwhile another client's command, sent after the blocking one, could reach
//! Redis first (an LPUSH then finds no BLPOP waiting). With one ready, the command goes out
//! at once, and the stock is refilled in the background. Only for the service's own
//! credentials over plain TCP or a Unix socket, where a closed spare can be told without
//! waiting (a TLS record layer cannot be peeked).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::pool::Pools;
use super::upstream::RedisStream;
use crate::backend::BackendState;
use crate::config::Role;
use crate::snapshot::ServiceRuntime;

/// A ready connection and the backend it goes to.
type Spare = (Arc<BackendState>, RedisStream);

/// One ready connection per protocol version.
#[derive(Default)]
pub struct Spares {
    ready: Mutex<[Option<Spare>; 2]>,
    refilling: [AtomicBool; 2],
}

impl Spares {
    /// A ready connection speaking `resp3` to an available primary, if one is kept.
    pub fn take(
        &self,
        service: &ServiceRuntime,
        resp3: bool,
    ) -> Option<(Arc<BackendState>, RedisStream)> {
        let taken = self.ready.lock().ok()?[usize::from(resp3)].take();
        let (backend, stream) = taken?;
        let cooldown = service.spec.thresholds.cooldown;
        let usable = backend.role == Role::Primary
            && backend.is_available(Instant::now(), cooldown)
            && open(&stream);
        usable.then_some((backend, stream))
    }

    /// Opens a spare for `resp3` in the background unless one is kept or on its way.
    pub fn refill(pools: &Arc<Pools>, service: &Arc<ServiceRuntime>, resp3: bool) {
        if service.spec.server_tls.is_some() {
            return;
        }
        let me = &pools.spares;
        let kept = me
            .ready
            .lock()
            .map(|r| r[usize::from(resp3)].is_some())
            .unwrap_or(true);
        if kept || me.refilling[usize::from(resp3)].swap(true, Ordering::AcqRel) {
            return;
        }
        let (pools, service) = (pools.clone(), service.clone());
        tokio::spawn(async move {
            let opened = super::pool::open_dedicated_fresh(&service, resp3).await;
            if let (Ok(spare), Ok(mut ready)) = (opened, pools.spares.ready.lock()) {
                ready[usize::from(resp3)] = Some(spare);
            }
            pools.spares.refilling[usize::from(resp3)].store(false, Ordering::Release);
        });
    }
}

/// Whether the server has not closed `stream`: nothing to read yet (a server sends nothing
/// unasked to an idle connection; EOF or bytes mean it is gone or out of step).
fn open(stream: &RedisStream) -> bool {
    let mut byte = [0u8; 1];
    let peeked = match stream {
        RedisStream::Plain(s) => s.try_read(&mut byte),
        RedisStream::Unix(s) => s.try_read(&mut byte),
        RedisStream::Tls(_) => return false,
    };
    matches!(peeked, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}
