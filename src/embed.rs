//! Running latchkey inside a program or a test: [`Server::builder`], the
//! [`ServerHandle`] it returns, time control, fault injection, a reset
//! between tests and direct inspection — the same mechanisms a test in
//! another language reaches with `DEBUG ADVANCE-TIME`, `DEBUG FAULT` and
//! `DEBUG RESET` (the Python and Node packages wrap those).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use std::time::Duration;
//! use latchkey::faults::Action;
//!
//! let server = latchkey::Server::builder().paused_time().start().await?;
//! // Time: a lease runs out when the test says so.
//! server.set("session", "abc", Some(Duration::from_secs(60)));
//! server.advance_time(Duration::from_secs(61));
//! assert_eq!(server.get("session"), None);
//! // Faults: the next SET answers an error the client library must handle.
//! server.faults().add(Some(b"set"), 1, Action::Error("READONLY injected".into()));
//! // Reset: a clean server for the next test, connections kept.
//! server.reset().map_err(std::io::Error::other)?;
//! assert!(server.faults().list().is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! With the `client` feature, [`crate::client::acquire`] gives a test the
//! lock guard an application would use (fencing token, release on drop,
//! watchdog, loss notice) against the embedded server's
//! [`ServerHandle::url`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::clock::Clock;
use crate::config::Config;
use crate::keyspace::Value;
use crate::server::{self, Listeners, Shared};

/// Entry point of the embedding API.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let server = latchkey::Server::builder().start().await?;
/// println!("listening on {}", server.url()); // redis://127.0.0.1:<free port>
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Server;

impl Server {
    /// A builder with defaults for tests: 127.0.0.1, a free port, 16 databases.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            config: Config {
                port: 0,
                // No save points: an embedded server writes no file unless asked.
                save_points: Vec::new(),
                ..Config::default()
            },
            paused: false,
            load: false,
            tls_free_port: false,
            metrics_free_port: false,
        }
    }
}

/// Options for an embedded server; [`ServerBuilder::start`] runs it.
pub struct ServerBuilder {
    config: Config,
    paused: bool,
    /// Load `dir`/`dbfilename` at start: set once either is given.
    load: bool,
    /// Serve TLS on a free port: set by [`ServerBuilder::tls`].
    tls_free_port: bool,
    /// Serve metrics on a free port: set by [`ServerBuilder::metrics`].
    metrics_free_port: bool,
}

