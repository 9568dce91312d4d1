//! Generic key commands: DEL, UNLINK, EXISTS, TYPE, KEYS, SCAN, RANDOMKEY, TOUCH,
//! RENAME, RENAMENX, COPY, MOVE, and the TTL family (EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT,
//! TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST).

use std::hash::Hasher;

use bytes::Bytes;

use super::args::Args;
use super::CommandResult;
use super::{flag, int_arg, is, CommandSpec, Ctx, KeySpec};
use crate::error::CommandError;
use crate::keyspace::{Entry, SHARDS};
use crate::notify;
use crate::reply::Reply;

/// The keys family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("del", -2, flag::WRITE, del)
        .keys(1, -1, 1)
        .acl(&["@keyspace", "@write", "@slow"])
        .tips(&["request_policy:multi_shard", "response_policy:agg_sum"])
        .key_specs(&[KeySpec::range(1, -1, 1, &["RM", "delete"])])
        .doc("generic", "1.0.0", "Deletes one or more keys."),
    CommandSpec::new("unlink", -2, flag::WRITE | flag::FAST, del)
        .keys(1, -1, 1)
        .acl(&["@keyspace", "@write", "@fast"])
        .tips(&["request_policy:multi_shard", "response_policy:agg_sum"])
        .key_specs(&[KeySpec::range(1, -1, 1, &["RM", "delete"])])
        .doc("generic", "4.0.0", "Asynchronously deletes one or more keys."),
    CommandSpec::new("exists", -2, flag::READONLY | flag::FAST, exists)
        .keys(1, -1, 1)
        .acl(&["@keyspace", "@read", "@fast"])
        .tips(&["request_policy:multi_shard", "response_policy:agg_sum"])
        .key_specs(&[KeySpec::range(1, -1, 1, &["RO"])])
        .doc("generic", "1.0.0", "Determines whether one or more keys exist."),
    CommandSpec::new("touch", -2, flag::READONLY | flag::FAST, touch)
        .keys(1, -1, 1)
        .acl(&["@keyspace", "@read", "@fast"])
        .tips(&["request_policy:multi_shard", "response_policy:agg_sum"])
        .key_specs(&[KeySpec::range(1, -1, 1, &["RO"])])
        .doc("generic", "3.2.1", "Returns the number of existing keys out of those specified after updating the time they were last accessed."),
    CommandSpec::new("type", 2, flag::READONLY | flag::FAST, type_)
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@read", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RO"])])
        .doc("generic", "1.0.0", "Determines the type of value stored at a key."),
    CommandSpec::new("keys", 2, flag::READONLY, keys)
        .acl(&["@keyspace", "@read", "@slow", "@dangerous"])
        .tips(&["request_policy:all_shards", "nondeterministic_output_order"])
        .doc("generic", "1.0.0", "Returns all key names that match a pattern."),
    CommandSpec::new("scan", -2, flag::READONLY, scan)
        .acl(&["@keyspace", "@read", "@slow"])
        .tips(&["nondeterministic_output", "request_policy:special"])
        .doc("generic", "2.8.0", "Iterates over the key names in the database."),
    CommandSpec::new("randomkey", 1, flag::READONLY, randomkey)
        .acl(&["@keyspace", "@read", "@slow"])
        .tips(&["request_policy:all_shards", "nondeterministic_output"])
        .doc("generic", "1.0.0", "Returns a random key name from the database."),
    CommandSpec::new("rename", 3, flag::WRITE, rename)
        .keys(1, 2, 1)
        .acl(&["@keyspace", "@write", "@slow"])
        .key_specs(&[KeySpec::one(1, &["RW", "access", "delete"]), KeySpec::one(2, &["OW", "update"])])
        .doc("generic", "1.0.0", "Renames a key and overwrites the destination."),
    CommandSpec::new("renamenx", 3, flag::WRITE | flag::FAST, renamenx)
        .keys(1, 2, 1)
        .acl(&["@keyspace", "@write", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RW", "access", "delete"]), KeySpec::one(2, &["OW", "insert"])])
        .doc("generic", "1.0.0", "Renames a key only when the target key name doesn't exist."),
    CommandSpec::new("copy", -3, flag::WRITE | flag::DENYOOM, copy)
        .keys(1, 2, 1)
        .acl(&["@keyspace", "@write", "@slow"])
        .key_specs(&[KeySpec::one(1, &["RO", "access"]), KeySpec::one(2, &["OW", "update"])])
        .doc("generic", "6.2.0", "Copies the value of a key to a new key."),
    CommandSpec::new("move", 3, flag::WRITE | flag::FAST, move_)
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@write", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RW", "access", "update"])])
        .doc("generic", "1.0.0", "Moves a key to another database."),
    CommandSpec::new("expire", -3, flag::WRITE | flag::FAST, expire)
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@write", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RW", "update"])])
        .doc("generic", "1.0.0", "Sets the expiration time of a key in seconds."),
    CommandSpec::new("pexpire", -3, flag::WRITE | flag::FAST, pexpire)
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@write", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RW", "update"])])
        .doc("generic", "2.6.0", "Sets the expiration time of a key in milliseconds."),
    CommandSpec::new("expireat", -3, flag::WRITE | flag::FAST, expireat)
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@write", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RW", "update"])])
        .doc("generic", "1.2.0", "Sets the expiration time of a key to a Unix timestamp."),
    CommandSpec::new("pexpireat", -3, flag::WRITE | flag::FAST, pexpireat)
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@write", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RW", "update"])])
        .doc("generic", "2.6.0", "Sets the expiration time of a key to a Unix milliseconds timestamp."),
    CommandSpec::new("ttl", 2, flag::READONLY | flag::FAST, ttl)
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@read", "@fast"])
        .tips(&["nondeterministic_output"])
        .key_specs(&[KeySpec::one(1, &["RO", "access"])])
        .doc("generic", "1.0.0", "Returns the expiration time in seconds of a key."),
    CommandSpec::new("pttl", 2, flag::READONLY | flag::FAST, pttl)
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@read", "@fast"])
        .tips(&["nondeterministic_output"])
        .key_specs(&[KeySpec::one(1, &["RO", "access"])])
        .doc("generic", "2.6.0", "Returns the expiration time in milliseconds of a key."),
    CommandSpec::new("expiretime", 2, flag::READONLY | flag::FAST, expiretime)
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@read", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RO", "access"])])
        .doc("generic", "7.0.0", "Returns the expiration time of a key as a Unix timestamp."),
    CommandSpec::new("pexpiretime", 2, flag::READONLY | flag::FAST, pexpiretime)
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@read", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RO", "access"])])
        .doc("generic", "7.0.0", "Returns the expiration time of a key as a Unix milliseconds timestamp."),
    CommandSpec::new("persist", 2, flag::WRITE | flag::FAST, persist)
        .keys(1, 1, 1)
        .acl(&["@keyspace", "@write", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RW", "update"])])
        .doc("generic", "2.2.0", "Removes the expiration time of a key."),
];

fn del(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let keys = &args[1..];
    let now = ctx.now;
    let mut shards = ctx.db().lock_keys(keys);
    let mut removed = 0;
    for key in keys {
        if shards.shard(key).remove(key, now).is_some() {
            removed += 1;
            ctx.notify(notify::GENERIC, "del", key);
        }
    }
    Ok(Reply::Int(removed))
}

fn exists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let keys = &args[1..];
    let now = ctx.now;
    let mut shards = ctx.db().lock_keys(keys);
    let found = keys
        .iter()
        .filter(|k| shards.shard(k).contains(k, now))
        .count();
    Ok(Reply::Int(found as i64))
}

