//! Keyspace notifications (`notify-keyspace-events`): the class letters, and
//! the log of events the keyspace itself raises.
//!
//! A command raises its events through `Ctx::notify`, which publishes
//! `__keyspace@<db>__:<key>` → event and `__keyevent@<db>__:<event>` → key as
//! Redis's `notifyKeyspaceEvent` does. Events that happen inside the keyspace,
//! where there is no command context (a key expired by a lookup or by the
//! expiry task, a lock's lease running out), are logged here by the shard and
//! published by whoever holds a context next: the command that caused them
//! (before its own events, as in Redis) or the expiry task after its step.
//! With notifications off (the default), raising an event costs one relaxed
//! load.

use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

/// `K`: events on `__keyspace@<db>__:<key>`.
pub const KEYSPACE: u32 = 1 << 0;
/// `E`: events on `__keyevent@<db>__:<event>`.
pub const KEYEVENT: u32 = 1 << 1;
/// `g`: generic commands (DEL, EXPIRE, RENAME, ...).
pub const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub const STRING: u32 = 1 << 3;
/// `l`: list commands.
pub const LIST: u32 = 1 << 4;
/// `s`: set commands.
pub const SET: u32 = 1 << 5;
/// `h`: hash commands.
pub const HASH: u32 = 1 << 6;
/// `z`: sorted set commands.
pub const ZSET: u32 = 1 << 7;
/// `x`: a key removed because its TTL passed.
pub const EXPIRED: u32 = 1 << 8;
/// `e`: a key evicted for `maxmemory`.
pub const EVICTED: u32 = 1 << 9;
/// `t`: stream commands.
pub const STREAM: u32 = 1 << 10;
/// `m`: a read of a missing key (not part of `A`).
pub const KEY_MISS: u32 = 1 << 11;
/// `d`: module key types (none here, accepted as Redis accepts it).
pub const MODULE: u32 = 1 << 13;
/// `n`: a new key (not part of `A`).
pub const NEW: u32 = 1 << 14;
/// `L`: latchkey's lock events (acquired, released, expired, ...); not part
/// of `A`, so a Redis configuration string means the same here.
pub const LOCK: u32 = 1 << 16;
/// `A`: Redis's alias for `g$lshzxetd`.
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The classes of a `notify-keyspace-events` string; `None` for a letter that
/// names no class (Redis refuses the whole value).
pub fn parse_classes(text: &[u8]) -> Option<u32> {
    text.iter().try_fold(0, |flags, c| {
        Some(
            flags
                | match c {
                    b'A' => ALL,
                    b'g' => GENERIC,
                    b'$' => STRING,
                    b'l' => LIST,
                    b's' => SET,
                    b'h' => HASH,
                    b'z' => ZSET,
                    b'x' => EXPIRED,
                    b'e' => EVICTED,
                    b'K' => KEYSPACE,
                    b'E' => KEYEVENT,
                    b't' => STREAM,
                    b'm' => KEY_MISS,
                    b'd' => MODULE,
                    b'n' => NEW,
                    b'L' => LOCK,
                    _ => return None,
                },
        )
    })
}

/// The canonical string of `flags`, in Redis's order (`CONFIG GET`).
pub fn classes_to_string(flags: u32) -> String {
    let mut s = String::new();
    if flags & ALL == ALL {
        s.push('A');
    } else {
        for (class, letter) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            // Inside the `else` as in Redis: `AKn` reads back as `AK`.
            (NEW, 'n'),
        ] {
            if flags & class != 0 {
                s.push(letter);
            }
        }
    }
    if flags & LOCK != 0 {
        s.push('L');
    }
    for (class, letter) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if flags & class != 0 {
            s.push(letter);
        }
    }
    s
}

