//! A client-side guard for latchkey's native locks, on top of the `redis` crate
//! (feature `client`).
//!
//! [`acquire`] returns a [`LockGuard`] that exposes the fencing token, releases the
//! lock when dropped, and can keep the lease alive in the background while held
//! (a watchdog that runs `LOCK.EXTEND` every third of the lease). It reports the
//! moment the lock is lost ([`LockGuard::lost`]): its connection speaks RESP3
//! and subscribes to the owner's loss channel (`__lock_lost__:<owner>`) before
//! it acquires, so the server's notice (lease run out, key deleted or
//! overwritten, FLUSH, SESSION connection closed) arrives as a push frame on the
//! same connection; a refused or failed renewal counts as a loss too.
//!
//! ```no_run
//! # async fn demo() -> redis::RedisResult<()> {
//! use std::time::Duration;
//! use latchkey::client::{acquire, LockOptions};
//!
//! let client = redis::Client::open("redis://127.0.0.1:6379")?;
//! let opts = LockOptions::new(Duration::from_secs(10)).wait(Duration::from_secs(5)).watchdog();
//! if let Some(guard) = acquire(&client, "lock:report", opts).await? {
//!     // Pass guard.token() to the resource so it can reject a stale holder.
//!     println!("holding with fencing token {}", guard.token());
//!     guard.release().await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Each guard has its own connection: a waiting `LOCK.ACQUIRE` blocks only its
//! connection, and with `SESSION` the lock lives exactly as long as that connection.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{PushInfo, PushKind, RedisResult};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// How to acquire a lock.
#[derive(Debug, Clone)]
pub struct LockOptions {
    ttl: Duration,
    wait: Option<Duration>,
    shared: bool,
    limit: Option<u32>,
    session: bool,
    watchdog: bool,
    owner: Option<String>,
}

impl LockOptions {
    /// A lease of `ttl`, trying once, exclusive.
    pub fn new(ttl: Duration) -> Self {
        LockOptions {
            ttl,
            wait: None,
            shared: false,
            limit: None,
            session: false,
            watchdog: false,
            owner: None,
        }
    }

    /// Wait up to `timeout` in the server's FIFO queue (`Duration::ZERO`: no limit).
    pub fn wait(mut self, timeout: Duration) -> Self {
        self.wait = Some(timeout);
        self
    }

    /// A shared (reader) lock.
    pub fn shared(mut self) -> Self {
        self.shared = true;
        self
    }

    /// A semaphore with up to `n` holders.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// Release the lock when this guard's connection closes.
    pub fn session(mut self) -> Self {
        self.session = true;
        self
    }

    /// Keep the lease alive in the background while the guard is held.
    pub fn watchdog(mut self) -> Self {
        self.watchdog = true;
        self
    }

    /// Use this owner token instead of a random one.
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }
}

/// A held lock. Dropping it releases the lock (in the background, on the current
/// tokio runtime); [`LockGuard::release`] does so and reports the outcome.
pub struct LockGuard {
    key: String,
    owner: String,
    token: u64,
    con: MultiplexedConnection,
    lost: watch::Receiver<bool>,
    watchdog: Option<JoinHandle<()>>,
    /// Reads the connection's push frames for this hold's loss notice.
    listener: JoinHandle<()>,
    released: bool,
}

