//! Thread-per-core workers (`server.workers > 1` with
//! `server.thread_per_core = true`).
//!
//! Each worker is an OS thread running a single-threaded tokio runtime.
//! Every `server.listen` address is bound once per worker with
//! `SO_REUSEPORT`, so the kernel spreads new connections over the workers,
//! and a connection lives on the worker that accepted it: its requests,
//! its TLS, its upstream connections (each upstream origin keeps one idle
//! list per worker, see [`crate::upstream::http`]) never move to another
//! thread. What must stay one for the whole process is shared, behind
//! atomics and locks, exactly as with the multi-threaded runtime: the
//! [`crate::proxy::Gate`] (setup, store, metrics, login throttle, CGI and
//! FastCGI limits, audit log), the `max_connections` slots and each
//! origin's `upstream_max_connections`.
//!
//! The Redis store keeps one connection per worker, plus one for the main
//! runtime, each driven by the runtime that uses it, so that a store call
//! never waits on another thread (see `session::redis::connection`).
//!
//! The rest runs once, on the main runtime: signals (SIGHUP reload,
//! SIGTERM drain), the admin listener, the HTTPS redirect listener and
//! background tasks (sweeper, certificate and users file watchers,
//! snapshots).
//!
//! A listener on port 0 is bound first on one socket; the others are
//! bound to the port the OS gave it, so every worker listens on the same
//! address.

use std::cell::Cell;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// The kernel's listen queue length asked for, as tokio's own `bind` does.
const BACKLOG: i32 = 1024;

thread_local! {
    static INDEX: Cell<Option<usize>> = const { Cell::new(None) };
}

/// This thread's worker number: 0 to `workers - 1` on a worker thread, 0
/// anywhere else (the multi-threaded runtime, the main runtime, tests).
pub fn current() -> usize {
    worker().unwrap_or(0)
}

/// This thread's worker number, `None` outside the workers.
pub fn worker() -> Option<usize> {
    INDEX.with(Cell::get)
}

/// Marks this thread as worker `index`, for [`current`].
pub(crate) fn enter(index: usize) {
    INDEX.with(|i| i.set(Some(index)));
}

/// `addr` bound `count` times with `SO_REUSEPORT`, all on the same port
/// (the one the OS chose for the first, when `addr` asks for port 0), in
/// non-blocking mode, ready for [`tokio::net::TcpListener::from_std`].
pub fn bind_shared(addr: SocketAddr, count: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let first = bind_one(addr)?;
    let bound = first.local_addr()?;
    let mut listeners = Vec::with_capacity(count.max(1));
    listeners.push(first);
    for _ in 1..count {
        listeners.push(bind_one(bound)?);
    }
    Ok(listeners)
}

fn bind_one(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As tokio's `TcpListener::bind` does: a restart may bind while the
    // previous process's connections are in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        // The same as the OS default elsewhere: `[::]` does not take IPv4.
        let _ = socket.set_only_v6(true);
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_gives_every_socket_the_same_port() {
        let listeners = bind_shared(SocketAddr::from(([127, 0, 0, 1], 0)), 3).unwrap();
        assert_eq!(listeners.len(), 3);
        let port = listeners[0].local_addr().unwrap().port();
        assert_ne!(port, 0);
        for l in &listeners {
            assert_eq!(l.local_addr().unwrap().port(), port);
        }
    }

    #[test]
    fn an_address_in_use_elsewhere_is_refused() {
        // A plain listener without SO_REUSEPORT keeps its port to itself.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(bind_shared(taken.local_addr().unwrap(), 2).is_err());
    }

    #[test]
    fn outside_a_worker_the_index_is_zero() {
        assert_eq!((current(), worker()), (0, None));
        std::thread::spawn(|| {
            enter(3);
            assert_eq!((current(), worker()), (3, Some(3)));
        })
        .join()
        .unwrap();
        assert_eq!((current(), worker()), (0, None));
    }
}
