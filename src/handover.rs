//! Restart without dropping clients, as Envoy's hot restart: on SIGUSR2 (or
//! `throome-cli upgrade`) the gateway starts its binary again and hands it every listening
//! socket, the very sockets, not new ones on the same ports, so no connection is refused
//! and none queued in a backlog is lost. The new process serves them once it is ready; the
//! old one then stops accepting, drains its clients for `drain_timeout` and exits.
//!
//! The sockets travel as inherited file descriptors in systemd's socket-activation form
//! (`LISTEN_FDS`, descriptors from 3; read with the `listenfd` crate), and the new process
//! says it is ready by creating the file named in `THROOME_READY_FILE`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long the new process may take to become ready before the old one gives up on it.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const READY_FILE: &str = "THROOME_READY_FILE";

/// A listening socket, a duplicate of one a listener accepts on.
enum Socket {
    Tcp(std::net::TcpListener),
    Unix(UnixListener),
}

/// The sockets the previous process handed over, until a listener claims them.
#[derive(Default)]
struct Inherited {
    tcp: BTreeMap<SocketAddr, Vec<std::net::TcpListener>>,
    unix: BTreeMap<PathBuf, UnixListener>,
}

static INHERITED: Mutex<Option<Inherited>> = Mutex::new(None);
/// Every socket being listened on, by registration, for the next hand-over.
static OPEN: Mutex<BTreeMap<u64, Vec<Socket>>> = Mutex::new(BTreeMap::new());
static NEXT: AtomicU64 = AtomicU64::new(0);
/// Set once the sockets are handed over: a stopping listener leaves its Unix socket's file,
/// which the new process listens on.
static HANDED_OVER: AtomicBool = AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("cannot start the new process: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("cannot pass the sockets: {0}")]
    Fds(String),
    #[error("the new process exited before it was ready ({0})")]
    Exited(std::process::ExitStatus),
    #[error("the new process was not ready within {0:?}")]
    NotReady(Duration),
}

/// Takes the sockets the previous process passed, if any. Call first thing in `main`, while
/// the process has one thread (it reads and clears `LISTEN_FDS`).
pub fn inherit() -> std::io::Result<usize> {
    let mut fds = listenfd::ListenFd::from_env();
    let mut inherited = Inherited::default();
    let n = fds.len();
    for i in 0..n {
        if let Ok(Some(l)) = fds.take_tcp_listener(i) {
            inherited.tcp.entry(l.local_addr()?).or_default().push(l);
        } else if let Ok(Some(l)) = fds.take_unix_listener(i) {
            let path = l.local_addr()?.as_pathname().map(Path::to_path_buf);
            if let Some(path) = path {
                inherited.unix.insert(path, l);
            }
        }
    }
    if let Ok(mut slot) = INHERITED.lock() {
        *slot = Some(inherited);
    }
    Ok(n)
}

/// The inherited sockets for `addr`, if the previous process listened there.
pub fn take_tcp(addr: SocketAddr) -> Option<Vec<std::net::TcpListener>> {
    INHERITED.lock().ok()?.as_mut()?.tcp.remove(&addr)
}

pub fn take_unix(path: &Path) -> Option<UnixListener> {
    INHERITED.lock().ok()?.as_mut()?.unix.remove(path)
}

/// Closes what no listener of the new configuration claimed.
pub fn release_unclaimed() {
    if let Ok(mut slot) = INHERITED.lock() {
        *slot = None;
    }
}

/// Keeps a duplicate of a listener's sockets for the next hand-over while held; dropped
/// when the listener stops accepting, so a socket nobody serves is not passed on.
pub struct Registration(u64);

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut open) = OPEN.lock() {
            open.remove(&self.0);
        }
    }
}

pub fn register_tcp(sockets: &[std::net::TcpListener]) -> Registration {
    register(
        sockets
            .iter()
            .filter_map(|s| s.try_clone().ok())
            .map(Socket::Tcp)
            .collect(),
    )
}

pub fn register_unix(socket: &UnixListener) -> Registration {
    register(
        socket
            .try_clone()
            .ok()
            .map(Socket::Unix)
            .into_iter()
            .collect(),
    )
}

fn register(sockets: Vec<Socket>) -> Registration {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut open) = OPEN.lock() {
        open.insert(id, sockets);
    }
    Registration(id)
}

/// An upgrade asked for by the admin API (`POST /api/v1/upgrade`, `throome-cli upgrade`).
static REQUESTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

pub fn request() {
    REQUESTED.notify_one();
}

pub async fn requested() {
    REQUESTED.notified().await;
}

pub fn handed_over() -> bool {
    HANDED_OVER.load(Ordering::Acquire)
}

/// Tells the process that started this one that it serves now.
pub fn ready() {
    if let Some(path) = std::env::var_os(READY_FILE) {
        if let Err(e) = std::fs::write(&path, b"ready") {
            tracing::error!(error = %e, "cannot tell the previous process that this one is ready");
        }
    }
}

/// Starts this binary again with the same arguments and every open listening socket, and
/// waits until it is ready. `Ok`: the caller stops accepting, drains and exits.
pub async fn upgrade() -> Result<u32, HandoverError> {
    use command_fds::{CommandFdExt, FdMapping};
    let fds = duplicates()?;
    let ready = std::env::temp_dir().join(format!(
        "throome-ready-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&ready);
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(std::env::args_os().skip(1))
        .env("LISTEN_FDS", fds.len().to_string())
        .env_remove("LISTEN_PID")
        .env(READY_FILE, &ready);
    let mappings = fds
        .into_iter()
        .zip(3..)
        .map(|(parent_fd, child_fd)| FdMapping {
            parent_fd,
            child_fd,
        })
        .collect();
    cmd.fd_mappings(mappings)
        .map_err(|e| HandoverError::Fds(e.to_string()))?;
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let started = Instant::now();
    loop {
        if ready.exists() {
            let _ = std::fs::remove_file(&ready);
            HANDED_OVER.store(true, Ordering::Release);
            // The new process outlives this one (it is re-parented when this one exits).
            drop(child);
            return Ok(pid);
        }
        if let Some(status) = child.try_wait()? {
            return Err(HandoverError::Exited(status));
        }
        if started.elapsed() > READY_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HandoverError::NotReady(READY_TIMEOUT));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A duplicate of every registered socket, to pass on.
fn duplicates() -> Result<Vec<OwnedFd>, HandoverError> {
    let open = OPEN
        .lock()
        .map_err(|_| HandoverError::Fds("the socket registry is poisoned".into()))?;
    let mut fds = Vec::new();
    for socket in open.values().flatten() {
        let fd: OwnedFd = match socket {
            Socket::Tcp(s) => s.try_clone()?.into(),
            Socket::Unix(s) => s.try_clone()?.into(),
        };
        fds.push(fd);
    }
    Ok(fds)
}