/// TOUCH: as EXISTS, but each key found counts as accessed (its idle time
/// restarts, its LFU counter may grow), as Redis's lookupKeyRead.
fn touch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let keys = &args[1..];
    let now = ctx.now;
    let mut shards = ctx.db().lock_keys(keys);
    let found = keys
        .iter()
        .filter(|k| shards.shard(k).get(k, now).is_some())
        .count();
    Ok(Reply::Int(found as i64))
}

fn type_(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let mut shard = ctx.db().lock(&args[1]);
    let name = shard
        .peek(&args[1], now)
        .map_or("none", |e| e.value.type_name());
    Ok(Reply::Status(Bytes::from_static(name.as_bytes())))
}

/// Redis's glob matching (`stringmatchlen`): `*`, `?`, `[abc]`, `[^a]`, `[a-z]`,
/// and `\` to escape.
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    // Where to resume after the last `*`: (pattern position, string position).
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, i));
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_match(pattern, p, s[i]) {
                        if matched {
                            p = next;
                            i += 1;
                            continue;
                        }
                    }
                }
                b'\\' if p + 1 < pattern.len() && pattern[p + 1] == s[i] => {
                    p += 2;
                    i += 1;
                    continue;
                }
                b'\\' if p + 1 < pattern.len() => {}
                c if c == s[i] => {
                    p += 1;
                    i += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

/// Matches `c` against the class starting at `pattern[p] == '['`; returns whether
/// it matched and where the pattern continues after the class.
fn class_match(pattern: &[u8], mut p: usize, c: u8) -> Option<(bool, usize)> {
    p += 1;
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut matched = false;
    loop {
        match pattern.get(p) {
            None => return Some((matched != negate, p)),
            Some(b']') => return Some((matched != negate, p + 1)),
            Some(b'\\') if p + 1 < pattern.len() => {
                matched |= pattern[p + 1] == c;
                p += 2;
            }
            Some(&lo)
                if pattern.get(p + 1) == Some(&b'-')
                    && p + 2 < pattern.len()
                    && pattern[p + 2] != b']' =>
            {
                let hi = pattern[p + 2];
                let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                matched |= (lo..=hi).contains(&c);
                p += 3;
            }
            Some(&x) => {
                matched |= x == c;
                p += 1;
            }
        }
    }
}

fn keys(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let pattern = &args[1];
    let all = pattern.as_ref() == b"*";
    let mut out = Vec::new();
    for shard in ctx.db().shards() {
        let shard = shard.lock();
        out.extend(
            shard
                .keys(ctx.now)
                .filter(|(k, _)| all || glob_match(pattern, k))
                .map(|(k, _)| Reply::Bulk(Bytes::copy_from_slice(k))),
        );
    }
    Ok(Reply::Array(out))
}

/// A fixed hash ordering keys within a shard for SCAN. Not the table's (random,
/// per-process) hash: a cursor must mean the same thing on every call.
fn scan_hash(key: &[u8]) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    h.write(key);
    h.finish() >> SCAN_SHARD_BITS
}