/// A hold was granted: at once by LOCK.ACQUIRE, or to a waiter when the lock
/// passed on to it.
pub const LOCK_ACQUIRED: &str = "lock.acquired";
/// A holder released its hold (LOCK.RELEASE; a waiter that left as it was
/// granted).
pub const LOCK_RELEASED: &str = "lock.released";
/// A holder's lease was set anew (LOCK.EXTEND, or LOCK.ACQUIRE by the holder).
pub const LOCK_EXTENDED: &str = "lock.extended";
/// A holder's lease ran out.
pub const LOCK_EXPIRED: &str = "lock.expired";
/// A held lock was taken out of the keyspace (DEL, UNLINK, an overwrite,
/// FLUSHDB/FLUSHALL, its key's TTL): one per holder.
pub const LOCK_DELETED: &str = "lock.deleted";
/// A SESSION hold ended because its connection closed.
pub const LOCK_SESSION_RELEASED: &str = "lock.session-released";

/// The channels of lock-loss notices: `__lock_lost__:<owner>` gets a message
/// each time a hold of `owner` ends other than by its own release, whatever
/// `notify-keyspace-events` says.
pub const LOCK_LOST_PREFIX: &[u8] = b"__lock_lost__:";

/// Whether a subscription to `name` (a channel, or a pattern) may receive
/// lock-loss notices: such subscriptions are counted, so a loss costs nothing
/// when there are none. A pattern may when its literal start (up to its first
/// glob character) agrees with `__lock_lost__:`: `*` and `__lock*` may,
/// a watcher of `__keyevent@*` does not turn loss notices on.
pub fn may_hear_losses(pattern: bool, name: &[u8]) -> bool {
    if !pattern {
        return name.starts_with(LOCK_LOST_PREFIX);
    }
    let literal = name
        .iter()
        .position(|c| matches!(c, b'*' | b'?' | b'[' | b'\\'))
        .unwrap_or(name.len());
    let n = literal.min(LOCK_LOST_PREFIX.len());
    name[..n] == LOCK_LOST_PREFIX[..n]
}

/// A holder's loss: the channel it goes to and its message,
/// `<event> <db> <token> <key>` (the key last, as it may hold spaces).
pub fn loss_message(lost: &Lost, name: &str, db: usize, key: &[u8]) -> (Bytes, Bytes) {
    let mut channel = Vec::with_capacity(LOCK_LOST_PREFIX.len() + lost.owner.len());
    channel.extend_from_slice(LOCK_LOST_PREFIX);
    channel.extend_from_slice(&lost.owner);
    let mut message = format!("{name} {db} {} ", lost.token).into_bytes();
    message.extend_from_slice(key);
    (Bytes::from(channel), Bytes::from(message))
}

/// The holder an event took a lock from: its owner and fencing token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    /// The holder's owner token.
    pub owner: Bytes,
    /// Its fencing token.
    pub token: u64,
}

/// One event raised inside the keyspace, waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its class (one of the constants above).
    pub class: u32,
    /// Its name (`expired`, `keymiss`, `lock.expired`, ...).
    pub name: &'static str,
    /// The database of its key.
    pub db: usize,
    /// The key.
    pub key: Bytes,
    /// The holder who lost the lock at `key` by this event, when someone may
    /// listen for its loss notice.
    pub lost: Option<Lost>,
}

/// The server's notification classes and the events the keyspace has raised
/// and nobody has published yet.
#[derive(Debug, Default)]
pub struct Notifier {
    flags: AtomicU32,
    any_logged: AtomicBool,
    /// Events by the thread that raised them: a command (or expiry step)
    /// runs on one thread from start to end without awaiting, so the thread
    /// that drains after it takes exactly its own events, never those of a
    /// command running beside it on another worker.
    logged: Mutex<Vec<(std::thread::ThreadId, Event)>>,
    /// Subscriptions that may hear a lock-loss notice (`__lock_lost__:`
    /// channels, and patterns), counted by the pub/sub registry.
    loss_listeners: Arc<AtomicUsize>,
}

impl Notifier {
    /// Sets the classes (`notify-keyspace-events`).
    pub fn set_classes(&self, flags: u32) {
        self.flags.store(flags, Ordering::Relaxed);
    }

    /// True when events of `class` are published: the class is on and so is
    /// at least one of `K` and `E`.
    #[inline]
    pub fn wants(&self, class: u32) -> bool {
        let flags = self.flags.load(Ordering::Relaxed);
        flags & class != 0 && flags & (KEYSPACE | KEYEVENT) != 0
    }

