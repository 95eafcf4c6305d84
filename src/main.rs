//! The `sessiongate` command: run the proxy, or one of its tools.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use sessiongate::clock::Clock;
use sessiongate::config::{Config, LogFormat};
use sessiongate::logging::{self, FlushGuard, LogOutput};
use tokio::signal::unix::{SignalKind, signal};

// Every request allocates a little (header maps, buffers, futures) and frees
// it within microseconds; mimalloc's thread-local free lists do that at a
// fraction of glibc malloc's cost (`bench/profile.sh` shows the difference).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A reverse proxy that gives sessions to web sites that have none.
#[derive(Debug, Parser)]
#[command(name = "sessiongate", version, about)]
struct Cli {
    /// Config file [default: $SESSIONGATE_CONFIG, then config/sessiongate.toml]
    #[arg(long, short = 'c', global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the config and print a summary.
    Check {
        /// text: the summary on stdout, every problem on stderr as
        /// file:line:col: message; json: the problems as a JSON array on stdout.
        #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
        format: CheckFormat,
    },
    /// Read a password from stdin and print a hash for the users file.
    HashPassword,
    /// Print a new random secret key.
    GenKey,
    /// Exit 0 when the configured proxy answers on its listener.
    Healthcheck,
}

/// How `check` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CheckFormat {
    /// For people.
    Text,
    /// For tools.
    Json,
}

/// Exit codes from the SPEC.
const EXIT_INVALID: u8 = 1;
const EXIT_RUNTIME: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_INVALID)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let path = Config::resolve_path(cli.config);
    match cli.command {
        None => run(&path),
        Some(Command::Check { format }) => check(&path, format),
        Some(Command::GenKey) => {
            println!("{}", sessiongate::config::generate_key());
            ExitCode::SUCCESS
        }
        Some(Command::HashPassword) => hash_password(),
        Some(Command::Healthcheck) => healthcheck(&path),
    }
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(EXIT_INVALID)
    })
}

fn check(path: &std::path::Path, format: CheckFormat) -> ExitCode {
    let report = sessiongate::check::check(path);
    match format {
        CheckFormat::Json => println!("{}", report.to_json()),
        CheckFormat::Text => {
            for error in report.errors() {
                eprintln!("{error}");
            }
            if let Some(summary) = &report.summary {
                print!("{summary}");
            }
            for warning in report.warnings() {
                eprintln!("{warning}");
            }
        }
    }
    if report.is_valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    }
}