const SCAN_SHARD_BITS: u32 = 6;

/// A SCAN cursor as Redis reads it with `strtoul`: an unsigned 64-bit number with
/// an optional sign (`-1` is 2^64-1, a negative wraps), the empty string is 0; a
/// leading space, trailing junk or a value past 2^64-1 is refused.
pub fn scan_cursor(arg: &[u8]) -> Option<u64> {
    let (negative, digits) = match arg.first() {
        None => return Some(0),
        Some(b'-') => (true, &arg[1..]),
        Some(b'+') => (false, &arg[1..]),
        Some(_) => (false, arg),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if negative { n.wrapping_neg() } else { n })
}

/// The options of SCAN, HSCAN, SSCAN and ZSCAN, read by one loop as Redis's
/// `scanGenericCommand` reads them: MATCH, COUNT (at least 1), TYPE (SCAN only)
/// and NOVALUES (HSCAN only), each option word followed by its value.
#[derive(Debug)]
pub struct ScanOptions {
    /// MATCH pattern; `None` matches everything.
    pub pattern: Option<Bytes>,
    /// COUNT: about how many items one call visits.
    pub count: usize,
    /// TYPE, lower-cased.
    pub type_filter: Option<String>,
    /// NOVALUES: fields without their values.
    pub novalues: bool,
}

/// Which of the options only some SCAN commands take are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanOf {
    /// SCAN: TYPE.
    Keys,
    /// HSCAN: NOVALUES.
    Hash,
    /// SSCAN, ZSCAN: neither.
    Members,
}