    /// The channels event `name` on `key` of `db` is published on, each with
    /// its message: `__keyspace@<db>__:<key>` gets the event's name and
    /// `__keyevent@<db>__:<name>` the key, as the classes ask.
    pub fn channels(&self, name: &str, db: usize, key: &[u8]) -> Vec<(Bytes, Bytes)> {
        let flags = self.flags.load(Ordering::Relaxed);
        let mut out = Vec::with_capacity(2);
        if flags & KEYSPACE != 0 {
            let mut chan = format!("__keyspace@{db}__:").into_bytes();
            chan.extend_from_slice(key);
            out.push((Bytes::from(chan), Bytes::copy_from_slice(name.as_bytes())));
        }
        if flags & KEYEVENT != 0 {
            let chan = format!("__keyevent@{db}__:{name}");
            out.push((Bytes::from(chan), Bytes::copy_from_slice(key)));
        }
        out
    }

    /// Logs an event raised inside the keyspace, if its class is on.
    pub fn log(&self, class: u32, name: &'static str, db: usize, key: &[u8]) {
        self.log_loss(class, name, db, key, None);
    }

    /// The count the pub/sub registry keeps of subscriptions that may hear a
    /// lock-loss notice.
    pub fn loss_listeners(&self) -> Arc<AtomicUsize> {
        self.loss_listeners.clone()
    }

    /// True when a subscription may hear a lock-loss notice; one relaxed load.
    #[inline]
    pub fn wants_losses(&self) -> bool {
        self.loss_listeners.load(Ordering::Relaxed) > 0
    }

    /// True when lock events or loss notices would be published: what a caller
    /// checks before it gathers the holds a removed lock had.
    #[inline]
    pub fn wants_lock_events(&self) -> bool {
        self.wants(LOCK) || self.wants_losses()
    }

    /// Logs an event raised inside the keyspace that may also take a lock
    /// from its holder `lost` (owner, fencing token): kept if its class is on,
    /// or if the loss may be heard (see [`may_hear_losses`]).
    pub fn log_loss(
        &self,
        class: u32,
        name: &'static str,
        db: usize,
        key: &[u8],
        lost: Option<(&[u8], u64)>,
    ) {
        let lost = lost
            .filter(|_| self.wants_losses())
            .map(|(owner, token)| Lost {
                owner: Bytes::copy_from_slice(owner),
                token,
            });
        if lost.is_none() && !self.wants(class) {
            return;
        }
        let event = Event {
            class,
            name,
            db,
            key: Bytes::copy_from_slice(key),
            lost,
        };
        self.logged
            .lock()
            .push((std::thread::current().id(), event));
        self.any_logged.store(true, Ordering::Release);
    }

    /// Whether any thread may have logged events not taken yet (one relaxed
    /// load): the request path asks before building anything to take them.
    #[inline]
    pub fn any_logged(&self) -> bool {
        self.any_logged.load(Ordering::Relaxed)
    }

    /// Takes the events this thread logged, oldest first; one relaxed load
    /// when nobody has logged any.
    #[inline]
    pub fn take_logged(&self) -> Vec<Event> {
        if !self.any_logged.load(Ordering::Relaxed) {
            return Vec::new();
        }
        self.take_logged_here()
    }