fn hash_password() -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("sessiongate: cannot read the password from stdin: {e}");
        return ExitCode::from(EXIT_INVALID);
    }
    let password = input
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&input);
    if password.is_empty() {
        eprintln!("sessiongate: the password is empty");
        return ExitCode::from(EXIT_INVALID);
    }
    match sessiongate::login::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sessiongate: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn healthcheck(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(addr) = config.server.listen.first().copied() else {
        return ExitCode::from(EXIT_INVALID);
    };
    let tls = match &config.server.tls {
        Some(files) => match sessiongate::tls::self_probe_config(files) {
            Ok(c) => Some(std::sync::Arc::new(c)),
            Err(e) => {
                eprintln!("sessiongate: healthcheck failed: {e}");
                return ExitCode::from(EXIT_INVALID);
            }
        },
        None => None,
    };
    match probe(addr, tls) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sessiongate: healthcheck failed on {addr}: {e:#}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

/// Sends a minimal HTTP request (over TLS when the listener has it) and
/// accepts any HTTP response.
fn probe(
    mut addr: SocketAddr,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
) -> anyhow::Result<()> {
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let timeout = Duration::from_secs(3);
    let stream = TcpStream::connect_timeout(&addr, timeout).context("connect")?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    match tls {
        None => exchange(stream, addr),
        Some(config) => {
            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            let conn = rustls::ClientConnection::new(config, name).context("TLS")?;
            exchange(rustls::StreamOwned::new(conn, stream), addr)
        }
    }
}

fn exchange(mut stream: impl Read + Write, addr: SocketAddr) -> anyhow::Result<()> {
    write!(
        stream,
        "HEAD / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: sessiongate-healthcheck\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).context("read")?;
    anyhow::ensure!(head.starts_with(b"HTTP/1."), "not an HTTP response");
    Ok(())
}

/// Logs go to stdout through a writer thread: requests only append their
/// line to a buffer in memory, and the writer writes many lines at once
/// (see [`sessiongate::logging`]). The returned guard writes what is
/// buffered when dropped, at exit.
fn init_logging(config: &Config) -> std::io::Result<FlushGuard> {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(&config.log.level));
    let (output, guard) = LogOutput::start(std::io::stdout())?;
    sessiongate::access_log::structured_access_log(config.log.format == LogFormat::Json);
    if config.log.format == LogFormat::Text {
        logging::direct_access_lines(output.clone());
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(output);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
    Ok(guard)
}

fn run(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let _log_guard = match init_logging(&config) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("sessiongate: cannot start the log writer thread: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let per_core = config.server.thread_per_core_workers().is_some();
    let mut builder = match config.server.workers {
        // One worker: a single-threaded runtime has no work-stealing to pay for.
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        // Thread-per-core (the default with several workers): the workers
        // are threads of their own (see sessiongate::workers); this runtime
        // only keeps signals, the admin listener and the background tasks.
        _ if per_core => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.on_thread_park(sessiongate::idle_memory::on_park);
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sessiongate: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match runtime.block_on(serve(path.to_path_buf(), config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Each error's message already names its cause.
            eprintln!("sessiongate: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

async fn serve(path: PathBuf, config: Config) -> anyhow::Result<()> {
    announce_generated_key(&config)?;
    let store = sessiongate::server::build_store(&config, &Clock::System).await?;
    let running = sessiongate::server::start(config, store).await?;
    // Wakes this thread each second, so that a burst's memory goes back
    // to the system even when no request comes after it.
    tokio::spawn(sessiongate::idle_memory::tick());
    // One line per bound listener, with the port the OS gave for port 0:
    // the readiness line the tests (tests/it/harness/binary.rs) wait for.
    for addr in &running.addrs {
        tracing::info!(%addr, "listening");
    }
    if let Some(addr) = running.admin_addr {
        tracing::info!(%addr, "admin listener");
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&path, &running.gate),
        }
    }
    tracing::info!("shutting down");
    running.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}

/// A key made up for an `env-or-generate:` variable that is unset: kept in
/// the data directory when there is one (written now if the load did not
/// find it there), and said loudly either way.
fn announce_generated_key(config: &Config) -> anyhow::Result<()> {
    let Some(var) = &config.session.generated_key else {
        return Ok(());
    };
    let advice = format!(
        "This is for trying sessiongate out, never for production: there, set {var} \
         (sessiongate gen-key prints a key) and write secret_keys = [\"env:{var}\"]."
    );
    match sessiongate::config::kept_key::keep(&config.session)? {
        Some(kept) if kept.found => tracing::warn!(
            file = %kept.path.display(),
            "{var} is not set: signing sessions with the key kept in {}. {advice}",
            kept.path.display()
        ),
        Some(kept) => tracing::warn!(
            file = %kept.path.display(),
            "{var} is not set: generated a key and kept it in {} (mode 0600), so that sessions \
             survive a restart. {advice}",
            kept.path.display()
        ),
        None => tracing::warn!(
            "{var} is not set: using a random key generated at start (no snapshot directory to \
             keep it in). Sessions will not survive a restart. {advice}"
        ),
    }
    Ok(())
}

/// SIGHUP: a config that fails validation leaves the running one in place.
/// The audit log is reopened either way (after logrotate moved it), where
/// the config in force says.
fn reload(path: &std::path::Path, gate: &sessiongate::proxy::Gate) {
    reload_config(path, gate);
    gate.audit.reopen(gate.setup().config.log.audit.as_ref());
}

fn reload_config(path: &std::path::Path, gate: &sessiongate::proxy::Gate) {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            tracing::error!("reload refused, keeping the running config:\n{errors}");
            return;
        }
    };
    // A kept key the reload did not find (deleted meanwhile) is kept anew,
    // so that the next start signs with the same key as this process.
    if let Err(e) = announce_generated_key(&config) {
        tracing::error!(error = %e, "reload refused, keeping the running config");
        return;
    }
    let admin_before = gate.setup().config.admin.listen;
    let threads_before = threads(&gate.setup().config);
    match sessiongate::setup::Setup::build(config) {
        Ok(rt) => {
            if threads(&rt.config) != threads_before {
                // The runtime and its threads are made once, at start.
                tracing::warn!(
                    "server.workers or server.thread_per_core changed; they apply at the next \
                     restart"
                );
            }
            if rt.config.admin.listen != admin_before {
                // Like server.tls: listeners are bound once, at start.
                tracing::warn!(
                    "admin.listen changed; the admin listener keeps its address until a restart \
                     (its token, if changed, applies now)"
                );
            }
            gate.swap_setup(rt);
            tracing::info!(config = %path.display(), "config reloaded");
        }
        Err(e) => tracing::error!(error = %e, "reload refused, keeping the running config"),
    }
}

/// What the runtime was built from: `server.workers` and
/// `server.thread_per_core`.
fn threads(config: &Config) -> (Option<usize>, bool) {
    (config.server.workers, config.server.thread_per_core)
}