impl ScanOptions {
    /// Reads the options in `opts` (what follows the cursor).
    pub fn read(opts: &[Bytes], of: ScanOf) -> Result<Self, CommandError> {
        let mut o = ScanOptions {
            pattern: None,
            count: 10,
            type_filter: None,
            novalues: false,
        };
        let mut i = 0;
        while i < opts.len() {
            let (word, value) = (&opts[i], opts.get(i + 1));
            match value {
                Some(v) if is(word, "count") => {
                    let n = int_arg(v)?;
                    if n < 1 {
                        return Err(CommandError::Syntax);
                    }
                    o.count = usize::try_from(n).unwrap_or(usize::MAX);
                }
                Some(v) if is(word, "match") => {
                    o.pattern = (v.as_ref() != b"*").then(|| v.clone());
                }
                Some(v) if of == ScanOf::Keys && is(word, "type") => {
                    o.type_filter = Some(String::from_utf8_lossy(v).to_ascii_lowercase());
                }
                _ if of == ScanOf::Hash && is(word, "novalues") => {
                    o.novalues = true;
                    i += 1;
                    continue;
                }
                _ => return Err(CommandError::Syntax),
            }
            i += 2;
        }
        Ok(o)
    }

    /// Whether `item` passes MATCH.
    pub fn matches(&self, item: &[u8]) -> bool {
        self.pattern.as_ref().is_none_or(|p| glob_match(p, item))
    }
}

/// The reply of every SCAN command: the next cursor, then the items.
pub fn scan_reply(cursor: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![
        Reply::bulk_string(cursor.to_string()),
        Reply::Array(items),
    ])
}

/// SCAN cursor MATCH pattern COUNT n TYPE t.
///
/// The cursor is `shard << 58 | h`: continue in `shard` with the keys whose fixed
/// 58-bit hash is at least `h`, in hash order, then on through the next shards.
/// Each call visits about COUNT keys in that order (never splitting keys of equal
/// hash between calls) and returns the cursor after the last one; 0 ends, so a
/// small database is returned whole by one call, as Redis does. A key present for the whole iteration is returned once however the
/// shards grow or shrink meanwhile, since its place in the order never changes.
fn scan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let cursor = scan_cursor(&args[1]).ok_or_else(|| CommandError::err("invalid cursor"))?;
    let options = ScanOptions::read(&args[2..], ScanOf::Keys)?;
    let count = options.count;
    let shift = 64 - SCAN_SHARD_BITS;
    let (mut shard_idx, mut from) = ((cursor >> shift) as usize, cursor & ((1 << shift) - 1));
    let mut out = Vec::new();
    let mut visited = 0;
    let mut next_cursor = 0;
    while shard_idx < SHARDS {
        let shard = ctx.db().shards()[shard_idx].lock();
        let mut batch: Vec<(u64, &[u8], &Entry)> = shard
            .keys(ctx.now)
            .map(|(k, e)| (scan_hash(k), k, e))
            .filter(|(h, _, _)| *h >= from)
            .collect();
        batch.sort_unstable_by_key(|(h, _, _)| *h);
        let mut end = batch.len().min(count - visited);
        while end > 0 && end < batch.len() && batch[end].0 == batch[end - 1].0 {
            end += 1;
        }
        for (_, k, e) in &batch[..end] {
            let type_ok = options
                .type_filter
                .as_deref()
                .is_none_or(|t| t == e.value.type_name());
            if type_ok && options.matches(k) {
                out.push(Reply::Bulk(Bytes::copy_from_slice(k)));
            }
        }
        visited += end;
        if end < batch.len() {
            next_cursor = ((shard_idx as u64) << shift) | (batch[end - 1].0 + 1);
            break;
        }
        shard_idx += 1;
        from = 0;
        if visited >= count {
            if shard_idx < SHARDS {
                next_cursor = (shard_idx as u64) << shift;
            }
            break;
        }
    }
    Ok(scan_reply(next_cursor, out))
}

