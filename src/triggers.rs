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

type Watcher = Debouncer<notify::RecommendedWatcher, RecommendedCache>;

/// Keeps the watch alive while held.
pub struct Watch(#[allow(dead_code)] Arc<std::sync::Mutex<Watcher>>);

/// Watches `clusters_dir` recursively and reloads after each burst of changes.
///
/// The directory itself may be replaced, not just its files: a Kubernetes ConfigMap volume
/// swaps a `..data` symlink to a new directory, and `clusters_dir` may be reached through
/// it; an inotify watch stays on the old directory, which is then deleted. So the parent
/// is watched too, and after every burst the watch on `clusters_dir` is made again, on
/// whatever the path now names.
pub fn watch(gw: Arc<Gateway>) -> notify::Result<Watch> {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let dir = gw.clusters_dir.clone();
    let watched = dir.clone();
    // In the parent only the directory itself and a ConfigMap's `..` entries count (the
    // parent may hold the gateway's own log).
    let concerns = move |p: &std::path::Path| {
        p.starts_with(&watched)
            || p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".."))
    };
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        let relevant = match result {
            Ok(events) => events.iter().any(|e| {
                !matches!(e.kind, EventKind::Access(_)) && e.paths.iter().any(|p| concerns(p))
            }),
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
    debouncer.watch(&dir, RecursiveMode::Recursive)?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        // Best effort: a parent the gateway may not read still leaves the directory watched.
        if let Err(e) = debouncer.watch(parent, RecursiveMode::NonRecursive) {
            tracing::debug!(error = %e, "cannot watch the parent of clusters_dir");
        }
    }
    let debouncer = Arc::new(std::sync::Mutex::new(debouncer));
    let rearm = debouncer.clone();
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            while rx.try_recv().is_ok() {}
            if let Ok(mut d) = rearm.lock() {
                let _ = d.unwatch(&dir);
                if let Err(e) = d.watch(&dir, RecursiveMode::Recursive) {
                    tracing::warn!(error = %e, dir = %dir.display(), "cannot watch clusters_dir again");
                }
            }
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
