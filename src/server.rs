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
use tokio::net::{TcpListener, TcpStream, UnixListener};
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
    /// Connections refused at `maxclients` (or by protected mode).
    pub rejected_connections: AtomicU64,
    /// Commands processed.
    pub commands_processed: AtomicU64,
    /// Lookups that found a key.
    pub keyspace_hits: AtomicU64,
    /// Lookups that found no key.
    pub keyspace_misses: AtomicU64,
    /// Bytes read from clients that have left (those connected count their
    /// own, `ClientInfo::net_in`).
    pub net_input_departed: AtomicU64,
    /// Bytes written to clients that have left.
    pub net_output_departed: AtomicU64,
    /// The network totals last reported, which reports never go below.
    pub net_reported: [AtomicU64; 2],
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
    /// The append-only file.
    pub aof: crate::persist::Aof,
    /// Active expiry runs (DEBUG SET-ACTIVE-EXPIRE 0 stops it).
    pub active_expire: AtomicBool,
    /// Faults injected with DEBUG FAULT.
    pub faults: crate::faults::Faults,
    /// `maxmemory` and its policy, eviction counts.
    pub memory: crate::memory::Memory,
    /// SLOWLOG's entries and settings.
    pub slowlog: crate::commands::slowlog::SlowLog,
    /// The latency monitor and latency tracking's settings (LATENCY).
    pub latency: crate::commands::latency::Latency,
    /// The TLS configuration new connections on `tls-port` get; CONFIG SET of
    /// a `tls-*` option puts a new one in.
    pub tls: RwLock<Option<crate::tls::TlsAcceptor>>,
    /// The bound TLS address, once listening.
    pub tls_addr: RwLock<Option<SocketAddr>>,
    /// ACL users and the ACL log.
    pub acl: crate::acl::Acl,
    /// CLIENT PAUSE.
    pub pause: crate::pause::ClientPause,
    /// Clients in MONITOR mode.
    pub monitors: crate::commands::monitor::Monitors,
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
        let memory = crate::memory::Memory::default();
        memory.configure(config.memory_settings());
        let slowlog = crate::commands::slowlog::SlowLog::default();
        slowlog.configure(config.slowlog_log_slower_than, config.slowlog_max_len);
        let latency = crate::commands::latency::Latency::default();
        latency.configure(
            config.latency_monitor_threshold,
            config.latency_tracking,
            &config.latency_tracking_info_percentiles,
        );
        let pubsub = crate::pubsub::PubSub::counting_losses(keyspace.notifier().loss_listeners());
        let run_id = (0..40)
            .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
            .collect();
        let commands = CommandTable::new();
        let scripts = crate::scripting::Scripts::new();
        scripts
            .functions
            .publish_to(keyspace.function_codes().clone());
        let acl = crate::acl::Acl::new(&commands);
        acl.set_default_password(&commands, config.requirepass.as_deref());
        Shared {
            config: RwLock::new(config),
            keyspace,
            clock,
            commands,
            acl,
            pause: crate::pause::ClientPause::default(),
            monitors: Default::default(),
            clients: DashMap::new(),
            stats: Stats::default(),
            gate: ExecGate::default(),
            scripts,
            run_id,
            started: Instant::now(),
            blocked,
            pubsub,
            tracking,
            encodings,
            tcp_addr: RwLock::new(None),
            persist,
            aof: crate::persist::Aof::default(),
            active_expire: AtomicBool::new(true),
            faults: crate::faults::Faults::default(),
            memory,
            slowlog,
            latency,
            tls: RwLock::new(None),
            tls_addr: RwLock::new(None),
            next_client_id: AtomicU64::new(1),
            shutdown: watch::channel(false).0,
            stopping: AtomicBool::new(false),
            loading: AtomicBool::new(false),
        }
    }

    /// Loads the ACL users the configuration names: its `user` lines, or the
    /// `aclfile` (not both, as Redis). An error is why the server must not
    /// start.
    pub fn load_users(&self) -> Result<(), String> {
        let config = self.config.read().clone();
        let all = config.acl_pubsub_allchannels;
        if !config.aclfile.is_empty() && !config.users.is_empty() {
            return Err("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.".into());
        }
        if !config.users.is_empty() {
            let users = crate::acl::parse_config_users(&self.commands, &config.users, all)?;
            let mut default = (*self.acl.default_user().rules()).clone();
            let mut rest = Vec::new();
            for (name, rules) in users {
                if name.as_ref() == b"default" {
                    // A `user default` line starts from `reset`, as Redis.
                    default = rules;
                } else {
                    rest.push((name, rules));
                }
            }
            rest.push((bytes::Bytes::from_static(b"default"), default));
            self.acl.replace_all(&self.commands, rest);
        }
        if !config.aclfile.is_empty() {
            let users = crate::commands::acl::read_acl_file(self, &config.aclfile)
                .map_err(|e| format!("Aborting Redis startup because of ACL errors: {e}"))?;
            self.acl.replace_all(&self.commands, users);
        }
        Ok(())
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

    /// Moves the server clock forward by `by` and does what became due at
    /// once: keys past their TTL deleted, leases ended and their waiters
    /// granted, blocked clients served, events published (the embedding
    /// API's `advance_time` and DEBUG ADVANCE-TIME).
    pub fn advance_time(&self, by: Duration) {
        self.clock.advance(by);
        let _gate = self.gate.read();
        let order = self.aof.order();
        let now = self.clock.now_ms();
        // As the expiry task: nothing expires while CLIENT PAUSE holds the
        // dataset still.
        if !self.pause.writes_paused(now) {
            self.keyspace.expire_due(now);
        }
        self.blocked.serve_ready(&self.keyspace, now);
        if order.is_some() {
            crate::persist::aof::end_unit(self);
            drop(order);
            self.aof.write_pending();
        }
        crate::commands::pubsub::publish_logged(self);
        crate::tracking::after_background(self);
        crate::tracking::broadcast(self);
    }

    /// Asks every task of the server to stop (SHUTDOWN, a signal, or the handle).
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        self.shutdown.send_replace(true);
        // Every connection closes at once (see `connection::closing`).
        for client in self.clients.iter() {
            client.poke();
        }
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

    fn register_client(
        &self,
        addr: String,
        laddr: String,
        fd: i32,
        local: bool,
    ) -> Arc<ClientInfo> {
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        let mut info = ClientInfo::new(id, addr, laddr, fd, self.clock.now_ms());
        info.local = local;
        let info = Arc::new(info);
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
    /// The TLS listener (`tls-port`) and its configuration, if any.
    pub tls: Option<(TcpListener, crate::tls::TlsAcceptor)>,
    /// The metrics HTTP listener (`metrics-port`), if any.
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    /// Binds what `config` asks for. `port 0` binds a free port when `ephemeral` is
    /// set (the embedding API) and no TCP listener otherwise (the binary, as
    /// redis-server).
    pub async fn bind(config: &Config, ephemeral: bool) -> std::io::Result<Self> {
        let backlog = config.tcp_backlog;
        warn_if_backlog_is_capped(backlog);
        // The TLS configuration first: a bad one stops the start before any
        // socket is bound.
        let tls = if config.tls.port != 0 {
            Some(tls_listener(config, config.tls.port).await?)
        } else {
            None
        };
        let tcp = if config.port != 0 || config.port_auto || (ephemeral && tls.is_none()) {
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
        if tcp.is_none() && unix.is_none() && tls.is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "nothing to listen on: port and tls-port are 0 and no unixsocket is set",
            ));
        }
        let metrics = if config.metrics_port != 0 {
            Some(metrics_listener(config, config.metrics_port).await?)
        } else {
            None
        };
        Ok(Listeners {
            tcp,
            unix,
            tls,
            metrics,
        })
    }

    /// Adds the metrics listener on `port` (0: a free one) of the first bind
    /// address; returns the port bound.
    pub async fn bind_metrics(&mut self, config: &Config, port: u16) -> std::io::Result<u16> {
        let listener = metrics_listener(config, port).await?;
        let bound = listener.local_addr()?.port();
        self.metrics = Some(listener);
        Ok(bound)
    }
}