    fn take_logged_here(&self) -> Vec<Event> {
        let me = std::thread::current().id();
        let mut logged = self.logged.lock();
        let mut mine = Vec::new();
        logged.retain_mut(|(thread, event)| {
            if *thread != me {
                return true;
            }
            mine.push(Event {
                key: std::mem::take(&mut event.key),
                lost: event.lost.take(),
                ..*event
            });
            false
        });
        if logged.is_empty() {
            self.any_logged.store(false, Ordering::Relaxed);
        }
        mine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_strings_read_and_print_as_redis_does() {
        assert_eq!(parse_classes(b"KEA"), Some(KEYSPACE | KEYEVENT | ALL));
        assert_eq!(classes_to_string(KEYSPACE | KEYEVENT | ALL), "AKE");
        assert_eq!(classes_to_string(parse_classes(b"Egx$").unwrap()), "g$xE");
        assert_eq!(classes_to_string(parse_classes(b"").unwrap()), "");
        assert_eq!(parse_classes(b"Kq"), None);
        assert_eq!(classes_to_string(parse_classes(b"KAmn").unwrap()), "AKm");
        assert_eq!(classes_to_string(parse_classes(b"Kn").unwrap()), "nK");
        assert_eq!(classes_to_string(parse_classes(b"EL").unwrap()), "LE");
    }

    #[test]
    fn nothing_is_logged_unless_a_channel_kind_is_on() {
        let n = Notifier::default();
        n.set_classes(EXPIRED);
        n.log(EXPIRED, "expired", 0, b"k");
        assert!(n.take_logged().is_empty());
        n.set_classes(EXPIRED | KEYEVENT);
        n.log(EXPIRED, "expired", 3, b"k");
        n.log(GENERIC, "del", 3, b"k");
        let logged = n.take_logged();
        assert_eq!(logged.len(), 1);
        assert_eq!(logged[0].db, 3);
        assert!(n.take_logged().is_empty());
    }

    #[test]
    fn only_patterns_that_can_match_the_loss_channels_count_as_listeners() {
        for p in [
            "*",
            "__lock*",
            "__lock_lost__:me",
            "__lock_lost__:*",
            "?_lock*",
            "[_]*",
        ] {
            assert!(may_hear_losses(true, p.as_bytes()), "{p}");
        }
        for p in [
            "__keyevent@*",
            "__keyspace@0__:*",
            "news.*",
            "__lock_lost_x*",
        ] {
            assert!(!may_hear_losses(true, p.as_bytes()), "{p}");
        }
        assert!(may_hear_losses(false, b"__lock_lost__:me"));
        assert!(!may_hear_losses(false, b"__lock_lost__"));
    }

    #[test]
    fn a_thread_takes_only_the_events_it_logged() {
        let n = std::sync::Arc::new(Notifier::default());
        n.set_classes(EXPIRED | KEYEVENT);
        n.log(EXPIRED, "expired", 0, b"mine");
        let other = n.clone();
        std::thread::spawn(move || other.log(EXPIRED, "expired", 0, b"theirs"))
            .join()
            .unwrap();
        let mine = n.take_logged();
        assert_eq!(mine.len(), 1);
        assert_eq!(&mine[0].key[..], b"mine");
        assert!(n.take_logged().is_empty());
        assert_eq!(n.logged.lock().len(), 1, "the other thread's event waits");
    }

    #[test]
    fn a_loss_is_logged_only_when_someone_may_hear_it() {
        let n = Notifier::default();
        n.log_loss(LOCK, LOCK_EXPIRED, 0, b"k", Some((b"o", 7)));
        assert!(n.take_logged().is_empty(), "nobody listens");
        n.loss_listeners().fetch_add(1, Ordering::Relaxed);
        assert!(n.wants_lock_events() && !n.wants(LOCK));
        n.log_loss(LOCK, LOCK_EXPIRED, 2, b"k", Some((b"o", 7)));
        n.log_loss(LOCK, LOCK_ACQUIRED, 2, b"k", None);
        let logged = n.take_logged();
        assert_eq!(logged.len(), 1, "the event without a loss is off");
        let lost = logged[0].lost.as_ref().unwrap();
        let (chan, msg) = loss_message(lost, logged[0].name, 2, b"a key");
        assert_eq!(&chan[..], b"__lock_lost__:o");
        assert_eq!(&msg[..], b"lock.expired 2 7 a key");
    }

    #[test]
    fn channels_follow_the_classes() {
        let n = Notifier::default();
        n.set_classes(KEYSPACE | KEYEVENT | ALL);
        let chans = n.channels("set", 2, b"k");
        assert_eq!(&chans[0].0[..], b"__keyspace@2__:k");
        assert_eq!(&chans[0].1[..], b"set");
        assert_eq!(&chans[1].0[..], b"__keyevent@2__:set");
        assert_eq!(&chans[1].1[..], b"k");
    }
}
