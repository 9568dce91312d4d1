//! CLIENT PAUSE: while a pause is on, a client's command that it covers (every
//! command for `ALL`; for `WRITE`, write commands and those that may
//! propagate: EVAL, EVALSHA, PUBLISH, SPUBLISH, PFCOUNT, FCALL and FCALL_RO of
//! a function without `no-writes` (and FCALL of none), and EXEC of a
//! transaction holding one) is postponed, as Redis's `BLOCKED_POSTPONE`: the
//! dispatcher leaves a [`crate::session::Wait::Postponed`] in the session and
//! the connection waits, through its inbox, for [`ClientPause::unpause`] or
//! the pause's end, then runs the command again from the start (its checks
//! included), so it may be postponed again if the pause was extended.
//! Postponed clients are woken in the order they were postponed.
//!
//! While writes are paused, active expiry and eviction stop too (the dataset
//! stays as it is). A server with no pause costs one relaxed load per command.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use parking_lot::Mutex;

use crate::blocking::{Message, Outbox};

/// No pause.
pub const OFF: u8 = 0;
/// `CLIENT PAUSE ... WRITE`.
pub const WRITE: u8 = 1;
/// `CLIENT PAUSE ... ALL`.
pub const ALL: u8 = 2;

/// The server's pause (Redis's `PAUSE_BY_CLIENT_COMMAND` purpose).
#[derive(Debug, Default)]
pub struct ClientPause {
    /// [`OFF`], [`WRITE`] or [`ALL`].
    mode: AtomicU8,
    /// Server clock ms at which it ends (it is over once the clock is past).
    end_ms: AtomicU64,
    /// Postponed clients in the order they were postponed: their wait's id
    /// and inbox.
    waiters: Mutex<VecDeque<(u64, Outbox)>>,
    next_id: AtomicU64,
}

impl ClientPause {
    /// The pause in force at `now`, ([`OFF`], 0) when none. A pause whose end
    /// has passed is cleared here (its postponed clients time out on their own
    /// deadline).
    #[inline]
    pub fn current(&self, now: u64) -> (u8, u64) {
        let mode = self.mode.load(Ordering::Relaxed);
        if mode == OFF {
            return (OFF, 0);
        }
        let end = self.end_ms.load(Ordering::Relaxed);
        if end < now {
            let _waiters = self.waiters.lock();
            if self.end_ms.load(Ordering::Relaxed) < now {
                self.mode.store(OFF, Ordering::Relaxed);
            }
            return (
                self.mode.load(Ordering::Relaxed),
                self.end_ms.load(Ordering::Relaxed),
            );
        }
        (mode, end)
    }

    /// Whether writes (expiry and eviction included) are paused at `now`.
    #[inline]
    pub fn writes_paused(&self, now: u64) -> bool {
        self.current(now).0 != OFF
    }

    /// CLIENT PAUSE: pauses `mode` until `end` (server clock ms). A pause
    /// already on keeps the more restrictive mode and the later end, as
    /// Redis merges two pauses of the same purpose.
    pub fn pause(&self, end: u64, mode: u8, now: u64) {
        let _waiters = self.waiters.lock();
        let (old_mode, old_end) = {
            let m = self.mode.load(Ordering::Relaxed);
            if m == OFF || self.end_ms.load(Ordering::Relaxed) < now {
                (OFF, 0)
            } else {
                (m, self.end_ms.load(Ordering::Relaxed))
            }
        };
        self.end_ms.store(old_end.max(end), Ordering::Relaxed);
        self.mode.store(old_mode.max(mode), Ordering::Relaxed);
        if self.end_ms.load(Ordering::Relaxed) < now {
            self.mode.store(OFF, Ordering::Relaxed);
        }
    }

