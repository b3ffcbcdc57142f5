//! `CLIENT PAUSE timeout [WRITE|ALL]` and `CLIENT UNPAUSE`, done by the proxy for one
//! service's clients, as PgBouncer's PAUSE is done by the pooler: a paused client's next
//! command (every command with ALL, those that may write with WRITE) waits until the pause
//! ends or is lifted; what is already sent runs. The backend is not paused: other proxies
//! and direct clients are not held
//! ([CLIENT PAUSE](https://redis.io/docs/latest/commands/client-pause/)).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use tokio::time::Instant;

use throome_resp::CommandSpec;
use throome_resp::commands::flag;

#[derive(Default)]
pub struct Pause {
    /// Checked on every request: true while a pause may be in effect.
    on: AtomicBool,
    state: Mutex<Option<(Instant, bool)>>,
    lifted: Notify,
}

impl Pause {
    /// Pauses until `until`; `all` holds every command, else only those that may write. A
    /// pause in effect is only made longer or stricter, as in Redis (`pauseClients`).
    pub fn pause(&self, until: Instant, all: bool) {
        if let Ok(mut s) = self.state.lock() {
            let (end, strict) = s.map_or((until, all), |(e, a)| (e.max(until), a || all));
            *s = Some((end, strict));
            self.on.store(true, Ordering::Release);
        }
    }

    pub fn unpause(&self) {
        if let Ok(mut s) = self.state.lock() {
            *s = None;
            self.on.store(false, Ordering::Release);
        }
        self.lifted.notify_waiters();
    }

    /// Waits while a pause holds `spec` (CLIENT UNPAUSE itself is never held).
    pub async fn gate(&self, spec: &CommandSpec) {
        while self.on.load(Ordering::Acquire) {
            let lifted = self.lifted.notified();
            let Some(until) = self.holds(spec) else {
                return;
            };
            tokio::select! {
                () = lifted => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// The end of the pause that holds `spec`, if one does; ends a pause that is over.
    fn holds(&self, spec: &CommandSpec) -> Option<Instant> {
        let mut s = self.state.lock().ok()?;
        let (until, all) = (*s)?;
        if Instant::now() >= until {
            *s = None;
            self.on.store(false, Ordering::Release);
            return None;
        }
        let writes = spec.is_write() || spec.has(flag::MAY_REPLICATE);
        let unpause = spec.name == "unpause";
        ((all || writes) && !unpause).then_some(until)
    }
}
