//! What makes the gateway reload besides the admin API: a debounced watch on `clusters_dir`
//! and SIGHUP.

use std::sync::Arc;
use std::time::Duration;

use notify::RecursiveMode;
use notify::event::EventKind;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc;

use crate::gateway::Gateway;

/// Editors write files in bursts (truncate, write, rename); one reload per burst.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Keeps the watch alive while held.
pub struct Watch(#[allow(dead_code)] Debouncer<notify::RecommendedWatcher, RecommendedCache>);

/// Watches `clusters_dir` recursively and reloads after each burst of changes.
pub fn watch(gw: Arc<Gateway>) -> notify::Result<Watch> {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        let relevant = match result {
            Ok(events) => events
                .iter()
                .any(|e| !matches!(e.kind, EventKind::Access(_))),
            Err(errors) => {
                for e in errors {
                    tracing::warn!(error = %e, "config watch error");
                }
                false
            }
        };
        if relevant {
            let _ = tx.send(());
        }
    })?;
    debouncer.watch(&gw.clusters_dir, RecursiveMode::Recursive)?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            while rx.try_recv().is_ok() {}
            let _ = gw.reload("file change").await;
        }
    });
    Ok(Watch(debouncer))
}

/// Reloads on every SIGHUP.
pub fn on_sighup(gw: Arc<Gateway>) -> std::io::Result<()> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let _ = gw.reload("SIGHUP").await;
        }
    });
    Ok(())
}