fn randomkey(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    let shards = ctx.db().lock_all();
    let total: usize = shards.iter().map(|s| s.len()).sum();
    for _ in 0..100 {
        if total == 0 {
            break;
        }
        let mut r = fastrand::usize(..total);
        for s in &shards {
            if r < s.len() {
                if let Some((k, e)) = s.key_at(r) {
                    if !e.is_expired(ctx.now) {
                        return Ok(Reply::Bulk(Bytes::copy_from_slice(k)));
                    }
                }
                break;
            }
            r -= s.len();
        }
    }
    Ok(Reply::Nil)
}

/// RENAME and RENAMENX: moves the value and its TTL under both shards' locks.
fn rename_generic(ctx: &mut Ctx<'_>, args: &[Bytes], nx: bool) -> Result<bool, CommandError> {
    let (src, dst) = (&args[1], &args[2]);
    let now = ctx.now;
    let mut shards = ctx.db().lock_keys(&[src, dst]);
    let Some(movable) = shards.shard(src).peek(src, now).map(|e| e.value.can_move()) else {
        return Err(CommandError::NoSuchKey);
    };
    // A lock's SESSION holds, waiters and filed leases belong to its key:
    // renamed, they would point at nothing (as for MOVE).
    if !movable {
        return Err(not_supported_for_lock());
    }
    if src == dst {
        return Ok(!nx);
    }
    if nx && shards.shard(dst).contains(dst, now) {
        return Ok(false);
    }
    if let Some(entry) = shards.shard(src).remove(src, now) {
        if shards.shard(dst).insert(dst, entry, now).is_some() {
            // Redis deletes the old value and adds the renamed one: `new`.
            shards.shard(dst).log_event(notify::NEW, "new", dst);
        }
        // A value renamed onto a key a client waits on (BLPOP, ...) serves it.
        ctx.shared.blocked.signal(ctx.session.db, dst);
        drop(shards);
        ctx.notify(notify::GENERIC, "rename_from", src);
        ctx.notify(notify::GENERIC, "rename_to", dst);
    }
    Ok(true)
}

fn rename(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    rename_generic(ctx, args, false)?;
    Ok(Reply::OK)
}

fn renamenx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    Ok(Reply::Int(i64::from(rename_generic(ctx, args, true)?)))
}

/// A database number argument (SELECT, MOVE, COPY ... DB): an integer that
/// fits a C int, naming an existing database.
pub fn db_index(ctx: &Ctx<'_>, arg: &[u8]) -> Result<usize, CommandError> {
    let index = int_arg(arg)?;
    if i32::try_from(index).is_err() {
        return Err(CommandError::err(
            "value is out of range, value must between -2147483648 and 2147483647",
        ));
    }
    usize::try_from(index)
        .ok()
        .filter(|i| *i < ctx.shared.keyspace.dbs().len())
        .ok_or(CommandError::DbIndexOutOfRange)
}

/// What Redis answers when COPY meets a module value without a copy callback;
/// latchkey's locks answer it to COPY, MOVE, RENAME and RENAMENX (see
/// [`Value::duplicate`]).
///
/// [`Value::duplicate`]: crate::keyspace::Value::duplicate
fn not_supported_for_lock() -> CommandError {
    CommandError::err("not supported for this module key")
}

