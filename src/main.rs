//! The `latchkey` binary: a drop-in for `redis-server` on the command line.
//!
//! `latchkey [config-file | -] [--option value ...]` takes redis-server's option
//! names (every row of the config table is a `--flag`), reads a redis.conf-style
//! file or `-` for standard input, and prints `Ready to accept connections` when
//! listening, as wrappers that spawn redis-server expect.

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Arg, ArgAction, Command};
use latchkey::clock::Clock;
use latchkey::config::{Config, PARAMS};
use latchkey::server::{self, Listeners, Shared, LATCHKEY_VERSION, REDIS_VERSION};

fn cli() -> Command {
    let mut cmd = Command::new("latchkey")
        .about("A Redis-protocol server with native lock primitives")
        .disable_version_flag(true)
        // A flag given again replaces the earlier one, as in redis-server.
        .args_override_self(true)
        .arg(
            Arg::new("config")
                .help("redis.conf-style file to read first, or - for standard input")
                .index(1),
        )
        .arg(
            Arg::new("version")
                .short('v')
                .long("version")
                .action(ArgAction::SetTrue)
                .help("Print the version and exit"),
        );
    // `--user name rules...` is taken out before clap reads the rest (see
    // `split_users`); listed here for --help.
    cmd = cmd.arg(
        Arg::new("user")
            .long("user")
            .num_args(1..)
            .value_name("NAME RULE")
            .help("an ACL user: its name, then its rules, as a redis.conf user line (may be given again)"),
    );
    for p in PARAMS {
        cmd = cmd.arg(
            Arg::new(p.name)
                .long(p.name)
                .num_args(1..)
                .value_name("VALUE")
                .help("as in redis.conf"),
        );
    }
    cmd
}

/// Builds the configuration: defaults, then the config file, then flags.
fn load_config(matches: &clap::ArgMatches) -> Result<Config, String> {
    let mut config = Config::default();
    if let Some(path) = matches.get_one::<String>("config") {
        let text = if path == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("reading config from stdin: {e}"))?;
            s
        } else {
            std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?
        };
        config.apply_file(&text)?;
    }
    // Flags in the order given, so a later one wins as in redis-server.
    let mut given: Vec<(usize, &str, Vec<String>)> = PARAMS
        .iter()
        .filter_map(|p| {
            let index = matches.index_of(p.name)?;
            let values = matches.get_many::<String>(p.name)?.cloned().collect();
            Some((index, p.name, values))
        })
        .collect();
    given.sort_by_key(|(i, _, _)| *i);
    for (_, name, values) in given {
        config.apply(name, &values)?;
    }
    Ok(config)
}

/// Takes every `--user name rules...` out of the command line: as
/// redis-server reads it, an option's values run up to the next word starting
/// with `--`, so rules such as `-@all` stay values. Returns the other words
/// and the users.
fn split_users(args: impl Iterator<Item = String>) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rest = Vec::new();
    let mut users: Vec<Vec<String>> = Vec::new();
    let mut in_user = false;
    for arg in args {
        if arg.starts_with("--") {
            in_user = arg == "--user";
            if in_user {
                users.push(Vec::new());
                continue;
            }
        }
        match users.last_mut() {
            Some(user) if in_user => user.push(arg),
            _ => rest.push(arg),
        }
    }
    (rest, users)
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let level = match config.loglevel.as_str() {
        "debug" => "debug",
        "verbose" => "info",
        "warning" => "warn",
        "nothing" => "off",
        _ => "info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // A log line that cannot be written (stdout closed: the parent went
        // away) is dropped. Reporting it would go through eprintln!, which
        // panics when stderr is closed too, and the panic would take down
        // whichever task logged (the one that handles SIGTERM among them).
        .log_internal_errors(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if config.logfile.is_empty() {
        builder.init();
    } else {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.logfile)
        {
            Ok(file) => builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init(),
            Err(e) => {
                builder.init();
                tracing::warn!(
                    "cannot open logfile {}: {e}; logging to stdout",
                    config.logfile
                );
            }
        }
    }
}