impl ServerBuilder {
    /// Address to bind (default `127.0.0.1`).
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.config.bind = vec![addr.into()];
        self
    }

    /// TCP port; 0 (the default) picks a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.config.port = port;
        self
    }

    /// Also listen on a Unix socket at `path`.
    pub fn unixsocket(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.unixsocket = Some(path.into());
        self
    }

    /// Require clients to `AUTH` with `password`.
    pub fn requirepass(mut self, password: impl Into<String>) -> Self {
        self.config.requirepass = Some(password.into());
        self
    }

    /// Number of databases (default 16).
    pub fn databases(mut self, n: usize) -> Self {
        self.config.databases = n.max(1);
        self
    }

    /// Adds an ACL user as a `user` line of redis.conf gives it: the name,
    /// then its rules (`"locker on >pw ~lock:* +@lock +@connection"`).
    /// Checked when the server starts.
    ///
    /// ```
    /// let server = latchkey::Server::builder()
    ///     .user("worker on >s3cret ~jobs:* +@list +@connection")
    ///     .start_blocking()
    ///     .unwrap();
    /// let url = server.url().replace("redis://", "redis://worker:s3cret@");
    /// let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    /// let n: i64 = redis::cmd("LPUSH").arg("jobs:1").arg("x").query(&mut con).unwrap();
    /// assert_eq!(n, 1);
    /// ```
    pub fn user(mut self, line: &str) -> Self {
        let words = crate::protocol::split_args(line.as_bytes())
            .unwrap_or_default()
            .into_iter()
            .map(|w| String::from_utf8_lossy(&w).into_owned())
            .collect();
        self.config.users.push(words);
        self
    }

    /// Sets any option by its redis.conf name, e.g. `.option("maxclients", "10")`.
    /// Giving `dir` or `dbfilename` makes the server load that RDB file at
    /// start, if it exists (as [`Self::dir`]).
    pub fn option(mut self, name: &str, value: &str) -> Result<Self, String> {
        let param = self.config.apply(name, &[value.to_string()])?;
        if param.name == "pidfile" && self.config.pidfile.is_some() {
            // The binary writes it; an embedded server is its host's process.
            return Err("pidfile is written by the latchkey binary, not an embedded server".into());
        }
        if param.name == "dir" || param.name == "dbfilename" {
            self.load = true;
        }
        Ok(self)
    }

    /// Keeps the RDB file (`dbfilename`, default `dump.rdb`) in `dir`: the
    /// server loads it at start if it exists, and SAVE, BGSAVE and save points
    /// (`.option("save", "60 1000")`; none by default) write it there.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let dir = std::env::temp_dir().join(format!("latchkey-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let server = latchkey::Server::builder().dir(&dir).unwrap().start().await.unwrap();
    /// server.set("k", "v", None);
    /// server.save().unwrap();
    /// server.shutdown().await;
    /// let again = latchkey::Server::builder().dir(&dir).unwrap().start().await.unwrap();
    /// assert_eq!(again.get("k").as_deref(), Some(&b"v"[..]));
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # }
    /// ```
    pub fn dir(self, dir: impl AsRef<std::path::Path>) -> Result<Self, String> {
        self.option("dir", &dir.as_ref().to_string_lossy())
    }

    /// Also serves TLS on a free port ([`ServerHandle::tls_addr`]) with this
    /// certificate and key (PEM files). As in Redis, clients must then present
    /// a certificate signed by a CA given with `.option("tls-ca-cert-file", ..)`,
    /// unless `.option("tls-auth-clients", "no")`. An explicit
    /// `.option("tls-port", ..)` takes that port instead.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let server = latchkey::Server::builder()
    ///     .tls("server.crt", "server.key")
    ///     .option("tls-ca-cert-file", "ca.crt")
    ///     .map_err(std::io::Error::other)?
    ///     .start()
    ///     .await?;
    /// let url = format!("rediss://localhost:{}", server.tls_addr().unwrap().port());
    /// # Ok(())
    /// # }
    /// ```
    pub fn tls(
        mut self,
        cert_file: impl AsRef<std::path::Path>,
        key_file: impl AsRef<std::path::Path>,
    ) -> Self {
        self.config.tls.cert_file = cert_file.as_ref().to_string_lossy().into_owned();
        self.config.tls.key_file = key_file.as_ref().to_string_lossy().into_owned();
        self.tls_free_port = true;
        self
    }

    /// Also serves the metrics endpoint (`GET /metrics`, the status page
    /// at `GET /`) on a free port ([`ServerHandle::metrics_addr`]); an
    /// explicit `.option("metrics-port", ..)` takes that port instead.
    pub fn metrics(mut self) -> Self {
        self.metrics_free_port = true;
        self
    }

    /// Starts with the clock paused: time moves only by
    /// [`ServerHandle::advance_time`].
    pub fn paused_time(mut self) -> Self {
        self.paused = true;
        self
    }

    /// The options as they stand.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Binds and starts serving on the current tokio runtime.
    pub async fn start(mut self) -> std::io::Result<ServerHandle> {
        let mut listeners = Listeners::bind(&self.config, true).await?;
        if self.tls_free_port && listeners.tls.is_none() {
            // CONFIG GET tls-port shows the port bound.
            self.config.tls.port = listeners.bind_tls(&self.config, 0).await?;
        }
        if self.metrics_free_port && listeners.metrics.is_none() {
            // CONFIG GET metrics-port shows the port bound.
            self.config.metrics_port = listeners.bind_metrics(&self.config, 0).await?;
        }
        let metrics_addr = listeners.metrics.as_ref().and_then(|l| l.local_addr().ok());
        let addr = listeners.tcp.as_ref().and_then(|l| l.local_addr().ok());
        let tls_addr = listeners
            .tls
            .as_ref()
            .and_then(|(l, _)| l.local_addr().ok());
        let clock = Arc::new(Clock::new());
        if self.paused {
            clock.pause();
        }
        let shared = Arc::new(Shared::new(self.config, clock));
        shared
            .load_users()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        if self.load || shared.config.read().appendonly {
            crate::commands::persist::load_at_start(&shared)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        } else {
            let now = shared.clock.now_ms();
            shared.persist.starting(now / 1000, shared.keyspace.dirty());
            crate::commands::persist::start_restart_grace(&shared, None, now);
        }
        let task = tokio::spawn(server::run(shared.clone(), listeners));
        Ok(ServerHandle {
            shared,
            addr,
            tls_addr,
            metrics_addr,
            task: Some(task),
            runtime: None,
        })
    }

    /// Starts on a runtime of its own, for tests without tokio.
    ///
    /// ```
    /// let server = latchkey::Server::builder().start_blocking().unwrap();
    /// assert!(server.url().starts_with("redis://127.0.0.1:"));
    /// ```
    pub fn start_blocking(self) -> std::io::Result<ServerHandle> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("latchkey")
            .build()?;
        let mut handle = runtime.block_on(self.start())?;
        handle.runtime = Some(runtime);
        Ok(handle)
    }
}