/// COPY source destination [DB n] [REPLACE]: a deep copy of the value (same
/// encoding) and its TTL at `destination`, in this database or database `n`.
/// Watchers of the destination are told; a client blocked on it is served.
/// A lock is not copied: its holders and fencing state belong to its key, and
/// two keys sharing them would grant the same ownership twice, so COPY of a
/// lock fails as Redis's COPY of a module value without a copy callback does.
fn copy(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let (src, dst) = (a.key()?, a.key()?);
    let (mut replace, mut dst_db) = (false, ctx.session.db);
    while let Some(opt) = a.next_arg() {
        if is(opt, "replace") {
            replace = true;
        } else if is(opt, "db") && !a.is_done() {
            dst_db = db_index(ctx, a.bytes()?)?;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let src_db = ctx.session.db;
    if src_db == dst_db && src == dst {
        return Err(CommandError::SameObject);
    }
    let now = ctx.now;
    let Some(mut pair) = ctx.shared.keyspace.lock_pair(src_db, src, dst_db, dst) else {
        return Err(CommandError::DbIndexOutOfRange);
    };
    if pair.a().get(src, now).is_none() {
        return Ok(Reply::Int(0));
    }
    if !replace && pair.b().contains(dst, now) {
        return Ok(Reply::Int(0));
    }
    let Some(entry) = pair.a().peek(src, now) else {
        return Ok(Reply::Int(0));
    };
    let expires = entry.expires_at();
    let value = entry.value.duplicate().ok_or_else(not_supported_for_lock)?;
    if pair
        .b()
        .insert(dst, Entry::new(value, expires), now)
        .is_some()
    {
        // Redis deletes the old value and adds the copy: a `new` key.
        pair.b().log_event(notify::NEW, "new", dst);
    }
    // A list or sorted set copied onto a key a client waits on serves it.
    ctx.shared.blocked.signal(dst_db, dst);
    drop(pair);
    ctx.notify_in(dst_db, notify::GENERIC, "copy_to", dst);
    Ok(Reply::Int(1))
}

/// MOVE key db: the value and its TTL go to database `db` unless the key
/// exists there. Watchers of the key in both databases are told; a client
/// blocked on it in `db` is served. A lock stays where it is (see
/// [`Value::can_move`]), refused with COPY's error.
///
/// [`Value::can_move`]: crate::keyspace::Value::can_move
fn move_(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let key = &args[1];
    let dst_db = db_index(ctx, &args[2])?;
    let src_db = ctx.session.db;
    if src_db == dst_db {
        return Err(CommandError::SameObject);
    }
    let now = ctx.now;
    let Some(mut pair) = ctx.shared.keyspace.lock_pair(src_db, key, dst_db, key) else {
        return Err(CommandError::DbIndexOutOfRange);
    };
    let Some(movable) = pair.a().get(key, now).map(|e| e.value.can_move()) else {
        return Ok(Reply::Int(0));
    };
    if pair.b().contains(key, now) {
        return Ok(Reply::Int(0));
    }
    if !movable {
        return Err(not_supported_for_lock());
    }
    if let Some(entry) = pair.a().remove(key, now) {
        pair.b().insert(key, entry, now);
        ctx.shared.blocked.signal(dst_db, key);
        drop(pair);
        ctx.notify(notify::GENERIC, "move_from", key);
        ctx.notify_in(dst_db, notify::GENERIC, "move_to", key);
    }
    Ok(Reply::Int(1))
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT with NX/XX/GT/LT: `mul` turns the argument
/// into ms; `absolute` for the *AT forms.
fn expire_generic(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    mul: i64,
    absolute: bool,
    cmd: &'static str,
) -> CommandResult {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &args[3..] {
        if is(opt, "nx") {
            nx = true;
        } else if is(opt, "xx") {
            xx = true;
        } else if is(opt, "gt") {
            gt = true;
        } else if is(opt, "lt") {
            lt = true;
        } else {
            return Err(CommandError::err(format!(
                "Unsupported option {}",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CommandError::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(CommandError::err(
            "GT and LT options at the same time are not compatible",
        ));
    }
    let v = int_arg(&args[2])?;
    let invalid = CommandError::InvalidExpire(cmd);
    let ms = v.checked_mul(mul).ok_or(invalid.clone())?;
    let when = if absolute {
        ms
    } else {
        ms.checked_add(ctx.now as i64).ok_or(invalid)?
    };
    let key = &args[1];
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(entry) = shard.get(key, now) else {
        return Ok(Reply::Int(0));
    };
    let current = entry.expires_at().map(|t| t as i64);
    let allowed = match current {
        None => !(xx || gt),
        Some(cur) => !nx && (!gt || when > cur) && (!lt || when < cur),
    };
    if !allowed {
        return Ok(Reply::Int(0));
    }
    if when <= now as i64 {
        shard.remove(key, now);
        drop(shard);
        ctx.propagate(|| vec![Bytes::from_static(b"DEL"), key.clone()]);
        ctx.notify(notify::GENERIC, "del", key);
    } else {
        shard.set_expiry(key, Some(when as u64), now);
        drop(shard);
        // The deadline, as Redis propagates every EXPIRE form.
        ctx.propagate(|| {
            vec![
                Bytes::from_static(b"PEXPIREAT"),
                key.clone(),
                Bytes::from(when.to_string()),
            ]
        });
        ctx.notify(notify::GENERIC, "expire", key);
    }
    Ok(Reply::Int(1))
}

fn expire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    expire_generic(ctx, args, 1000, false, "expire")
}

fn pexpire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    expire_generic(ctx, args, 1, false, "pexpire")
}

fn expireat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    expire_generic(ctx, args, 1000, true, "expireat")
}

fn pexpireat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    expire_generic(ctx, args, 1, true, "pexpireat")
}

/// What the TTL family reports about `key`: -2 for no key, -1 for no TTL, else
/// `f(deadline)`.
fn ttl_generic(ctx: &mut Ctx<'_>, key: &[u8], f: impl Fn(u64, u64) -> i64) -> CommandResult {
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    Ok(Reply::Int(match shard.peek(key, now) {
        None => -2,
        Some(e) => e.deadline().map_or(-1, |at| f(at, now)),
    }))
}

fn ttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    ttl_generic(ctx, &args[1], |at, now| {
        ((at.saturating_sub(now) + 500) / 1000) as i64
    })
}

fn pttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    ttl_generic(ctx, &args[1], |at, now| at.saturating_sub(now) as i64)
}

fn expiretime(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    ttl_generic(ctx, &args[1], |at, _| ((at + 500) / 1000) as i64)
}

fn pexpiretime(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    ttl_generic(ctx, &args[1], |at, _| at as i64)
}

fn persist(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let mut shard = ctx.db().lock(&args[1]);
    let had_ttl = shard
        .get(&args[1], now)
        .is_some_and(|e| e.expires_at().is_some());
    if had_ttl {
        shard.set_expiry(&args[1], None, now);
        drop(shard);
        ctx.notify(notify::GENERIC, "persist", &args[1]);
    }
    Ok(Reply::Int(i64::from(had_ttl)))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob_matches_like_redis() {
        for (p, s, want) in [
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            ("k\\*", "k*", true),
            ("k\\*", "kx", false),
            ("lock:*", "lock:a:b", true),
            ("*:b", "lock:a:b", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("", "", true),
            ("", "a", false),
        ] {
            assert_eq!(glob_match(p.as_bytes(), s.as_bytes()), want, "{p} ~ {s}");
        }
    }
}

#[cfg(test)]
mod scan_option_tests {
    use super::*;

    fn read(words: &[&str], of: ScanOf) -> Result<ScanOptions, CommandError> {
        let opts: Vec<Bytes> = words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        ScanOptions::read(&opts, of)
    }

    #[test]
    fn each_scan_takes_the_options_redis_gives_it() {
        let o = read(&["MATCH", "a*", "count", "3"], ScanOf::Members).unwrap();
        assert_eq!(
            (o.count, o.matches(b"ab"), o.matches(b"b")),
            (3, true, false)
        );
        assert!(read(&["MATCH", "*"], ScanOf::Members)
            .unwrap()
            .pattern
            .is_none());
        assert!(read(&["NOVALUES"], ScanOf::Hash).unwrap().novalues);
        assert_eq!(
            read(&["NOVALUES"], ScanOf::Members).err(),
            Some(CommandError::Syntax)
        );
        assert_eq!(
            read(&["TYPE", "hash"], ScanOf::Hash).err(),
            Some(CommandError::Syntax)
        );
        let t = read(&["TYPE", "HASH"], ScanOf::Keys).unwrap();
        assert_eq!(t.type_filter.as_deref(), Some("hash"));
        assert_eq!(
            read(&["COUNT", "0"], ScanOf::Keys).err(),
            Some(CommandError::Syntax)
        );
        assert_eq!(
            read(&["COUNT", "x"], ScanOf::Keys).err(),
            Some(CommandError::NotInteger)
        );
        assert_eq!(
            read(&["MATCH"], ScanOf::Keys).err(),
            Some(CommandError::Syntax)
        );
        let big = read(&["COUNT", "9223372036854775807"], ScanOf::Keys).unwrap();
        assert_eq!(big.count as u64, i64::MAX as u64);
    }
}