/// Counts live bytes for `maxmemory` and INFO's `used_memory`.
#[global_allocator]
static ALLOCATOR: latchkey::memory::Counting = latchkey::memory::Counting;

/// Logs why the idle spin is not used: a notice for the default, a warning
/// for a value someone chose.
fn spin_unused(config: &Config, why: &str) {
    let us = config.idle_spin_us;
    if us == Config::default().idle_spin_us {
        tracing::info!("idle-spin-us {us}: {why}; no idle spin");
    } else {
        tracing::warn!("idle-spin-us {us}: {why}; no idle spin");
    }
}

fn main() -> ExitCode {
    let (args, users) = split_users(std::env::args());
    let matches = cli().get_matches_from(args);
    if matches.get_flag("version") {
        println!(
            "Redis server v={REDIS_VERSION} sha=00000000:0 malloc=libc bits=64 build=0 (latchkey {LATCHKEY_VERSION})"
        );
        return ExitCode::SUCCESS;
    }
    let mut config = match load_config(&matches) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("*** FATAL CONFIG FILE ERROR (latchkey {LATCHKEY_VERSION}) ***\n{e}");
            return ExitCode::FAILURE;
        }
    };
    // After the config file's user lines, as redis-server reads its command
    // line after the file.
    config.users.extend(users);
    init_logging(&config);
    // quanta calibrates its clock against the system's the first time it is
    // read (a millisecond or so of spinning), which the first client's
    // connection did, while it waited for its first reply. A thread of its
    // own does it now, beside the rest of the start.
    let _ = std::thread::Builder::new()
        .name("latchkey-clock".into())
        .spawn(quanta::Instant::now);
    // A work-stealing pool of `io-threads` workers (one by default, like Redis's
    // event loop). Multi-thread even for one: a script past busy-reply-threshold
    // hands its worker to a fresh thread, which only this kind of runtime can do.
    // Against a current-thread runtime this costs about 700 instructions per
    // wake-up and no system call (callgrind and strace, benches/runtime.sh); the
    // scheduler's knobs (event and global-queue intervals) measured no different.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(config.io_threads);
    // Where a spin cannot work or would do harm, the server runs without one
    // and says so.
    let spin = match latchkey::idle_spin::IdleSpin::new(config.idle_spin_us, config.io_threads) {
        Ok(spin) => spin,
        Err(e) => {
            spin_unused(&config, &e);
            None
        }
    };
    if let Some(spin) = &spin {
        builder
            .on_thread_park(spin.park_hook())
            .on_thread_unpark(spin.unpark_hook());
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Err(e)) = spin.map(|s| s.found(runtime.handle().clone())) {
        // The hook stays, doing nothing.
        spin_unused(&config, &e);
    }
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> ExitCode {
    let listeners = match Listeners::bind(&config, false).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("Failed listening: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut where_ = Vec::new();
    if let Some(addr) = listeners.tcp.as_ref().and_then(|l| l.local_addr().ok()) {
        where_.push(format!("tcp {addr}"));
    }
    if let Some(addr) = listeners
        .tls
        .as_ref()
        .and_then(|(l, _)| l.local_addr().ok())
    {
        where_.push(format!("tls {addr}"));
    }
    if let Some((_, path)) = &listeners.unix {
        where_.push(format!("unix {}", path.display()));
    }
    if let Some(addr) = listeners.metrics.as_ref().and_then(|l| l.local_addr().ok()) {
        where_.push(format!("metrics {addr}"));
    }
    let mut config = config;
    if let Some(addr) = listeners.tcp.as_ref().and_then(|l| l.local_addr().ok()) {
        // `port auto` (or any port): CONFIG GET port answers the one bound.
        config.port = addr.port();
    }
    let ready_file = config.ready_file.clone();
    let pidfile = config.pidfile.clone();
    let shared = Arc::new(Shared::new(config, Arc::new(Clock::new())));
    latchkey::commands::memory::note_startup();
    if let Err(e) = shared.load_users() {
        tracing::error!("{e}");
        return ExitCode::FAILURE;
    }
    tracing::info!("latchkey {LATCHKEY_VERSION} (Redis {REDIS_VERSION} compatible) starting");
    if let Some(path) = &pidfile {
        // As Redis: written before the data loads; a failure is logged, not fatal.
        if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
            tracing::warn!("Failed to write PID file: {e}");
        }
    }
    let remove_pidfile = || {
        if let Some(path) = &pidfile {
            tracing::info!("Removing the pid file.");
            let _ = std::fs::remove_file(path);
        }
    };
    // Clients are served while the file loads, and get `-LOADING` (Redis's
    // behaviour); the readiness line follows the load.
    shared.set_loading(true);
    let signals = shared.clone();
    // Registered here, not in the task: the task may first run after the
    // readiness line (a load in place does not yield), and a SIGTERM sent
    // on that line must reach the handler, not the default action.
    let mut os_signals = shutdown_signals();
    tokio::spawn(async move {
        loop {
            wait_for_signal(&mut os_signals).await;
            tracing::warn!("Received SIGTERM scheduling shutdown...");
            let stopping = signals.clone();
            let done = tokio::task::spawn_blocking(move || {
                use latchkey::commands::persist::{shut_down, FinalSave};
                shut_down(&stopping, FinalSave::Default, false)
            })
            .await;
            if matches!(done, Ok(true)) {
                return;
            }
            tracing::warn!(
                "SIGTERM received but errors trying to shut down the server, check the logs for more information"
            );
        }
    });
    let socket = listeners.unix.as_ref().map(|(_, path)| path.clone());
    let running = tokio::spawn(server::run(shared.clone(), listeners));
    let loaded = if latchkey::commands::persist::nothing_to_load(&shared) {
        // No file (a test fixture's server): the grace and the counters are
        // set in place, without a thread to start and wait for.
        latchkey::commands::persist::load_at_start(&shared)
    } else {
        load_on_a_thread(&shared).await
    };
    shared.set_loading(false);
    if let Err(e) = loaded {
        tracing::error!("{e}");
        shared.shutdown();
        let _ = running.await;
        if let Some(path) = socket {
            let _ = std::fs::remove_file(path);
        }
        remove_pidfile();
        return ExitCode::FAILURE;
    }
    tracing::info!("Ready to accept connections {}", where_.join(", "));
    if let Some(path) = ready_file {
        if let Err(e) = write_ready_file(&path, &where_) {
            tracing::error!("Can't write the ready file {}: {e}", path.display());
        }
    }
    let _ = running.await;
    remove_pidfile();
    tracing::info!("latchkey is now ready to exit, bye bye...");
    ExitCode::SUCCESS
}

