//! Client-side caching (CLIENT TRACKING): which clients may hold which keys,
//! and the invalidation messages sent when those keys change.
//!
//! **Default mode.** The keys a tracking client reads (the keys of commands
//! flagged `readonly`) go into one server-wide table, key → client ids (keys of
//! every database share it, as in Redis). A write to a tracked key sends each of
//! those clients one invalidation and forgets the key.
//!
//! **BCAST mode.** A client registers prefixes instead; every modified key
//! matching one is collected under the prefix and sent, batched, to its clients
//! when the batch of commands that modified it ends ([`Tracking::broadcast`]).
//!
//! **How writes are seen.** The keyspace notes every modified key in a
//! thread-local list while its hook is active (`keyspace::KeyHook`: someone
//! tracks, or the table still holds keys); the command that wrote hands the
//! list to [`Tracking::process`] once it has run, which knows who wrote (for
//! NOLOOP). With nobody tracking a write costs one relaxed load.
//!
//! **A read racing a write.** Ordinary commands run in parallel, so a tracking
//! client's keys are registered before its command runs as well as after: a
//! write that lands after the read then always finds the key (the shard lock
//! orders them), and its invalidation reaches the reader after the reply.
//!
//! **Delivery.** Each invalidation is a push through the receiving connection's
//! inbox, counted against its `client-output-buffer-limit` as published
//! messages are (`pubsub::Delivery`). RESP3 clients get `>2 invalidate [keys]`;
//! with REDIRECT the target gets it, or, in RESP2 and subscribed, a `message`
//! on `__redis__:invalidate`. Invalidations caused inside EXEC or a script
//! leave when it ends. Frames are built byte for byte as Redis writes them
//! (a flush sends the *tracking* client's null, `$-1` or `_`, even to a target
//! of the other protocol, as Redis does).
//!
//! **Memory.** The table holds at most `tracking-table-max-keys` keys (0: no
//! limit): past it random keys are evicted, their clients told as if the keys
//! changed. A client that disconnects or turns tracking off leaves its ids in
//! the table (lazily, as Redis); the ids of clients gone are swept from an
//! entry whenever it grows to a power of two, so an entry holds at most about
//! twice the connected clients.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use indexmap::IndexMap;
use parking_lot::Mutex;

use crate::commands::{flag as cmdflag, CommandSpec};
use crate::keyspace::{take_modified, KeyHook, Modified};
use crate::pubsub::{Delivery, Subscriber};
use crate::server::Shared;
use crate::session::{ClientInfo, Session};

/// Tracking flags, as kept in `ClientInfo::tracking` and `Session::tracking`.
pub mod flag {
    /// CLIENT TRACKING is on (`flags=t`).
    pub const ON: u32 = 1;
    /// BCAST mode (`flags=B`).
    pub const BCAST: u32 = 1 << 1;
    /// OPTIN mode.
    pub const OPTIN: u32 = 1 << 2;
    /// OPTOUT mode.
    pub const OPTOUT: u32 = 1 << 3;
    /// NOLOOP: not told of its own writes.
    pub const NOLOOP: u32 = 1 << 4;
    /// The redirection target is gone (`flags=R`, `broken_redirect`).
    pub const BROKEN_REDIR: u32 = 1 << 5;
}

/// The channel invalidations go to for a RESP2 redirection target.
pub const CHANNEL: &[u8] = b"__redis__:invalidate";

/// The client ids that may hold one key. Few clients read most keys: up to
/// [`FEW`] ids inline-ish in a vector, more in a set.
#[derive(Debug)]
enum Ids {
    Few(smallvec::SmallVec<[u64; 2]>),
    Many(HashSet<u64, ahash::RandomState>),
}

const FEW: usize = 16;

impl Ids {
    fn new() -> Self {
        Ids::Few(smallvec::SmallVec::new())
    }

    fn len(&self) -> usize {
        match self {
            Ids::Few(v) => v.len(),
            Ids::Many(s) => s.len(),
        }
    }

