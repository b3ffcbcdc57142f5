//! `FaultRelay`: a fault-injecting TCP relay written for the tests, between Throome and a
//! real backend. It injects what a real server cannot be made to do on cue: added latency,
//! connections cut in the middle of a reply, and stalls longer than the proxy's timeouts.
//! Everything else (the protocol, the data) is the real server's.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// The faults in force; changed while traffic flows.
#[derive(Default)]
pub struct Faults {
    /// Added before each chunk is passed on, either way.
    pub latency_ms: AtomicU64,
    /// Nothing is passed on while set (bytes wait in the relay).
    pub stalled: AtomicBool,
    /// The next backend -> proxy chunk is cut in half: the first half goes through, then
    /// both sides of that connection are closed. Cleared once done.
    pub cut_next_reply: AtomicBool,
    /// Connections cut so far.
    pub cuts: AtomicU64,
}

pub struct FaultRelay {
    pub port: u16,
    pub faults: Arc<Faults>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl FaultRelay {
    /// Listens on a free loopback port and relays every connection to `backend`.
    pub fn start(backend: u16) -> FaultRelay {
        Self::start_on(super::free_port(), backend)
    }

    /// The same on `port`.
    pub fn start_on(port: u16, backend: u16) -> FaultRelay {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let faults = Arc::new(Faults::default());
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (f, s, o) = (faults.clone(), stop.clone(), open.clone());
        thread::spawn(move || accept_loop(listener, backend, f, s, o));
        FaultRelay {
            port,
            faults,
            stop,
            open,
        }
    }

    pub fn set_latency(&self, ms: u64) {
        self.faults.latency_ms.store(ms, Ordering::SeqCst);
    }

    pub fn stall(&self, on: bool) {
        self.faults.stalled.store(on, Ordering::SeqCst);
    }

    pub fn cut_next_reply(&self) {
        self.faults.cut_next_reply.store(true, Ordering::SeqCst);
    }

    /// Whether the armed cut has happened.
    pub fn cut_done(&self) -> bool {
        !self.faults.cut_next_reply.load(Ordering::SeqCst)
    }

    /// Closes every open relayed connection at once.
    pub fn cut_all(&self) {
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for FaultRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut_all();
    }
}

fn accept_loop(
    listener: TcpListener,
    backend: u16,
    faults: Arc<Faults>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
) {
    while !stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => return,
        };
        let Ok(server) = TcpStream::connect(("127.0.0.1", backend)) else {
            continue;
        };
        let _ = client.set_nonblocking(false);
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        {
            let mut open = open.lock().unwrap();
            open.retain(|s| s.peer_addr().is_ok());
            open.push(client.try_clone().unwrap());
            open.push(server.try_clone().unwrap());
        }
        let pair =
            |from: &TcpStream, to: &TcpStream| (from.try_clone().unwrap(), to.try_clone().unwrap());
        let (c2s, s2c) = (pair(&client, &server), pair(&server, &client));
        let (f1, f2) = (faults.clone(), faults.clone());
        thread::spawn(move || pump(c2s.0, c2s.1, f1, false));
        thread::spawn(move || pump(s2c.0, s2c.1, f2, true));
    }
}

/// One direction: read a chunk, apply the faults, write it on.
fn pump(mut from: TcpStream, mut to: TcpStream, faults: Arc<Faults>, replies: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while faults.stalled.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(10));
        }
        let latency = faults.latency_ms.load(Ordering::SeqCst);
        if latency > 0 {
            thread::sleep(Duration::from_millis(latency));
        }
        if replies && faults.cut_next_reply.swap(false, Ordering::SeqCst) {
            let _ = to.write_all(&buf[..n.div_ceil(2)]);
            faults.cuts.fetch_add(1, Ordering::SeqCst);
            break;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