/// A listener for `metrics-port` on the first bind address, as TLS's.
async fn metrics_listener(config: &Config, port: u16) -> std::io::Result<TcpListener> {
    let host = config.bind.first().map_or("127.0.0.1", String::as_str);
    bind_tcp(host.trim_start_matches('-'), port, config.tcp_backlog).await
}

impl Listeners {
    /// Adds a TLS listener on `port` (0: a free one) of the first bind
    /// address, with `config`'s TLS options; returns the port bound.
    pub async fn bind_tls(&mut self, config: &Config, port: u16) -> std::io::Result<u16> {
        let (listener, acceptor) = tls_listener(config, port).await?;
        let bound = listener.local_addr()?.port();
        self.tls = Some((listener, acceptor));
        Ok(bound)
    }
}

/// The TLS configuration (a bad one is an error before any socket is bound)
/// and a listener on `port` of the first bind address.
async fn tls_listener(
    config: &Config,
    port: u16,
) -> std::io::Result<(TcpListener, crate::tls::TlsAcceptor)> {
    let acceptor = crate::tls::acceptor(&config.tls).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("Failed to configure TLS: {e}"),
        )
    })?;
    let host = config.bind.first().map_or("127.0.0.1", String::as_str);
    let listener = bind_tcp(host.trim_start_matches('-'), port, config.tcp_backlog).await?;
    Ok((listener, acceptor))
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
    if let Some((tls, acceptor)) = &listeners.tls {
        *shared.tls_addr.write() = tls.local_addr().ok();
        *shared.tls.write() = Some(acceptor.clone());
    }
    let expiry = tokio::spawn(expiry_task(shared.clone()));
    let saver = match crate::commands::persist::spawn_saver(shared.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!("cannot start the background save thread: {e}");
            None
        }
    };
    let syncer = match crate::persist::Aof::spawn_syncer(shared.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!("cannot start the AOF sync thread: {e}");
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
    if let Some((tls, _)) = listeners.tls {
        accepts.push(tokio::spawn(accept_tls(
            tls,
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
    if let Some(metrics) = listeners.metrics {
        // Not counted in `done`: an HTTP exchange is bounded by its own
        // timeouts and ends with shutdown.
        accepts.push(tokio::spawn(crate::metrics::http::accept(
            metrics,
            shared.clone(),
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
    if let Some(syncer) = syncer {
        shared.aof.wake_syncer();
        let _ = tokio::task::spawn_blocking(move || syncer.join()).await;
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
                tune_accepted(&stream, &shared);
                let laddr = stream
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                let local = is_loopback(peer.ip());
                spawn_client(stream, peer.to_string(), laddr, local, true, &shared, &done);
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// How long a client on `tls-port` has to finish its handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts on `tls-port`: each connection's handshake runs in a task of its
/// own (with the configuration current when it was accepted), then the client
/// is served as a TCP one is.
async fn accept_tls(listener: TcpListener, shared: Arc<Shared>, done: mpsc::Sender<()>) {
    let mut shutdown = shared.shutdown_signal();
    // Handshakes under way count towards maxclients, as Redis counts a client
    // from its accept: connections that never finish one cannot pile up.
    let handshaking = Arc::new(AtomicU64::new(0));
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(acceptor) = shared.tls.read().clone() else {
            continue;
        };
        let maxclients = shared.config.read().maxclients as u64;
        let pending = handshaking.load(Ordering::Relaxed);
        if (shared.clients.len() as u64).saturating_add(pending) >= maxclients {
            shared
                .stats
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            continue;
        }
        handshaking.fetch_add(1, Ordering::Relaxed);
        let counted = Handshaking(handshaking.clone());
        tune_accepted(&stream, &shared);
        let laddr = stream
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let (shared, done) = (shared.clone(), done.clone());
        tokio::spawn(async move {
            let _counted = counted;
            let mut shutdown = shared.shutdown_signal();
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let stream = tokio::select! {
                r = handshake => r,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            match stream {
                Ok(Ok(stream)) => {
                    let local = is_loopback(peer.ip());
                    spawn_client(
                        stream,
                        peer.to_string(),
                        laddr,
                        local,
                        false,
                        &shared,
                        &done,
                    );
                }
                Ok(Err(e)) => {
                    tracing::debug!("Error accepting a client connection: {e} (addr={peer})")
                }
                Err(_) => tracing::debug!(
                    "Error accepting a client connection: TLS handshake timed out (addr={peer})"
                ),
            }
        });
    }
}

/// One TLS handshake under way, counted until its task ends.
struct Handshaking(Arc<AtomicU64>);

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket options of an accepted TCP connection (plain or TLS), as Redis
/// sets them: no Nagle delay, and with `tcp-keepalive` N above 0 the kernel's
/// keepalive probes after N idle seconds, every N/3 seconds (at least 1), the
/// peer dropped after 3 unanswered (Redis's `anetKeepAlive`). So a client
/// whose host vanished without closing is found dead and its session's locks
/// and waits released. An N above the kernel's maximum idle time (32,767 s)
/// leaves keepalive on at the kernel's own idle time, as in Redis (whose
/// `anetKeepAlive` also sets `SO_KEEPALIVE` before the idle time fails).
fn tune_accepted(stream: &TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let idle = shared.config.read().tcp_keepalive;
    if idle > 0 {
        let probes = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(idle))
            .with_interval(Duration::from_secs((idle / 3).max(1)))
            .with_retries(3);
        if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&probes) {
            tracing::debug!("tcp-keepalive {idle} not applied: {e}");
        }
    }
}

/// Whether a peer is on the loopback interface as Redis's `islocalClient`
/// has it: exactly 127.0.0.1 or ::1.
pub fn is_loopback(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(a) => a == std::net::Ipv4Addr::LOCALHOST,
        std::net::IpAddr::V6(a) => a == std::net::Ipv6Addr::LOCALHOST,
    }
}

/// Whether protected mode turns a client away: it is on, the default user
/// has no password, and the client is not local (loopback or Unix socket).
pub fn protected_mode_refuses(protected_mode: bool, has_password: bool, local: bool) -> bool {
    protected_mode && !has_password && !local
}

/// Redis's reply to a client protected mode turns away (networking.c).
pub const PROTECTED_MODE_DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

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
                Ok(conn) => spawn_client(
                    conn,
                    format!("{laddr}:0"),
                    laddr.clone(),
                    true,
                    true,
                    &shared,
                    &done,
                ),
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

/// `direct`: a plain socket (TCP or Unix), which a publisher may write a
/// subscriber's messages to itself (`ClientInfo::allow_direct_writes`); not
/// TLS, whose bytes only the connection's own session can make.
fn spawn_client<S>(
    mut stream: S,
    addr: String,
    laddr: String,
    local: bool,
    direct: bool,
    shared: &Arc<Shared>,
    done: &mpsc::Sender<()>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + AsRawFd + Unpin + Send + 'static,
{
    shared
        .stats
        .connections_received
        .fetch_add(1, Ordering::Relaxed);
    if shared.faults.refusing() {
        // DEBUG FAULT REFUSE: closed at once, as a server that is not there.
        shared
            .stats
            .rejected_connections
            .fetch_add(1, Ordering::Relaxed);
        drop(stream);
        return;
    }
    let (maxclients, protected, has_password) = {
        let config = shared.config.read();
        // Redis 7: the default user has a password (requirepass, or ACL
        // rules that gave it one, or turned it off).
        let has_password = !shared.acl.default_needs_no_auth();
        (config.maxclients, config.protected_mode, has_password)
    };
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
    // After the maxclients check, as Redis (which checks it before a TLS
    // handshake, and protected mode after).
    if protected_mode_refuses(protected, has_password, local) {
        shared
            .stats
            .rejected_connections
            .fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = stream.write_all(PROTECTED_MODE_DENIED.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
        return;
    }
    let info = shared.register_client(addr, laddr, stream.as_raw_fd(), local);
    if direct {
        // SAFETY: the descriptor is the stream's, open while it is borrowed
        // here; the info keeps its own duplicate.
        info.allow_direct_writes(unsafe {
            std::os::fd::BorrowedFd::borrow_raw(stream.as_raw_fd())
        });
    }
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
        if let Some((_, info)) = self.shared.clients.remove(&self.id) {
            self.shared.memory.client_gone(&info);
            let stats = &self.shared.stats;
            stats
                .net_input_departed
                .fetch_add(info.net_in.load(Ordering::Relaxed), Ordering::Relaxed);
            stats
                .net_output_departed
                .fetch_add(info.net_out.load(Ordering::Relaxed), Ordering::Relaxed);
        }
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
        if !shared.active_expire.load(Ordering::Relaxed)
            || shared.is_loading()
            || shared.pause.writes_paused(now)
        {
            // DEBUG SET-ACTIVE-EXPIRE 0: keys go only when looked up; and
            // nothing expires while the files load, nor while CLIENT PAUSE
            // holds the dataset still.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            continue;
        }
        if timer.next_due() <= now {
            {
                // Shared hold of the gate: expiry never lands inside a transaction.
                let _gate = shared.gate.read_async().await;
                if timer.take_injected_panic() {
                    panic!("injected for a test");
                }
                let order = shared.aof.order();
                let mut budget = ExpiryBudget::new(EXPIRY_SLICE);
                shared.keyspace.expire_step(now, &mut budget);
                // A stream that expired unblocks its group readers.
                shared.blocked.serve_ready(&shared.keyspace, now);
                if order.is_some() {
                    // The slice's DELs and the locks whose leases ended.
                    crate::persist::aof::end_unit(&shared);
                    drop(order);
                    shared.aof.write_pending();
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_127_0_0_1_and_ipv6_loopback_are_local_as_in_redis() {
        for local in ["127.0.0.1", "::1"] {
            assert!(is_loopback(local.parse().unwrap()), "{local}");
        }
        // Redis compares the peer's text with "127.0.0.1" and "::1" only.
        for far in [
            "127.0.0.2",
            "::ffff:127.0.0.1",
            "192.0.2.2",
            "10.0.0.1",
            "fd00::2",
        ] {
            assert!(!is_loopback(far.parse().unwrap()), "{far}");
        }
    }

    #[test]
    fn protected_mode_refuses_only_remote_clients_of_a_server_without_a_password() {
        assert!(protected_mode_refuses(true, false, false));
        assert!(!protected_mode_refuses(true, false, true), "local");
        assert!(!protected_mode_refuses(true, true, false), "password set");
        assert!(!protected_mode_refuses(false, false, false), "mode off");
    }
}