    fn contains(&self, id: u64) -> bool {
        match self {
            Ids::Few(v) => v.contains(&id),
            Ids::Many(s) => s.contains(&id),
        }
    }

    /// Adds `id`; true if it was not there.
    fn insert(&mut self, id: u64) -> bool {
        match self {
            Ids::Few(v) if v.contains(&id) => false,
            Ids::Few(v) if v.len() < FEW => {
                v.push(id);
                true
            }
            Ids::Few(v) => {
                let mut s: HashSet<u64, ahash::RandomState> = v.iter().copied().collect();
                s.insert(id);
                *self = Ids::Many(s);
                true
            }
            Ids::Many(s) => s.insert(id),
        }
    }

    fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        match self {
            Ids::Few(v) => v.retain(|id| keep(*id)),
            Ids::Many(s) => s.retain(|id| keep(*id)),
        }
    }

    fn to_vec(&self) -> Vec<u64> {
        match self {
            Ids::Few(v) => v.to_vec(),
            Ids::Many(s) => s.iter().copied().collect(),
        }
    }
}

/// A client that has turned tracking on and is still connected.
#[derive(Debug)]
struct Member {
    info: Arc<ClientInfo>,
    /// BCAST prefixes, in Redis's (byte) order.
    prefixes: BTreeSet<Bytes>,
}

/// One BCAST prefix: its clients, and the keys modified under it since the
/// last broadcast, each with the client that modified it last (0: none).
#[derive(Debug, Default)]
struct Prefix {
    clients: BTreeSet<u64>,
    keys: BTreeMap<Bytes, u64>,
}

#[derive(Debug, Default)]
struct Inner {
    table: IndexMap<Bytes, Ids, ahash::RandomState>,
    /// Ids across the table (`tracking_total_items`).
    items: usize,
    prefixes: BTreeMap<Bytes, Prefix>,
    members: HashMap<u64, Member, ahash::RandomState>,
    /// Members with tracking on (`tracking_clients`).
    on: usize,
}

/// What one invalidation says.
#[derive(Debug, Clone)]
pub enum Payload {
    /// These keys (a RESP array of bulk strings, already encoded).
    Keys(Bytes),
    /// Every key (a flush): the tracking client's own null.
    All,
}

/// An invalidation for one tracking client, to be delivered to it or to its
/// redirection target ([`deliver`]).
#[derive(Debug)]
pub struct Notice {
    info: Arc<ClientInfo>,
    payload: Payload,
}

/// The server's tracking state.
#[derive(Debug)]
pub struct Tracking {
    hook: Arc<KeyHook>,
    inner: Mutex<Inner>,
    /// Keys wait under a prefix for [`Tracking::broadcast`].
    bcast_pending: AtomicBool,
    clients: AtomicUsize,
}

/// Why CLIENT TRACKING ON was refused: Redis's texts.
#[derive(Debug)]
pub struct Refused(pub String);

