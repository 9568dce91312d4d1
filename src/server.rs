//! The running server: state shared by all connections, the listeners, the
//! expiry task and shutdown.
//!
//! Each accepted connection gets a tokio task running [`crate::connection::serve`];
//! all of them share one [`Shared`]. Commands run on whichever worker thread
//! polls the connection, against the sharded keyspace (see `keyspace` for the
//! locking). One background task drives active expiry.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use parking_lot::RwLock;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch};

use crate::clock::Clock;
use crate::commands::CommandTable;
use crate::config::Config;
use crate::gate::ExecGate;
use crate::keyspace::{ExpiryBudget, Keyspace};
use crate::session::ClientInfo;

/// The version of Redis whose behaviour latchkey follows.
pub const REDIS_VERSION: &str = "7.2.0";
/// latchkey's own version.
pub const LATCHKEY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Server-wide counters for `INFO stats`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections_received: AtomicU64,
    /// Connections refused at `maxclients`.
    pub rejected_connections: AtomicU64,
    /// Commands processed.
    pub commands_processed: AtomicU64,
    /// Lookups that found a key.
    pub keyspace_hits: AtomicU64,
    /// Lookups that found no key.
    pub keyspace_misses: AtomicU64,
}

/// State shared by every connection of one server.
pub struct Shared {
    /// Options; CONFIG SET changes them at run time.
    pub config: RwLock<Config>,
    /// All databases.
    pub keyspace: Keyspace,
    /// The one clock.
    pub clock: Arc<Clock>,
    /// The command table.
    pub commands: CommandTable,
    /// Connected clients by id.
    pub clients: DashMap<u64, Arc<ClientInfo>>,
    /// Counters.
    pub stats: Stats,
    /// The execution gate: held shared by every ordinary command and exclusively
    /// by a transaction (EXEC), which makes the transaction atomic.
    pub gate: ExecGate,
    /// The Lua VM and script cache (EVAL).
    pub scripts: crate::scripting::Scripts,
    /// Random 40-hex-digit id of this run (`run_id`).
    pub run_id: String,
    /// When the server started (`uptime_in_seconds`).
    pub started: Instant,
    /// Clients blocked on keys (BLPOP, BZPOPMIN, ...).
    pub blocked: Arc<crate::blocking::BlockedKeys>,
    /// Pub/sub subscriptions: channels, patterns, shard channels.
    pub pubsub: crate::pubsub::PubSub,
    /// Client-side caching: tracked keys, BCAST prefixes, tracking clients.
    pub tracking: crate::tracking::Tracking,
    /// Encoding thresholds (`hash-max-listpack-entries`, ...).
    pub encodings: crate::types::Encodings,
    /// The bound TCP address, once listening.
    pub tcp_addr: RwLock<Option<SocketAddr>>,
    /// The save state: BGSAVE, save points, LASTSAVE, INFO `# Persistence`.
    pub persist: crate::persist::Persistence,
    next_client_id: AtomicU64,
    shutdown: watch::Sender<bool>,
    /// Set with `shutdown`, read by every command once it holds the gate:
    /// nothing runs after the final save.
    stopping: AtomicBool,
    /// The RDB file is being loaded at start-up: commands without Redis's
    /// `loading` flag get `-LOADING`, and nothing is saved.
    loading: AtomicBool,
}

impl Shared {
    /// Shared state for a server with `config`, reading time from `clock`.
    pub fn new(config: Config, clock: Arc<Clock>) -> Self {
        let keyspace = Keyspace::new(config.databases, clock.now_ms());
        let blocked = keyspace.blocked().clone();
        let tracking = crate::tracking::Tracking::new(keyspace.hook().clone());
        let encodings = crate::types::Encodings::default();
        encodings.store(&config.encodings);
        keyspace
            .notifier()
            .set_classes(config.notify_keyspace_events);
        keyspace.locks().set_lock_delay(config.lock_delay);
        let persist = crate::persist::Persistence::default();
        persist.set_policy(
            config.stop_writes_on_bgsave_error,
            !config.save_points.is_empty(),
        );
        let pubsub = crate::pubsub::PubSub::counting_losses(keyspace.notifier().loss_listeners());
        let run_id = (0..40)
            .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
            .collect();
        Shared {
            config: RwLock::new(config),
            keyspace,
            clock,
            commands: CommandTable::new(),
            clients: DashMap::new(),
            stats: Stats::default(),
            gate: ExecGate::default(),
            scripts: crate::scripting::Scripts::new()
                .unwrap_or_else(|e| panic!("cannot start the Lua VM: {e}")),
            run_id,
            started: Instant::now(),
            blocked,
            pubsub,
            tracking,
            encodings,
            tcp_addr: RwLock::new(None),
            persist,
            next_client_id: AtomicU64::new(1),
            shutdown: watch::channel(false).0,
            stopping: AtomicBool::new(false),
            loading: AtomicBool::new(false),
        }
    }