/// Loads the file on a thread of its own, while the server answers
/// `-LOADING`.
async fn load_on_a_thread(shared: &Arc<Shared>) -> Result<bool, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let loading = shared.clone();
    let started = std::thread::Builder::new()
        .name("latchkey-load".into())
        .spawn(move || {
            let _ = tx.send(latchkey::commands::persist::load_at_start(&loading));
        });
    match started {
        Ok(_) => rx
            .await
            .unwrap_or_else(|_| Err("the loading thread stopped".into())),
        Err(e) => Err(format!("cannot start the loading thread: {e}")),
    }
}

/// Writes `ready-file`: one listener per line, put in place whole (a
/// temporary file renamed over it), so a wrapper polling for it never reads
/// half of it.
fn write_ready_file(path: &std::path::Path, listeners: &[String]) -> std::io::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = std::path::PathBuf::from(temp);
    std::fs::write(&temp, listeners.join("\n") + "\n")?;
    std::fs::rename(&temp, path)
}

/// SIGINT's and SIGTERM's handlers, installed now; `None` if they cannot be.
fn shutdown_signals() -> Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)> {
    use tokio::signal::unix::{signal, SignalKind};
    Some((
        signal(SignalKind::interrupt()).ok()?,
        signal(SignalKind::terminate()).ok()?,
    ))
}

/// The next SIGINT or SIGTERM (never, without handlers).
async fn wait_for_signal(
    signals: &mut Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
) {
    match signals {
        Some((int, term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        None => std::future::pending().await,
    }
}