fn random_owner() -> String {
    format!("{:032x}", fastrand::u128(..))
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// The channel the server sends `owner`'s loss notices to.
pub fn lost_channel(owner: &str) -> String {
    format!("__lock_lost__:{owner}")
}

/// A loss notice's message, `<event> <db> <token> <key>`: the event name, the
/// database, the fencing token and the key; `None` if it is not one.
pub fn parse_loss(message: &[u8]) -> Option<(&str, i64, u64, &[u8])> {
    let mut parts = message.splitn(4, |b| *b == b' ');
    let event = std::str::from_utf8(parts.next()?).ok()?;
    let db = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let token = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    Some((event, db, token, parts.next()?))
}

/// Acquires `key` with `opts`: `Ok(None)` if it was not free (or the wait ran out).
///
/// The guard's connection is opened from `client`'s address and credentials in
/// RESP3, whatever protocol `client` names, so the loss notice can arrive on it.
pub async fn acquire(
    client: &redis::Client,
    key: &str,
    opts: LockOptions,
) -> RedisResult<Option<LockGuard>> {
    let mut info = client.get_connection_info().clone();
    info.redis.protocol = redis::ProtocolVersion::RESP3;
    let db = info.redis.db;
    let (push_tx, pushes) = mpsc::unbounded_channel();
    let config = redis::AsyncConnectionConfig::new().set_push_sender(push_tx);
    let mut con = redis::Client::open(info)?
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let owner = opts.owner.clone().unwrap_or_else(random_owner);
    // Before acquiring: no notice for this hold can come before the
    // subscription.
    con.subscribe(lost_channel(&owner)).await?;
    let ttl = ms(opts.ttl).max(1);
    let mut cmd = redis::cmd("LOCK.ACQUIRE");
    cmd.arg(key).arg(&owner).arg(ttl);
    if let Some(wait) = opts.wait {
        cmd.arg("WAIT").arg(ms(wait));
    }
    if opts.shared {
        cmd.arg("SHARED");
    }
    if let Some(n) = opts.limit {
        cmd.arg("LIMIT").arg(n);
    }
    if opts.session {
        cmd.arg("SESSION");
    }
    let token: Option<u64> = cmd.query_async(&mut con).await?;
    let Some(token) = token else {
        return Ok(None);
    };
    let (lost_tx, lost) = watch::channel(false);
    let lost_tx = Arc::new(lost_tx);
    let listener = tokio::spawn(hear_loss(
        pushes,
        key.as_bytes().to_vec(),
        db,
        token,
        lost_tx.clone(),
    ));
    let watchdog = opts.watchdog.then(|| {
        tokio::spawn(keep_alive(
            con.clone(),
            key.to_string(),
            owner.clone(),
            ttl,
            lost_tx,
        ))
    });
    Ok(Some(LockGuard {
        key: key.to_string(),
        owner,
        token,
        con,
        lost,
        watchdog,
        listener,
        released: false,
    }))
}

/// Waits for this hold's loss notice among the connection's push frames (a
/// notice names the key, database and fencing token, so one for an earlier
/// hold of the same owner is passed over). A hold is counted lost too when
/// the guard's connection closes: a SESSION hold has then ended, and any
/// other can no longer be heard about, renewed or released from here.
async fn hear_loss(
    mut pushes: mpsc::UnboundedReceiver<PushInfo>,
    key: Vec<u8>,
    db: i64,
    token: u64,
    lost: Arc<watch::Sender<bool>>,
) {
    while let Some(push) = pushes.recv().await {
        let ours = match push.kind {
            PushKind::Message => match push.data.last() {
                Some(redis::Value::BulkString(message)) => parse_loss(message)
                    .is_some_and(|(_, d, t, k)| d == db && t == token && k == key.as_slice()),
                _ => false,
            },
            PushKind::Disconnection => true,
            _ => false,
        };
        if ours {
            lost.send_replace(true);
            return;
        }
    }
    // The connection is gone with its pushes.
    lost.send_replace(true);
}

/// Extends the lease every third of it; marks the lock lost when an extension is
/// refused or fails.
async fn keep_alive(
    mut con: MultiplexedConnection,
    key: String,
    owner: String,
    ttl_ms: u64,
    lost: Arc<watch::Sender<bool>>,
) {
    let period = Duration::from_millis((ttl_ms / 3).max(1));
    loop {
        tokio::time::sleep(period).await;
        let extended: RedisResult<i64> = redis::cmd("LOCK.EXTEND")
            .arg(&key)
            .arg(&owner)
            .arg(ttl_ms)
            .query_async(&mut con)
            .await;
        if !matches!(extended, Ok(1)) {
            lost.send_replace(true);
            return;
        }
    }
}

impl LockGuard {
    /// The fencing token: pass it to the resource this lock protects.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The owner token this guard acquired with.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The locked key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the lock is known lost: the server's loss notice arrived (its
    /// lease ran out, it was deleted, overwritten or flushed, its SESSION
    /// connection closed), or the watchdog's renewal was refused or failed.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Completes as soon as the lock is lost (see [`LockGuard::is_lost`]).
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|l| *l).await;
    }

    /// Sets the lease to `ttl` from now; false if this guard no longer holds it.
    pub async fn extend(&mut self, ttl: Duration) -> RedisResult<bool> {
        let n: i64 = redis::cmd("LOCK.EXTEND")
            .arg(&self.key)
            .arg(&self.owner)
            .arg(ms(ttl).max(1))
            .query_async(&mut self.con)
            .await?;
        Ok(n == 1)
    }

    /// Whether the server still takes this guard's token as current.
    pub async fn validate(&mut self) -> RedisResult<bool> {
        let n: i64 = redis::cmd("LOCK.VALIDATE")
            .arg(&self.key)
            .arg(self.token)
            .query_async(&mut self.con)
            .await?;
        Ok(n == 1)
    }

    /// Releases the lock; false if it was no longer held.
    pub async fn release(mut self) -> RedisResult<bool> {
        self.released = true;
        if let Some(w) = self.watchdog.take() {
            w.abort();
        }
        self.listener.abort();
        let n: i64 = redis::cmd("LOCK.RELEASE")
            .arg(&self.key)
            .arg(&self.owner)
            .query_async(&mut self.con)
            .await?;
        Ok(n == 1)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(w) = self.watchdog.take() {
            w.abort();
        }
        self.listener.abort();
        if self.released {
            return;
        }
        let (mut con, key, owner) = (self.con.clone(), self.key.clone(), self.owner.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _: RedisResult<i64> = redis::cmd("LOCK.RELEASE")
                    .arg(&key)
                    .arg(&owner)
                    .query_async(&mut con)
                    .await;
            });
        }
    }
}