    /// Whether the start-up load is running (one relaxed load).
    #[inline]
    pub fn is_loading(&self) -> bool {
        self.loading.load(Ordering::Relaxed)
    }

    /// Marks the start-up load as running or done.
    pub fn set_loading(&self, on: bool) {
        self.loading.store(on, Ordering::Release);
    }

    /// Asks every task of the server to stop (SHUTDOWN, a signal, or the handle).
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        self.shutdown.send_replace(true);
        // A background save running now stops, as Redis kills its child.
        self.persist.cancel_running(true);
        self.persist.wake();
    }

    /// Whether shutdown was asked for: a command that finds it so once it
    /// holds the gate does not run (one atomic load).
    #[inline]
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Whether shutdown was asked for.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// A receiver that changes to `true` at shutdown.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    fn register_client(&self, addr: String, laddr: String, fd: i32) -> Arc<ClientInfo> {
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        let info = Arc::new(ClientInfo::new(id, addr, laddr, fd, self.clock.now_ms()));
        self.clients.insert(id, info.clone());
        info
    }
}

/// The sockets a server listens on.
pub struct Listeners {
    /// The TCP listener, if any.
    pub tcp: Option<TcpListener>,
    /// The Unix socket listener and its path, if any.
    pub unix: Option<(UnixListener, PathBuf)>,
}

impl Listeners {
    /// Binds what `config` asks for. `port 0` binds a free port when `ephemeral` is
    /// set (the embedding API) and no TCP listener otherwise (the binary, as
    /// redis-server).
    pub async fn bind(config: &Config, ephemeral: bool) -> std::io::Result<Self> {
        let backlog = config.tcp_backlog;
        warn_if_backlog_is_capped(backlog);
        let tcp = if config.port != 0 || ephemeral {
            let host = config.bind.first().map_or("127.0.0.1", String::as_str);
            let host = host.trim_start_matches('-');
            for skipped in config.bind.iter().skip(1) {
                tracing::warn!("listening on {host} only: optional bind address {skipped} skipped");
            }
            Some(bind_tcp(host, config.port, backlog).await?)
        } else {
            None
        };
        let unix = match &config.unixsocket {
            Some(path) => {
                let _ = std::fs::remove_file(path);
                let listener = bind_unix(path, backlog)?;
                if config.unixsocketperm != 0 {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(
                        path,
                        std::fs::Permissions::from_mode(config.unixsocketperm),
                    )?;
                }
                Some((listener, path.clone()))
            }
            None => None,
        };
        if tcp.is_none() && unix.is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "nothing to listen on: port is 0 and no unixsocket is set",
            ));
        }
        Ok(Listeners { tcp, unix })
    }
}

/// Listens on the first address `host` resolves to with a queue of `backlog`
/// connections not yet accepted (tokio's own `bind` fixes it at 1024).
async fn bind_tcp(host: &str, port: u16, backlog: u32) -> std::io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(backlog)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{host} resolves to no address"),
        )
    }))
}

/// A Unix socket listener with a queue of `backlog` (std's `bind` fixes it).
fn bind_unix(path: &std::path::Path, backlog: u32) -> std::io::Result<UnixListener> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    UnixListener::from_std(std::os::unix::net::UnixListener::from(
        std::os::fd::OwnedFd::from(socket),
    ))
}

/// Logs Redis's warning when the kernel will cap the backlog below `tcp-backlog`.
fn warn_if_backlog_is_capped(backlog: u32) {
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    if let Some(max) = somaxconn.filter(|max| *max < backlog) {
        tracing::warn!(
            "WARNING: The TCP backlog setting of {backlog} cannot be enforced because /proc/sys/net/core/somaxconn is set to the lower value of {max}."
        );
    }
}

/// Serves clients on `listeners` until shutdown, then waits for every connection
/// to finish its in-flight replies.
pub async fn run(shared: Arc<Shared>, listeners: Listeners) {
    // Each connection task holds a sender; when all are dropped, all are done.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    if let Some(tcp) = &listeners.tcp {
        *shared.tcp_addr.write() = tcp.local_addr().ok();
    }
    let expiry = tokio::spawn(expiry_task(shared.clone()));
    let saver = match crate::commands::persist::spawn_saver(shared.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!("cannot start the background save thread: {e}");
            None
        }
    };
    let mut accepts = Vec::new();
    if let Some(tcp) = listeners.tcp {
        accepts.push(tokio::spawn(accept_tcp(
            tcp,
            shared.clone(),
            done_tx.clone(),
        )));
    }
    if let Some((unix, path)) = listeners.unix {
        accepts.push(tokio::spawn(accept_unix(
            unix,
            path,
            shared.clone(),
            done_tx.clone(),
        )));
    }
    drop(done_tx);
    for a in accepts {
        let _ = a.await;
    }
    let _ = done_rx.recv().await;
    let _ = expiry.await;
    if let Some(saver) = saver {
        let _ = tokio::task::spawn_blocking(move || saver.join()).await;
    }
}