/// A running embedded server. Dropping it shuts the server down.
pub struct ServerHandle {
    shared: Arc<Shared>,
    addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    task: Option<tokio::task::JoinHandle<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl ServerHandle {
    /// The TCP address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The TLS address (`tls-port`, set with
    /// `.option("tls-port", ...)` and the `tls-*` files), if TLS is on.
    /// With TLS on and no `port` given, the server listens on TLS only.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The metrics HTTP address (`GET /metrics`, `GET /`), if on: set with
    /// [`ServerBuilder::metrics`] or `.option("metrics-port", ...)`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// `redis://host:port`, for client libraries.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr())
    }

    /// Saves the RDB file now, as SAVE does (into `dir`; see
    /// [`ServerBuilder::dir`]).
    pub fn save(&self) -> std::io::Result<()> {
        use crate::commands::persist::{save_now, SaveError};
        self.shared.persist.count_save();
        save_now(&self.shared, false).map_err(|e| match e {
            SaveError::Io(e) => e,
            SaveError::InProgress => std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "Background save already in progress",
            ),
            SaveError::Busy => std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "a busy script holds the server",
            ),
        })
    }

    /// Stops accepting, lets connections finish their replies, and waits.
    /// With save points set, saves the RDB file first, as SHUTDOWN does
    /// (a failed save is logged, and the server stops anyway).
    pub async fn shutdown(mut self) {
        use crate::commands::persist::{shut_down, FinalSave};
        let _ = shut_down(&self.shared, FinalSave::Default, true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Stops the server clock: TTLs only run out by [`Self::advance_time`].
    pub fn pause_time(&self) {
        self.shared.clock.pause();
    }

    /// Lets a paused clock run again.
    pub fn resume_time(&self) {
        self.shared.clock.resume();
    }

    /// Moves the server clock forward; keys whose TTL has passed are gone when this
    /// returns.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// let server = latchkey::Server::builder().start().await.unwrap();
    /// server.pause_time();
    /// server.set("session", "abc", Some(Duration::from_secs(60)));
    /// server.advance_time(Duration::from_secs(61));
    /// assert_eq!(server.get("session"), None);
    /// # }
    /// ```
    pub fn advance_time(&self, by: Duration) {
        self.shared.advance_time(by);
    }

    /// Fault injection, the rules `DEBUG FAULT` sets: the next commands of a
    /// name (or any) answer an error, have their replies delayed, or close
    /// their connection; new connections can be refused for a while.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use latchkey::faults::Action;
    /// use std::time::Duration;
    /// let server = latchkey::Server::builder().start().await.unwrap();
    /// // The next two GETs answer -LOADING: a client library sees its
    /// // "loading" error and may retry.
    /// server.faults().add(Some(b"get"), 2, Action::Error("LOADING injected".into()));
    /// server.faults().add(None, 1, Action::Delay(Duration::from_millis(50)));
    /// server.faults().refuse_for(Duration::from_millis(100));
    /// assert_eq!(server.faults().list().len(), 2);
    /// server.faults().clear(); // every rule gone, connections accepted again
    /// # }
    /// ```
    pub fn faults(&self) -> &crate::faults::Faults {
        &self.shared.faults
    }

    /// Closes every client connection, as `DEBUG FAULT DROP-CLIENTS` (a
    /// client library's reconnect path).
    pub fn drop_clients(&self) {
        for c in self.shared.clients.iter() {
            c.kill();
        }
    }

    /// A test's isolation in one call, as `DEBUG RESET`: every database
    /// flushed (locks with it), the script cache and function libraries
    /// emptied, faults cleared, the slow log and latency events emptied,
    /// active expiry on, the clock running again (an advance is kept: server
    /// time never goes back, so fencing tokens stay ordered). Connections
    /// stay open. Fails only while a script is busy (Redis's BUSY error).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = latchkey::Server::builder().paused_time().start().await.unwrap();
    /// server.set("k", "v", None);
    /// server.reset().unwrap();
    /// assert_eq!(server.dbsize(0), 0);
    /// # }
    /// ```
    pub fn reset(&self) -> Result<(), String> {
        crate::commands::debug::reset_server(&self.shared)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Test hook: the active-expiry task panics on its next pass. The server logs
    /// it and restarts the task; keys keep expiring.
    #[doc(hidden)]
    pub fn inject_expiry_panic(&self) {
        self.shared.keyspace.timer().inject_panic();
    }

    /// The server clock's time in ms since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.shared.clock.now_ms()
    }

    /// The string at `key` in database 0, `None` if missing or not a string.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<Bytes> {
        self.get_in(0, key)
    }

    /// The string at `key` in database `db`.
    pub fn get_in(&self, db: usize, key: impl AsRef<[u8]>) -> Option<Bytes> {
        let key = key.as_ref();
        self.keyspace_op(|now| {
            let mut shard = self.shared.keyspace.db(db)?.lock(key);
            let value = shard
                .read::<crate::keyspace::CompactBytes>(key, now)
                .ok()??;
            Some(value.to_bytes())
        })
    }

    /// Runs `f` at the server's time holding the execution gate shared, as a
    /// command does, then publishes the events it raised (a key found
    /// expired, a lock overwritten).
    fn keyspace_op<R>(&self, f: impl FnOnce(u64) -> R) -> R {
        let now = self.shared.clock.now_ms();
        let out = {
            let _gate = self.shared.gate.read();
            let order = self.shared.aof.order();
            let out = f(now);
            if order.is_some() {
                // What it found expired reaches the AOF (its own writes are
                // logged by `set`).
                crate::persist::aof::end_unit(&self.shared);
                drop(order);
                self.shared.aof.write_pending();
            }
            out
        };
        crate::commands::pubsub::publish_logged(&self.shared);
        // Keys it wrote (or found expired) invalidate client-side caches.
        crate::tracking::after_background(&self.shared);
        crate::tracking::broadcast(&self.shared);
        out
    }

    /// Sets a string in database 0, with an optional TTL.
    pub fn set(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>, ttl: Option<Duration>) {
        let key = key.as_ref();
        self.keyspace_op(|now| {
            let expires_at = ttl.map(|d| now.saturating_add(d.as_millis() as u64));
            if let Some(db) = self.shared.keyspace.db(0) {
                let entry = crate::keyspace::Entry::new(Value::string(value.as_ref()), expires_at);
                let shard = &mut db.lock(key);
                shard.insert(key, entry, now);
                shard.propagate(|| {
                    let mut argv = vec![
                        Bytes::from_static(b"SET"),
                        Bytes::copy_from_slice(key),
                        Bytes::copy_from_slice(value.as_ref()),
                    ];
                    if let Some(at) = expires_at {
                        argv.push(Bytes::from_static(b"PXAT"));
                        argv.push(Bytes::from(at.to_string()));
                    }
                    argv
                });
            }
        })
    }

    /// Remaining time to live of `key` in database 0: `None` if the key is missing
    /// or has no TTL.
    pub fn ttl(&self, key: impl AsRef<[u8]>) -> Option<Duration> {
        let key = key.as_ref();
        self.keyspace_op(|now| {
            let mut shard = self.shared.keyspace.db(0)?.lock(key);
            let at = shard.get(key, now)?.deadline()?;
            Some(Duration::from_millis(at.saturating_sub(now)))
        })
    }

    /// The lock at `key` in database 0: mode, limit, holders (owner, fencing token,
    /// lease end) and number of waiters; `None` if there is no lock there.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// let server = latchkey::Server::builder().paused_time().start().await.unwrap();
    /// let mut con = redis::Client::open(server.url()).unwrap()
    ///     .get_multiplexed_async_connection().await.unwrap();
    /// let _: i64 = redis::cmd("LOCK.ACQUIRE").arg("job").arg("me").arg(1000)
    ///     .query_async(&mut con).await.unwrap();
    /// assert_eq!(&server.lock_info("job").unwrap().holders[0].owner[..], b"me");
    /// server.advance_time(Duration::from_millis(1000)); // the lease runs out
    /// assert!(server.lock_info("job").is_none());
    /// # }
    /// ```
    pub fn lock_info(&self, key: impl AsRef<[u8]>) -> Option<crate::keyspace::LockInfo> {
        let key = key.as_ref();
        self.keyspace_op(|now| {
            let mut shard = self.shared.keyspace.db(0)?.lock(key);
            crate::commands::lock::info_at(&mut shard, key, now)
                .ok()
                .flatten()
        })
    }

    /// Number of keys in database `db` (as DBSIZE).
    pub fn dbsize(&self, db: usize) -> usize {
        self.shared.keyspace.db(db).map_or(0, |d| d.len())
    }

    /// The server's shared state, for advanced inspection.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shared.shutdown();
        if let (Some(runtime), Some(task)) = (self.runtime.take(), self.task.take()) {
            let _ = runtime.block_on(task);
            runtime.shutdown_timeout(Duration::from_millis(100));
        }
    }
}
