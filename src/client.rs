//! A client-side guard for latchkey's native locks, on top of the `redis` crate
//! (feature `client`).
//!
//! [`acquire`] returns a [`LockGuard`] that exposes the fencing token, releases the
//! lock when dropped, and can keep the lease alive in the background while held
//! (a watchdog that runs `LOCK.EXTEND` every third of the lease) and report when
//! the lock was lost.
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

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::RedisResult;
use tokio::sync::watch;
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
    released: bool,
}

fn random_owner() -> String {
    format!("{:032x}", fastrand::u128(..))
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// Acquires `key` with `opts`: `Ok(None)` if it was not free (or the wait ran out).
pub async fn acquire(
    client: &redis::Client,
    key: &str,
    opts: LockOptions,
) -> RedisResult<Option<LockGuard>> {
    let mut con = client.get_multiplexed_async_connection().await?;
    let owner = opts.owner.clone().unwrap_or_else(random_owner);
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
        released: false,
    }))
}

/// Extends the lease every third of it; marks the lock lost when an extension is
/// refused or fails.
async fn keep_alive(
    mut con: MultiplexedConnection,
    key: String,
    owner: String,
    ttl_ms: u64,
    lost: watch::Sender<bool>,
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
            let _ = lost.send(true);
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

    /// Whether the watchdog found the lock lost (its lease ran out, or someone
    /// deleted it). Always false without a watchdog.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Completes when the watchdog finds the lock lost.
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