    /// CLIENT UNPAUSE: ends the pause and wakes every postponed client, in
    /// the order they were postponed.
    pub fn unpause(&self) {
        let mut waiters = self.waiters.lock();
        self.mode.store(OFF, Ordering::Relaxed);
        self.end_ms.store(0, Ordering::Relaxed);
        for (wait, outbox) in waiters.drain(..) {
            let _ = outbox.send(Message::Resume { wait });
        }
    }

    /// Files a postponed client; its wait's id, which the resume carries.
    pub fn postpone(&self, outbox: Outbox) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.waiters.lock().push_back((id, outbox));
        id
    }

    /// A postponed client stops waiting (the pause's end, a disconnect,
    /// CLIENT UNBLOCK): true if it was still filed.
    pub fn cancel(&self, wait: u64) -> bool {
        let mut waiters = self.waiters.lock();
        let before = waiters.len();
        waiters.retain(|(id, _)| *id != wait);
        waiters.len() != before
    }
}

/// Whether a pause of `mode` postpones a command; `writes`: whether a WRITE
/// pause does (the command may replicate, see [`may_replicate`], or it is
/// EXEC of a transaction holding such a command).
pub fn postpones(mode: u8, writes: bool) -> bool {
    match mode {
        OFF => false,
        ALL => true,
        _ => writes,
    }
}

/// Redis's `CMD_WRITE | CMD_MAY_REPLICATE`: a write command, or one that
/// may add to the replication stream (scripts that may write, PUBLISH,
/// PFCOUNT, which may rewrite its cached count). FCALL and FCALL_RO depend
/// on the function they call (`commands::function::call_may_write`).
pub fn may_replicate(name: &str, flags: u32) -> bool {
    flags & crate::commands::flag::WRITE != 0
        || matches!(
            name,
            "eval" | "evalsha" | "publish" | "spublish" | "pfcount"
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocking::Inbox;

    #[test]
    fn a_pause_merges_ends_and_modes_and_ends_with_its_time() {
        let p = ClientPause::default();
        assert_eq!(p.current(0), (OFF, 0));
        p.pause(100, WRITE, 0);
        assert_eq!(p.current(50), (WRITE, 100));
        p.pause(80, ALL, 50);
        assert_eq!(p.current(50), (ALL, 100));
        assert_eq!(p.current(100), (ALL, 100));
        assert_eq!(p.current(101), (OFF, 100));
        // Over: a new pause starts afresh.
        p.pause(200, WRITE, 150);
        assert_eq!(p.current(150), (WRITE, 200));
        // A pause that is already over (CLIENT PAUSE 0) pauses nothing.
        let q = ClientPause::default();
        q.pause(0, ALL, 10);
        assert_eq!(q.current(10), (OFF, 0));
    }

    #[test]
    fn unpause_wakes_postponed_clients_in_order() {
        let p = ClientPause::default();
        p.pause(1000, ALL, 0);
        let mut a = Inbox::default();
        let mut b = Inbox::default();
        let wa = p.postpone(a.outbox());
        let wb = p.postpone(b.outbox());
        let wc = p.postpone(b.outbox());
        assert!(p.cancel(wc));
        assert!(!p.cancel(wc));
        p.unpause();
        assert!(matches!(a.try_recv(), Some(Message::Resume { wait }) if wait == wa));
        assert!(matches!(b.try_recv(), Some(Message::Resume { wait }) if wait == wb));
        assert!(b.try_recv().is_none());
        assert_eq!(p.current(0), (OFF, 0));
    }

    #[test]
    fn write_mode_postpones_writes_and_commands_that_may_replicate() {
        use crate::commands::flag;
        assert!(may_replicate("set", flag::WRITE));
        assert!(may_replicate("eval", 0));
        assert!(may_replicate("publish", 0));
        assert!(may_replicate("pfcount", flag::READONLY));
        assert!(!may_replicate("eval_ro", 0));
        assert!(!may_replicate("get", flag::READONLY));
        assert!(postpones(WRITE, true));
        assert!(!postpones(WRITE, false));
        assert!(postpones(ALL, false));
        assert!(!postpones(OFF, true));
    }
}