fn encode_keys<'a>(keys: impl ExactSizeIterator<Item = &'a [u8]>) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(keys.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for k in keys {
        out.put_u8(b'$');
        out.extend_from_slice(itoa::Buffer::new().format(k.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(k);
        out.extend_from_slice(b"\r\n");
    }
    out.freeze()
}

/// Whether two prefixes would both match some key (one starts the other), as
/// Redis's `stringCheckPrefix`.
fn overlap(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

impl Inner {
    fn member_on(&self, id: u64) -> Option<(&Member, u32)> {
        let m = self.members.get(&id)?;
        let flags = m.info.tracking.load(Ordering::Relaxed);
        (flags & flag::ON != 0).then_some((m, flags))
    }

    fn notice(m: &Member, payload: Payload) -> Notice {
        Notice {
            info: m.info.clone(),
            payload,
        }
    }

    /// Forgets `key` and tells the default-mode clients that may hold it,
    /// but `quiet` (a NOLOOP writer, or a reader of its own fresh key).
    fn invalidate(&mut self, key: &[u8], quiet: Option<u64>, out: &mut Vec<Notice>) {
        let Some(ids) = self.table.swap_remove(key) else {
            return;
        };
        self.items -= ids.len();
        let mut payload = None;
        for id in ids.to_vec() {
            if Some(id) == quiet {
                continue;
            }
            let Some((m, flags)) = self.member_on(id) else {
                continue;
            };
            if flags & flag::BCAST != 0 {
                continue;
            }
            let p = payload.get_or_insert_with(|| encode_keys(std::iter::once(key)));
            out.push(Self::notice(m, Payload::Keys(p.clone())));
        }
    }

    fn drop_prefix_client(&mut self, id: u64, prefix: &Bytes) {
        if let Some(p) = self.prefixes.get_mut(prefix) {
            p.clients.remove(&id);
            if p.clients.is_empty() {
                self.prefixes.remove(prefix);
            }
        }
    }
}

impl Tracking {
    /// Tracking over a keyspace whose writes report through `hook`.
    pub fn new(hook: Arc<KeyHook>) -> Self {
        Tracking {
            hook,
            inner: Mutex::new(Inner::default()),
            bcast_pending: AtomicBool::new(false),
            clients: AtomicUsize::new(0),
        }
    }

    /// Writes are noted while someone tracks or the table holds keys.
    fn update_hook(&self, inner: &Inner) {
        self.hook
            .set_active(inner.on > 0 || !inner.table.is_empty());
        self.clients.store(inner.on, Ordering::Relaxed);
    }

    /// Clients with tracking on (`tracking_clients`).
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// Keys in the table (`tracking_total_keys`), ids across them
    /// (`tracking_total_items`) and BCAST prefixes (`tracking_total_prefixes`).
    pub fn totals(&self) -> (usize, usize, usize) {
        let inner = self.inner.lock();
        (inner.table.len(), inner.items, inner.prefixes.len())
    }

    /// The BCAST prefixes of client `id`, in order.
    pub fn prefixes_of(&self, id: u64) -> Vec<Bytes> {
        self.inner
            .lock()
            .members
            .get(&id)
            .map(|m| m.prefixes.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Checks new BCAST `prefixes` against each other and the client's own,
    /// as Redis's `checkPrefixCollisionsOrReply`: `Err` with the first
    /// collision in Redis's order (each new prefix in turn, against the
    /// existing ones, then against the new ones after it). A collision found
    /// against a later new prefix, for any but the first, is the `Ok(Some)`
    /// error Redis replies *and then enables tracking anyway*.
    pub fn check_prefixes(&self, id: u64, prefixes: &[Bytes]) -> Result<Option<String>, String> {
        let inner = self.inner.lock();
        let existing: Vec<&Bytes> = inner
            .members
            .get(&id)
            .map(|m| m.prefixes.iter().collect())
            .unwrap_or_default();
        // A sorted pass finds whether any pair overlaps at all (a prefix is
        // then right before some string it starts); only then is Redis's
        // pairwise order searched, so a long list that is fine costs n log n.
        let mut all: Vec<&[u8]> = existing.iter().map(|b| b.as_ref()).collect();
        all.extend(prefixes.iter().map(|b| b.as_ref()));
        all.sort_unstable();
        if !all.windows(2).any(|w| overlap(w[0], w[1])) {
            return Ok(None);
        }
        for (i, p) in prefixes.iter().enumerate() {
            if let Some(e) = existing.iter().find(|e| overlap(e, p)) {
                return Err(format!(
                    "Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(e)
                ));
            }
            if let Some(q) = prefixes[i + 1..].iter().find(|q| overlap(p, q)) {
                let text = format!(
                    "Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(q)
                );
                return if i == 0 { Err(text) } else { Ok(Some(text)) };
            }
        }
        Ok(None)
    }

    /// Turns tracking on for `info` with `flags` (ON and the mode bits),
    /// redirecting to `redirect` (0: none), with BCAST `prefixes` (none: the
    /// empty prefix). Checks were made by the caller.
    pub fn enable(&self, info: &Arc<ClientInfo>, flags: u32, redirect: u64, prefixes: &[Bytes]) {
        let mut inner = self.inner.lock();
        let id = info.id;
        let old = info.tracking.load(Ordering::Relaxed);
        if old & flag::ON == 0 {
            inner.on += 1;
        }
        let member = inner.members.entry(id).or_insert_with(|| Member {
            info: info.clone(),
            prefixes: BTreeSet::new(),
        });
        let mut added = Vec::new();
        if flags & flag::BCAST != 0 {
            let wanted: Vec<Bytes> = if prefixes.is_empty() {
                vec![Bytes::new()]
            } else {
                prefixes.to_vec()
            };
            for p in wanted {
                if member.prefixes.insert(p.clone()) {
                    added.push(p);
                }
            }
        }
        for p in added {
            inner.prefixes.entry(p).or_default().clients.insert(id);
        }
        info.tracking_redirect.store(redirect, Ordering::Relaxed);
        info.tracking.store(flags | flag::ON, Ordering::Relaxed);
        self.update_hook(&inner);
    }

    /// Turns tracking off for client `id` (CLIENT TRACKING OFF, RESET): its
    /// prefixes go; its ids stay in the table, skipped, until their keys do.
    pub fn disable(&self, info: &ClientInfo) {
        let mut inner = self.inner.lock();
        let prefixes = match inner.members.get_mut(&info.id) {
            Some(m) => std::mem::take(&mut m.prefixes),
            None => BTreeSet::new(),
        };
        for p in &prefixes {
            inner.drop_prefix_client(info.id, p);
        }
        if info.tracking.swap(0, Ordering::Relaxed) & flag::ON != 0 {
            inner.on -= 1;
        }
        info.tracking_redirect.store(0, Ordering::Relaxed);
        self.update_hook(&inner);
    }

    /// A client disconnected: tracking off, and it is no member any more.
    pub fn leave(&self, info: &ClientInfo) {
        self.disable(info);
        self.inner.lock().members.remove(&info.id);
    }

    /// Remembers that client `id` may hold `keys`; returns those it was not
    /// already tracking, then evicts random keys past `max_keys` (0: no
    /// limit), whose clients are told in `out`.
    pub fn remember(
        &self,
        id: u64,
        keys: &[Bytes],
        max_keys: usize,
        out: &mut Vec<Notice>,
    ) -> Vec<Bytes> {
        let mut inner = self.inner.lock();
        let mut fresh = Vec::new();
        for key in keys {
            let inner = &mut *inner;
            let ids = match inner.table.get_mut(key.as_ref()) {
                Some(ids) => ids,
                None => {
                    inner.table.insert(Bytes::copy_from_slice(key), Ids::new());
                    match inner.table.get_mut(key.as_ref()) {
                        Some(ids) => ids,
                        None => continue,
                    }
                }
            };
            if ids.contains(id) {
                continue;
            }
            ids.insert(id);
            inner.items += 1;
            let n = ids.len();
            if n >= 8 && n.is_power_of_two() {
                // Sweep the ids of clients gone.
                let members = &inner.members;
                ids.retain(|i| members.contains_key(&i));
                inner.items -= n - ids.len();
            }
            fresh.push(key.clone());
        }
        self.limit_locked(&mut inner, max_keys, out);
        self.update_hook(&inner);
        fresh
    }

    /// Evicts random keys until the table holds at most `max_keys` (0: no
    /// limit), telling their clients.
    pub fn limit(&self, max_keys: usize, out: &mut Vec<Notice>) {
        let mut inner = self.inner.lock();
        self.limit_locked(&mut inner, max_keys, out);
        self.update_hook(&inner);
    }

    fn limit_locked(&self, inner: &mut Inner, max_keys: usize, out: &mut Vec<Notice>) {
        if max_keys == 0 {
            return;
        }
        while inner.table.len() > max_keys {
            let i = fastrand::usize(..inner.table.len());
            let Some(key) = inner.table.get_index(i).map(|(k, _)| k.clone()) else {
                break;
            };
            inner.invalidate(&key, None, out);
        }
    }

    /// Handles what a command (or the expiry task) modified: default-mode
    /// clients are told at once (`out`), BCAST prefixes collect the keys for
    /// [`Tracking::broadcast`]. `writer` is the client that ran the command
    /// (NOLOOP); `quiet` keys are ones the writer itself started tracking in
    /// this very command, of which it is not told.
    pub fn process(
        &self,
        modified: Vec<Modified>,
        writer: Option<u64>,
        quiet: &[Bytes],
        out: &mut Vec<Notice>,
    ) {
        let mut inner = self.inner.lock();
        let writer_noloop = writer
            .and_then(|w| inner.member_on(w))
            .is_some_and(|(_, f)| f & flag::NOLOOP != 0);
        for m in modified {
            match m {
                Modified::Key(key) => {
                    if !inner.prefixes.is_empty() {
                        let mut any = false;
                        for (p, state) in inner.prefixes.iter_mut() {
                            if key.starts_with(p) {
                                state.keys.insert(key.clone(), writer.unwrap_or(0));
                                any = true;
                            }
                        }
                        if any {
                            self.bcast_pending.store(true, Ordering::Release);
                        }
                    }
                    let skip = if writer_noloop || quiet.contains(&key) {
                        writer
                    } else {
                        None
                    };
                    inner.invalidate(&key, skip, out);
                }
                Modified::Flush => {
                    let mut ids: Vec<u64> = inner
                        .members
                        .iter()
                        .filter(|(_, m)| m.info.tracking.load(Ordering::Relaxed) & flag::ON != 0)
                        .map(|(id, _)| *id)
                        .collect();
                    ids.sort_unstable();
                    for id in ids {
                        if let Some(m) = inner.members.get(&id) {
                            out.push(Inner::notice(m, Payload::All));
                        }
                    }
                    inner.table = IndexMap::default();
                    inner.items = 0;
                }
            }
        }
        self.update_hook(&inner);
    }

    /// Whether BCAST keys wait to be sent.
    pub fn has_broadcast(&self) -> bool {
        self.bcast_pending.load(Ordering::Relaxed)
    }

    /// Sends each BCAST client the keys modified under its prefixes since the
    /// last broadcast, one message per prefix (a NOLOOP client's own writes
    /// left out), as Redis does before it sleeps.
    pub fn broadcast(&self, out: &mut Vec<Notice>) {
        if !self.bcast_pending.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        for state in inner.prefixes.values_mut() {
            if state.keys.is_empty() {
                continue;
            }
            let keys = std::mem::take(&mut state.keys);
            let all = encode_keys(keys.keys().map(|k| k.as_ref()));
            for id in &state.clients {
                let Some(m) = inner.members.get(id) else {
                    continue;
                };
                let flags = m.info.tracking.load(Ordering::Relaxed);
                let payload = if flags & flag::NOLOOP != 0 {
                    let mine: Vec<&[u8]> = keys
                        .iter()
                        .filter(|(_, w)| **w != *id)
                        .map(|(k, _)| k.as_ref())
                        .collect();
                    if mine.is_empty() {
                        continue;
                    }
                    encode_keys(mine.into_iter())
                } else {
                    all.clone()
                };
                out.push(Inner::notice(m, Payload::Keys(payload)));
            }
        }
    }
}

/// What a notice becomes: a message for one connection, with its bytes.
#[derive(Debug)]
pub struct Message {
    /// The receiving client.
    pub info: Arc<ClientInfo>,
    /// The frame, already encoded.
    pub frame: Bytes,
}

/// Resolves a notice to the message Redis would send (`sendTrackingMessage`):
/// to the tracking client (RESP3 push), or to its redirection target (RESP3
/// push, or in RESP2 a `message` on `__redis__:invalidate` if it is
/// subscribed), or nothing (RESP2 without a usable target). A target that is
/// gone marks the client's redirection broken and, in RESP3, tells it so.
pub fn resolve(
    clients: &dashmap::DashMap<u64, Arc<ClientInfo>>,
    notice: Notice,
) -> Option<Message> {
    let Notice { info, payload } = notice;
    let null: &[u8] = if info.resp.load(Ordering::Relaxed) >= 3 {
        b"_\r\n"
    } else {
        b"$-1\r\n"
    };
    let redirect = info.tracking_redirect.load(Ordering::Relaxed);
    let (target, redirected) = if redirect != 0 {
        match clients.get(&redirect).map(|c| c.value().clone()) {
            Some(c) => (c, true),
            None => {
                info.tracking
                    .fetch_or(flag::BROKEN_REDIR, Ordering::Relaxed);
                if info.resp.load(Ordering::Relaxed) < 3 {
                    return None;
                }
                let mut f = BytesMut::new();
                f.extend_from_slice(b">2\r\n$21\r\ntracking-redir-broken\r\n:");
                f.extend_from_slice(itoa::Buffer::new().format(redirect).as_bytes());
                f.extend_from_slice(b"\r\n");
                return Some(Message {
                    info,
                    frame: f.freeze(),
                });
            }
        }
    } else {
        (info, false)
    };
    let mut f = BytesMut::new();
    if target.resp.load(Ordering::Relaxed) >= 3 {
        f.extend_from_slice(b">2\r\n$10\r\ninvalidate\r\n");
    } else if redirected && target.is_subscriber() {
        f.extend_from_slice(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n");
    } else {
        return None;
    }
    match payload {
        Payload::Keys(keys) => f.extend_from_slice(&keys),
        Payload::All => f.extend_from_slice(null),
    }
    Some(Message {
        info: target,
        frame: f.freeze(),
    })
}

/// Sends (or, for a transaction or script, keeps until it ends) what
/// `notices` say, each through its receiver's push queue, counted against the
/// receiver's `client-output-buffer-limit` class.
pub fn deliver(shared: &Shared, session: Option<&mut Session>, defer: bool, notices: Vec<Notice>) {
    if notices.is_empty() {
        return;
    }
    let limits = shared.config.read().output_limits;
    let now = shared.clock.now_ms();
    let mut session = session;
    for n in notices {
        let Some(m) = resolve(&shared.clients, n) else {
            continue;
        };
        let size = m.frame.len();
        let to = Subscriber { info: m.info };
        let limit = if to.info.is_subscriber() {
            limits.pubsub
        } else {
            limits.normal
        };
        let d = Delivery::new(to, m.frame, size);
        match session.as_deref_mut() {
            // Counted against the limit now, sent when the EXEC or script ends.
            Some(s) if defer => s.pending_messages.extend(d.hold(&limit, now)),
            _ => d.send(&limit, now),
        }
    }
}

/// Whether `cmd`, run by `session`, has its keys remembered: a default-mode
/// tracking client (OPTIN with CLIENT CACHING YES, OPTOUT without CLIENT
/// CACHING NO) running a `readonly` command that is not pub/sub and not a
/// read-only script (whose own commands count instead).
pub fn tracks(session: &Session, spec: &CommandSpec) -> bool {
    let f = session.tracking;
    if f & flag::ON == 0 || f & flag::BCAST != 0 {
        return false;
    }
    if (f & flag::OPTIN != 0 && !session.caching) || (f & flag::OPTOUT != 0 && session.caching) {
        return false;
    }
    spec.has(cmdflag::READONLY)
        && !spec.has(cmdflag::PUBSUB)
        && !matches!(spec.name, "eval_ro" | "evalsha_ro" | "fcall_ro")
}

/// Registers the keys of a command about to run for its client; returns the
/// keys and which of them were new to it.
pub fn before_read(
    shared: &Shared,
    session: &mut Session,
    spec: &CommandSpec,
    args: &[Bytes],
) -> (Vec<Bytes>, Vec<Bytes>) {
    let keys: Vec<Bytes> = spec
        .keys_of(args)
        .iter()
        .filter_map(|k| args.get(k.pos).cloned())
        .collect();
    if keys.is_empty() {
        return (keys, Vec::new());
    }
    // The limit is applied once the command has run, as Redis does.
    let mut out = Vec::new();
    let fresh = shared
        .tracking
        .remember(session.info.id, &keys, 0, &mut out);
    deliver(shared, Some(session), false, out);
    (keys, fresh)
}

/// After a command ran: tells the clients tracking what it modified (its
/// own client not of keys it only started tracking now) and registers the
/// keys it read again (a write or expiry in between dropped them).
/// `defer`: inside a transaction or script, the messages wait for its end.
pub fn after_command(
    shared: &Shared,
    session: &mut Session,
    defer: bool,
    keys: &[Bytes],
    fresh: &[Bytes],
) {
    let mut out = Vec::new();
    let modified = take_modified();
    if !modified.is_empty() {
        shared
            .tracking
            .process(modified, Some(session.info.id), fresh, &mut out);
    }
    if !keys.is_empty() {
        let max = shared.config.read().tracking_table_max_keys;
        shared
            .tracking
            .remember(session.info.id, keys, max, &mut out);
    }
    deliver(shared, Some(session), defer, out);
}

/// After work outside any client's command (expiry, serving blocked
/// clients, a disconnect's clean-up): tells the clients tracking what it
/// modified.
pub fn after_background(shared: &Shared) {
    if !crate::keyspace::has_modified() {
        return;
    }
    let mut out = Vec::new();
    shared
        .tracking
        .process(take_modified(), None, &[], &mut out);
    deliver(shared, None, false, out);
}

/// Sends the BCAST messages collected, at the end of a batch of commands.
pub fn broadcast(shared: &Shared) {
    if shared.tracking.has_broadcast() {
        let mut out = Vec::new();
        shared.tracking.broadcast(&mut out);
        deliver(shared, None, false, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: u64) -> Arc<ClientInfo> {
        Arc::new(ClientInfo::new(id, String::new(), String::new(), -1, 0))
    }

    #[test]
    fn a_read_key_is_invalidated_once_and_forgotten() {
        let hook = Arc::new(KeyHook::default());
        let t = Tracking::new(hook.clone());
        let a = client(1);
        a.resp.store(3, Ordering::Relaxed);
        assert!(!hook.is_active());
        t.enable(&a, flag::ON, 0, &[]);
        assert!(hook.is_active());
        let mut out = Vec::new();
        let fresh = t.remember(1, &[Bytes::from("k")], 0, &mut out);
        assert_eq!(fresh.len(), 1);
        assert_eq!(t.totals(), (1, 1, 0));
        t.process(
            vec![Modified::Key(Bytes::from("k"))],
            Some(2),
            &[],
            &mut out,
        );
        assert_eq!(out.len(), 1);
        let clients = dashmap::DashMap::new();
        let m = resolve(&clients, out.pop().unwrap()).unwrap();
        assert_eq!(
            &m.frame[..],
            b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n"
        );
        assert_eq!(t.totals(), (0, 0, 0));
        t.process(
            vec![Modified::Key(Bytes::from("k"))],
            Some(2),
            &[],
            &mut out,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn the_table_is_bounded_by_max_keys() {
        let t = Tracking::new(Arc::new(KeyHook::default()));
        let a = client(1);
        t.enable(&a, flag::ON, 0, &[]);
        let mut out = Vec::new();
        for i in 0..1000 {
            t.remember(1, &[Bytes::from(format!("k{i}"))], 10, &mut out);
            assert!(t.totals().0 <= 10);
        }
        assert_eq!(out.len(), 990);
    }

    #[test]
    fn overlapping_prefixes_are_found_in_redis_order() {
        let t = Tracking::new(Arc::new(KeyHook::default()));
        let p = |v: &[&str]| {
            v.iter()
                .map(|s| Bytes::from(s.to_string()))
                .collect::<Vec<_>>()
        };
        assert!(matches!(
            t.check_prefixes(1, &p(&["a", "b", "c"])),
            Ok(None)
        ));
        assert!(t.check_prefixes(1, &p(&["ab", "a"])).is_err());
        match t.check_prefixes(1, &p(&["x", "b", "bc"])) {
            Ok(Some(e)) => {
                assert!(e.starts_with("Prefix 'b' overlaps with another provided prefix 'bc'"))
            }
            other => panic!("{other:?}"),
        }
    }
}