async fn accept_tcp(listener: TcpListener, shared: Arc<Shared>, done: mpsc::Sender<()>) {
    let mut shutdown = shared.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let laddr = stream
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                spawn_client(stream, peer.to_string(), laddr, &shared, &done);
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn accept_unix(
    listener: UnixListener,
    path: PathBuf,
    shared: Arc<Shared>,
    done: mpsc::Sender<()>,
) {
    let mut shutdown = shared.shutdown_signal();
    let laddr = path.display().to_string();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        match accepted {
            Ok((stream, _)) => match crate::unix_conn::UnixConn::new(stream) {
                Ok(conn) => spawn_client(conn, format!("{laddr}:0"), laddr.clone(), &shared, &done),
                Err(e) => tracing::warn!("cannot register a Unix-socket client: {e}"),
            },
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

fn spawn_client<S>(
    mut stream: S,
    addr: String,
    laddr: String,
    shared: &Arc<Shared>,
    done: &mpsc::Sender<()>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + AsRawFd + Unpin + Send + 'static,
{
    shared
        .stats
        .connections_received
        .fetch_add(1, Ordering::Relaxed);
    let maxclients = shared.config.read().maxclients;
    if shared.clients.len() >= maxclients {
        shared
            .stats
            .rejected_connections
            .fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = stream
                .write_all(b"-ERR max number of clients reached\r\n")
                .await;
        });
        return;
    }
    let info = shared.register_client(addr, laddr, stream.as_raw_fd());
    let leave = Leave {
        shared: shared.clone(),
        id: info.id,
        _done: done.clone(),
    };
    tokio::spawn(async move {
        crate::connection::serve(stream, leave.shared.clone(), info).await;
        drop(leave);
    });
}

/// Takes a client out of CLIENT LIST and tells shutdown it is done, however its
/// task ends (returned, panicked, or dropped with the runtime).
struct Leave {
    shared: Arc<Shared>,
    id: u64,
    _done: mpsc::Sender<()>,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.shared.clients.remove(&self.id);
    }
}

/// How long one slice of active expiry may hold the gate and a shard before the
/// other clients on its worker get their turn: a request arriving meanwhile
/// waits about half of it.
const EXPIRY_SLICE: Duration = Duration::from_micros(250);

/// The longest the expiry task sleeps without looking at the clock again: a
/// deadline further off (up to `u64::MAX` ms, from PXAT) is reached in steps.
const EXPIRY_MAX_NAP_MS: u64 = 3_600_000;

/// Runs active expiry until shutdown. A panic in it is logged and the task
/// restarted (after a pause that grows while it keeps failing at once), so keys
/// keep expiring by time; meanwhile lazy expiry keeps expired keys invisible.
async fn expiry_task(shared: Arc<Shared>) {
    let mut failures = 0u32;
    loop {
        let started = Instant::now();
        let run = tokio::spawn(expire_until_shutdown(shared.clone()));
        let panic = match run.await {
            Ok(()) => return,
            Err(e) if e.is_panic() => e.into_panic(),
            Err(_) => return, // cancelled: the runtime is going away
        };
        if started.elapsed() > Duration::from_secs(1) {
            failures = 0;
        }
        failures = failures.saturating_add(1);
        let message = crate::connection::panic_text(panic.as_ref());
        tracing::error!("active expiry panicked ({message}); restarting it");
        let pause = Duration::from_millis(1 << failures.min(10));
        let mut shutdown = shared.shutdown_signal();
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Sleeps until the earliest key deadline (or a clock move) and deletes what has
/// expired, a slice at a time with a yield between slices; exits at shutdown.
async fn expire_until_shutdown(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown_signal();
    let timer = shared.keyspace.timer();
    loop {
        let moved = shared.clock.moved();
        tokio::pin!(moved);
        moved.as_mut().enable();
        let now = shared.clock.now_ms();
        if timer.next_due() <= now {
            {
                // Shared hold of the gate: expiry never lands inside a transaction.
                let _gate = shared.gate.read_async().await;
                if timer.take_injected_panic() {
                    panic!("injected for a test");
                }
                let mut budget = ExpiryBudget::new(EXPIRY_SLICE);
                shared.keyspace.expire_step(now, &mut budget);
                // A stream that expired unblocks its group readers.
                shared.blocked.serve_ready(&shared.keyspace, now);
                crate::commands::pubsub::publish_logged(&shared);
                crate::tracking::after_background(&shared);
                crate::tracking::broadcast(&shared);
            }
            // Let the other clients on this worker run before the next slice.
            tokio::task::yield_now().await;
            if shared.is_shutting_down() {
                return;
            }
            continue;
        }
        let due = timer.next_due().min(now.saturating_add(EXPIRY_MAX_NAP_MS));
        let nap = shared.clock.real_time_until(due);
        tokio::select! {
            _ = async {
                match nap {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            } => {}
            _ = timer.woken() => {}
            _ = &mut moved => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}
