//! Where log lines go: a buffer in memory, written out by one thread.
//!
//! A request thread only appends its finished line to [`LogOutput`] under a
//! short lock: no allocation, no channel, no wake-up of another thread per
//! line. The writer thread wakes every [`FLUSH_INTERVAL`], or as soon as
//! [`FLUSH_AT`] bytes are waiting, and writes everything at once. If the
//! output cannot keep up (a stalled pipe), appending waits once
//! [`MAX_PENDING`] bytes are queued: lines are held back, never dropped.
//!
//! Text access lines skip the `tracing` formatter altogether and are
//! appended here directly (see [`crate::body`]); every other event goes
//! through `tracing` and reaches the same buffer through [`MakeWriter`], so
//! the order of lines is kept.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Longest a line waits in memory before it is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Bytes waiting that wake the writer at once.
pub const FLUSH_AT: usize = 64 * 1024;
/// Bytes waiting at which appending blocks until the writer caught up.
pub const MAX_PENDING: usize = 4 * 1024 * 1024;

/// The shared log buffer; clones append to the same one.
#[derive(Clone)]
pub struct LogOutput {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer thread.
    pending: Condvar,
    /// Wakes appenders waiting for room.
    drained: Condvar,
}

struct State {
    buf: Vec<u8>,
    closed: bool,
}

/// Stops the writer thread when dropped, after it wrote every line.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LogOutput {
    /// Starts the writer thread over `out`.
    pub fn start<W: Write + Send + 'static>(out: W) -> std::io::Result<(LogOutput, FlushGuard)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buf: Vec::with_capacity(FLUSH_AT),
                closed: false,
            }),
            pending: Condvar::new(),
            drained: Condvar::new(),
        });
        let writer = shared.clone();
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.run(out))?;
        Ok((
            LogOutput {
                shared: shared.clone(),
            },
            FlushGuard {
                shared,
                thread: Some(thread),
            },
        ))
    }

    /// Appends whole lines.
    pub fn append(&self, bytes: &[u8]) {
        let mut state = self.shared.lock();
        while state.buf.len() >= MAX_PENDING && !state.closed {
            state = self
                .shared
                .drained
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        let was_below = state.buf.len() < FLUSH_AT;
        state.buf.extend_from_slice(bytes);
        if was_below && state.buf.len() >= FLUSH_AT {
            self.shared.pending.notify_one();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writer thread: swaps the buffer out and writes it, until closed.
    fn run<W: Write>(&self, mut out: W) {
        let mut spare = Vec::with_capacity(FLUSH_AT);
        loop {
            let closed = {
                let mut state = self.lock();
                if state.buf.len() < FLUSH_AT && !state.closed {
                    state = self
                        .pending
                        .wait_timeout(state, FLUSH_INTERVAL)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                std::mem::swap(&mut state.buf, &mut spare);
                self.drained.notify_all();
                state.closed
            };
            if !spare.is_empty() {
                // Nowhere to report a failing log output; the lines are lost
                // but the proxy goes on.
                let _ = out.write_all(&spare).and_then(|()| out.flush());
                spare.clear();
                if spare.capacity() > MAX_PENDING {
                    spare.shrink_to(FLUSH_AT);
                }
            }
            if closed && self.lock().buf.is_empty() {
                return;
            }
        }
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.pending.notify_one();
        self.shared.drained.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One event's writer for `tracing`: the formatter writes each event whole.
pub struct EventWriter<'a> {
    output: &'a LogOutput,
}

impl Write for EventWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.output.append(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogOutput {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter { output: self }
    }
}

/// The output text access lines are appended to directly, when installed.
static DIRECT_ACCESS: OnceLock<LogOutput> = OnceLock::new();

/// Sends text access lines straight to `output`, past `tracing`'s
/// formatter (which escapes and formats field by field, at several times
/// the cost of the line). Only for the text format: JSON lines keep their
/// fields.
pub fn direct_access_lines(output: LogOutput) {
    let _ = DIRECT_ACCESS.set(output);
}

/// Where text access lines go, if not through `tracing`.
pub(crate) fn direct_access() -> Option<&'static LogOutput> {
    DIRECT_ACCESS.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` whose bytes the test can read.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_written_in_order_and_all_by_the_guard() {
        let sink = Sink::default();
        let (output, guard) = LogOutput::start(sink.clone()).unwrap();
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let output = output.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        output.append(format!("t{t} line {i}\n").as_bytes());
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        for t in 0..4 {
            let seen: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("t{t} line ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(seen, (0..20_000).collect::<Vec<_>>(), "thread {t}");
        }
    }

    #[test]
    fn a_quiet_line_is_written_within_the_interval() {
        let sink = Sink::default();
        let (output, _guard) = LogOutput::start(sink.clone()).unwrap();
        output.append(b"alone\n");
        let deadline = std::time::Instant::now() + FLUSH_INTERVAL * 20;
        while sink.0.lock().unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the line never came out"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(&*sink.0.lock().unwrap(), b"alone\n");
    }

    #[test]
    fn a_stalled_output_holds_appenders_back_and_loses_nothing() {
        /// An output that blocks until the test lets it go.
        struct Gate(Arc<(Mutex<bool>, Condvar)>, Sink);
        impl Write for Gate {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                let (open, cv) = &*self.0;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = cv.wait(open).unwrap();
                }
                self.1.write(bytes)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let sink = Sink::default();
        let (output, guard) = LogOutput::start(Gate(gate.clone(), sink.clone())).unwrap();
        let line = vec![b'x'; 1023];
        let total = 3 * MAX_PENDING / 1024;
        let appender = {
            let output = output.clone();
            let line = line.clone();
            std::thread::spawn(move || {
                for _ in 0..total {
                    let mut l = line.clone();
                    l.push(b'\n');
                    output.append(&l);
                }
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !appender.is_finished(),
            "appending went on past the limit while the output was stalled"
        );
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        appender.join().unwrap();
        drop(guard);
        assert_eq!(sink.0.lock().unwrap().len(), total * 1024);
    }
}
