//! SORT and SORT_RO: the elements of a list, set or sorted set, sorted as
//! numbers or (ALPHA) as strings, by themselves or by the values other keys
//! hold (BY `weight_*`, BY `h_*->field`), a LIMIT window of them, each given as
//! itself or as values looked up the same way (GET `#`, GET `data_*`), replied
//! or stored as a list (STORE).
//!
//! The keys a BY or GET pattern names are known only once the elements are
//! read, so such a SORT locks every shard of the database (in order, as any
//! multi-key command locks, so it cannot deadlock); without patterns it locks
//! only the sorted key and the STORE key.

use std::cmp::Ordering;

use bytes::Bytes;

use super::{flag, int_arg, is, parse_float, CallMode, CommandSpec, Ctx, KeyRef, KeySpec};
use super::{CommandResult, GetKeys};
use crate::error::CommandError;
use crate::keyspace::{CompactBytes, Entry, ShardSet, Value, WrongType};
use crate::notify::{self, Notifier};
use crate::reply::Reply;
use crate::types::geo::partial_sort;
use crate::types::hash::Hash;
use crate::types::list::{End, List};
use crate::types::set::Set;
use crate::types::zset::ZSet;

const BY_GET_NOTE: &str = "For the optional BY/GET keyword. It is marked 'unknown' because the key names derive from the content of the key we sort";
const STORE_NOTE: &str = "For the optional STORE keyword. It is marked 'unknown' because the keyword can appear anywhere in the argument array";

/// The sort family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("sort", -2, flag::WRITE | flag::DENYOOM, sort)
        .keys(1, 1, 1)
        .acl(&[
            "@write",
            "@set",
            "@sortedset",
            "@list",
            "@slow",
            "@dangerous",
        ])
        .key_specs(&[
            KeySpec::one(1, &["RO", "access"]),
            KeySpec::unknown(&["RO", "access"], BY_GET_NOTE),
            KeySpec::unknown(&["OW", "update"], STORE_NOTE),
        ])
        .getkeys(sort_keys as GetKeys)
        .doc(
            "generic",
            "1.0.0",
            "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.",
        ),
    CommandSpec::new("sort_ro", -2, flag::READONLY, sort_ro)
        .keys(1, 1, 1)
        .acl(&[
            "@read",
            "@set",
            "@sortedset",
            "@list",
            "@slow",
            "@dangerous",
        ])
        .key_specs(&[
            KeySpec::one(1, &["RO", "access"]),
            KeySpec::unknown(&["RO", "access"], BY_GET_NOTE),
        ])
        .getkeys(sort_ro_keys as GetKeys)
        .doc(
            "generic",
            "7.0.0",
            "Returns the sorted elements of a list, a set, or a sorted set.",
        ),
];

/// SORT's keys as Redis's `sortGetKeys` finds them: the sorted key, and the
/// key after the last STORE (the options' own arguments are skipped).
fn sort_keys(args: &[Bytes]) -> Vec<KeyRef> {
    let mut keys = vec![KeyRef {
        pos: 1,
        flags: &["RO", "access"],
    }];
    let mut store = None;
    let mut i = 2;
    while i < args.len() {
        let arg = &args[i];
        if is(arg, "limit") {
            i += 2;
        } else if is(arg, "get") || is(arg, "by") {
            i += 1;
        } else if is(arg, "store") && i + 1 < args.len() {
            store = Some(i + 1);
        }
        i += 1;
    }
    if let Some(pos) = store {
        keys.push(KeyRef {
            pos,
            flags: &["OW", "update"],
        });
    }
    keys
}

/// SORT_RO's one key.
fn sort_ro_keys(args: &[Bytes]) -> Vec<KeyRef> {
    if args.len() > 1 {
        vec![KeyRef {
            pos: 1,
            flags: &["RO", "access"],
        }]
    } else {
        Vec::new()
    }
}

fn sort(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    sort_generic(ctx, args, false)
}

fn sort_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    sort_generic(ctx, args, true)
}

/// SORT's options, read in order as Redis reads them: a later ASC/DESC, LIMIT,
/// BY or STORE wins; GETs accumulate.
#[derive(Debug, Default)]
struct Options {
    desc: bool,
    alpha: bool,
    /// LIMIT offset count; (0, -1) when absent.
    offset: i64,
    count: i64,
    store: Option<Bytes>,
    by: Option<Bytes>,
    /// A BY pattern without `*`: the elements keep their own order.
    dont_sort: bool,
    gets: Vec<Bytes>,
}

impl Options {
    /// `full_access`: whether the user may read every key (BY and GET
    /// patterns need it, as in Redis).
    fn read(args: &[Bytes], readonly: bool, full_access: bool) -> Result<Options, CommandError> {
        let mut o = Options {
            count: -1,
            ..Options::default()
        };
        let mut j = 2;
        while j < args.len() {
            let arg = &args[j];
            let left = args.len() - j - 1;
            if is(arg, "asc") {
                o.desc = false;
            } else if is(arg, "desc") {
                o.desc = true;
            } else if is(arg, "alpha") {
                o.alpha = true;
            } else if is(arg, "limit") && left >= 2 {
                o.offset = int_arg(&args[j + 1])?;
                o.count = int_arg(&args[j + 2])?;
                j += 2;
            } else if !readonly && is(arg, "store") && left >= 1 {
                o.store = Some(args[j + 1].clone());
                j += 1;
            } else if is(arg, "by") && left >= 1 {
                let pattern = &args[j + 1];
                if !pattern.contains(&b'*') {
                    o.dont_sort = true;
                } else if !full_access {
                    return Err(CommandError::err(
                        "BY option of SORT denied due to insufficient ACL permissions.",
                    ));
                }
                o.by = Some(pattern.clone());
                j += 1;
            } else if is(arg, "get") && left >= 1 {
                if !full_access {
                    return Err(CommandError::err(
                        "GET option of SORT denied due to insufficient ACL permissions.",
                    ));
                }
                o.gets.push(args[j + 1].clone());
                j += 1;
            } else {
                return Err(CommandError::Syntax);
            }
            j += 1;
        }
        Ok(o)
    }

    /// Whether elements are looked up in other keys (a BY or GET pattern with
    /// `*`): those keys may be anywhere in the database.
    fn looks_up(&self) -> bool {
        let by = !self.dont_sort && self.by.is_some();
        by || self.gets.iter().any(|g| g.contains(&b'*'))
    }
}

/// The window of `len` sorted elements LIMIT selects, clamped as Redis clamps
/// it: `(start, end)`, inclusive, empty when `end < start`.
fn window(offset: i64, count: i64, len: usize) -> (i64, i64) {
    let n = i64::try_from(len).unwrap_or(i64::MAX);
    let mut start = offset.max(0).min(n);
    let count = count.max(-1).min(n);
    let mut end = if count < 0 { n - 1 } else { start + count - 1 };
    if start >= n {
        start = n - 1;
        end = n - 2;
    }
    (start, end.min(n - 1))
}

/// The elements at positions `start..=end` of `all` (none when `end < start`).
fn keep_window(mut all: Vec<Bytes>, start: i64, end: i64) -> Vec<Bytes> {
    let (Ok(start), Ok(end)) = (usize::try_from(start), usize::try_from(end)) else {
        return Vec::new();
    };
    if end < start {
        return Vec::new();
    }
    all.truncate(end.saturating_add(1));
    all.drain(..start.min(all.len()));
    all
}

/// A number as SORT reads one with C's `strtod`: an empty string (or one that
/// ends at a NUL at once) is 0, leading white space is skipped, anything left
/// after the number, NaN, or a result out of range (overflowing to infinity,
/// or underflowing to zero or a subnormal) is refused.
fn sort_score(bytes: &[u8]) -> Option<f64> {
    let bytes = bytes.split(|b| *b == 0).next().unwrap_or_default();
    if bytes.is_empty() {
        return Some(0.0);
    }
    let text = bytes.trim_ascii_start();
    let v = parse_float(text)?;
    let lower = text.to_ascii_lowercase();
    let spelled_infinite = lower.windows(3).any(|w| w == b"inf");
    if v.is_infinite() && !spelled_infinite {
        return None;
    }
    if v.is_subnormal() || (v == 0.0 && has_nonzero_mantissa(&lower)) {
        return None;
    }
    Some(v)
}

/// Whether the digits of a number's mantissa (before `e`, or `p` in
/// hexadecimal) include one that is not zero.
fn has_nonzero_mantissa(lower: &[u8]) -> bool {
    let unsigned = lower.strip_prefix(b"-").or(lower.strip_prefix(b"+"));
    let unsigned = unsigned.unwrap_or(lower);
    match unsigned.strip_prefix(b"0x") {
        Some(hex) => hex
            .iter()
            .take_while(|c| **c != b'p')
            .any(|c| c.is_ascii_hexdigit() && *c != b'0'),
        None => unsigned
            .iter()
            .take_while(|c| **c != b'e')
            .any(|c| (b'1'..=b'9').contains(c)),
    }
}

/// What the key to sort holds, read through the locked shards.
enum Source<'a> {
    List(&'a List),
    Set(&'a Set),
    ZSet(&'a ZSet),
    Missing,
}

fn source<'a>(shards: &'a ShardSet<'_>, key: &[u8], now: u64) -> Result<Source<'a>, WrongType> {
    if let Ok(found) = shards.view::<List>(key, now) {
        return Ok(found.map_or(Source::Missing, Source::List));
    }
    if let Ok(Some(s)) = shards.view::<Set>(key, now) {
        return Ok(Source::Set(s));
    }
    match shards.view::<ZSet>(key, now)? {
        Some(z) => Ok(Source::ZSet(z)),
        None => Ok(Source::Missing),
    }
}

impl Source<'_> {
    fn len(&self) -> usize {
        match self {
            Source::List(l) => l.len(),
            Source::Set(s) => s.len(),
            Source::ZSet(z) => z.len(),
            Source::Missing => 0,
        }
    }

    /// Every element, in the value's own order.
    fn all(&self) -> Vec<Bytes> {
        match self {
            Source::List(l) => l.iter().map(Bytes::copy_from_slice).collect(),
            Source::Set(s) => s
                .iter()
                .map(|m| m.with_bytes(Bytes::copy_from_slice))
                .collect(),
            Source::ZSet(z) => z.iter().map(|(m, _)| Bytes::copy_from_slice(m)).collect(),
            Source::Missing => Vec::new(),
        }
    }

    /// The elements at positions `start..=end` of the value's own order
    /// (reversed with `desc` for a list or sorted set, as Redis does when
    /// nothing is sorted; a set has no order to reverse).
    fn window(&self, start: i64, end: i64, desc: bool) -> Vec<Bytes> {
        if let Source::Set(_) = self {
            return keep_window(self.all(), start, end);
        }
        let (Ok(start), Ok(end)) = (usize::try_from(start), usize::try_from(end)) else {
            return Vec::new();
        };
        if end < start {
            return Vec::new();
        }
        let take = end - start + 1;
        match self {
            Source::List(l) if desc => l
                .iter()
                .rev()
                .skip(start)
                .take(take)
                .map(Bytes::copy_from_slice)
                .collect(),
            Source::List(l) => l
                .iter()
                .skip(start)
                .take(take)
                .map(Bytes::copy_from_slice)
                .collect(),
            Source::ZSet(z) => {
                let len = z.len();
                (start..=end)
                    .filter_map(|i| {
                        if desc {
                            len.checked_sub(i + 1)
                        } else {
                            Some(i)
                        }
                    })
                    .filter_map(|rank| z.get(rank))
                    .map(|(m, _)| Bytes::copy_from_slice(m))
                    .collect()
            }
            Source::Set(_) | Source::Missing => Vec::new(),
        }
    }
}

/// Redis's `lookupKeyByPattern`: `#` is the element itself; otherwise the
/// first `*` of `pattern` is replaced by the element and the key read as a
/// string, or, when `->field` follows the `*`, the field read from the hash
/// at that key. A pattern without `*`, a missing key or another type: `None`.
/// Where a BY or GET lookup of a missing key raises `keymiss` (Redis looks
/// pattern keys up with its notifying read lookup).
#[derive(Clone, Copy)]
struct Misses<'a> {
    notifier: &'a Notifier,
    db: usize,
}

impl Misses<'_> {
    fn of<'a>(ctx: &Ctx<'a>) -> Misses<'a> {
        Misses {
            notifier: ctx.shared.keyspace.notifier(),
            db: ctx.session.db,
        }
    }

    fn missing(self, key: &[u8]) {
        self.notifier.log(notify::KEY_MISS, "keymiss", self.db, key);
    }
}

fn lookup(
    shards: &ShardSet<'_>,
    pattern: &[u8],
    element: &Bytes,
    now: u64,
    misses: Misses<'_>,
) -> Option<Bytes> {
    if pattern == b"#" {
        return Some(element.clone());
    }
    let star = pattern.iter().position(|c| *c == b'*')?;
    let after = &pattern[star + 1..];
    let arrow = after
        .windows(2)
        .position(|w| w == b"->")
        .filter(|at| at + 2 < after.len());
    let (postfix, field) = match arrow {
        Some(at) => (&after[..at], Some(&after[at + 2..])),
        None => (after, None),
    };
    let mut key = Vec::with_capacity(star + element.len() + postfix.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(postfix);
    // A key of another type reads as nothing; only a missing one is a miss.
    let found = match field {
        Some(field) => shards
            .view::<Hash>(&key, now)
            .map(|h| h.map(|h| h.get(field).map(Bytes::copy_from_slice))),
        None => shards
            .view::<CompactBytes>(&key, now)
            .map(|v| v.map(|v| Some(v.to_bytes()))),
    };
    match found {
        Ok(Some(value)) => value,
        Ok(None) => {
            misses.missing(&key);
            None
        }
        Err(_) => None,
    }
}

/// One element with what it is sorted by.
struct Item {
    element: Bytes,
    score: f64,
    /// ALPHA BY: the looked-up value; `None` sorts first.
    by: Option<Bytes>,
}

/// Sorts `elements` as Redis's `sortCompare` orders them: numerically (equal
/// scores by the elements' bytes), or ALPHA by the elements or their BY
/// values (missing ones first); DESC reverses. The sort is stable, as glibc's
/// `qsort` is for a vector that fits in memory, except that with BY and a LIMIT
/// window Redis's partial quicksort sorts just the `window`. `Err` when a score
/// is not a number.
fn sort_items(
    shards: &ShardSet<'_>,
    elements: Vec<Bytes>,
    o: &Options,
    window: (i64, i64),
    now: u64,
    misses: Misses<'_>,
) -> Result<Vec<Bytes>, CommandError> {
    let mut bad_score = false;
    let mut items: Vec<Item> = elements
        .into_iter()
        .map(|element| {
            let by =
                o.by.as_ref()
                    .map(|p| lookup(shards, p, &element, now, misses));
            let mut item = Item {
                element,
                score: 0.0,
                by: None,
            };
            if o.alpha {
                item.by = by.flatten();
            } else {
                let value = match &by {
                    Some(found) => found.as_ref(),
                    None => Some(&item.element),
                };
                if let Some(v) = value {
                    match sort_score(v) {
                        Some(score) => item.score = score,
                        None => bad_score = true,
                    }
                }
            }
            item
        })
        .collect();
    if bad_score {
        return Err(CommandError::err(
            "One or more scores can't be converted into double",
        ));
    }
    let by_pattern = o.by.is_some();
    let cmp = |a: &Item, b: &Item| {
        let cmp = if !o.alpha {
            a.score
                .partial_cmp(&b.score)
                .unwrap_or(Ordering::Equal)
                .then_with(|| a.element.cmp(&b.element))
        } else if by_pattern {
            a.by.cmp(&b.by)
        } else {
            a.element.cmp(&b.element)
        };
        if o.desc {
            cmp.reverse()
        } else {
            cmp
        }
    };
    let (start, end) = window;
    let whole = start == 0 && end == i64::try_from(items.len()).unwrap_or(i64::MAX) - 1;
    match (usize::try_from(start), usize::try_from(end)) {
        // Redis sorts only the LIMIT window with BY, by its partial quicksort,
        // which orders equal BY values its own way.
        (Ok(lo), Ok(hi)) if by_pattern && !whole && lo <= hi && hi < items.len() => {
            partial_sort(&mut items, lo, hi, cmp);
        }
        _ => items.sort_by(cmp),
    }
    Ok(items.into_iter().map(|i| i.element).collect())
}

/// SORT and SORT_RO (`readonly`: no STORE).
fn sort_generic(ctx: &mut Ctx<'_>, args: &[Bytes], readonly: bool) -> CommandResult {
    let full_access = ctx.session.user.is_unrestricted()
        || ctx
            .shared
            .commands
            .lookup(args)
            .is_some_and(|cmd| ctx.session.user.rules().reads_every_key(cmd, args));
    let mut o = Options::read(args, readonly, full_access)?;
    let key = &args[1];
    let now = ctx.now;
    let db = ctx.db();
    let mut shards = if o.looks_up() {
        db.lock_every()
    } else {
        match &o.store {
            Some(store) => db.lock_keys(&[key.as_ref(), store.as_ref()]),
            None => db.lock_keys(&[key]),
        }
    };
    // Redis converts a small sorted set to its skiplist encoding for SORT and
    // leaves it so (OBJECT ENCODING shows it), without telling watchers.
    if let Ok(Some(z)) = shards.shard(key).write_quiet::<ZSet>(key, now) {
        z.to_skiplist();
    }
    let src = source(&shards, key, now)?;
    // A set has no order of its own that replicas or scripts would agree on:
    // without sorting, STORE and scripts get its members sorted as strings.
    if o.dont_sort
        && matches!(src, Source::Set(_))
        && (o.store.is_some() || ctx.mode == CallMode::Script)
    {
        o.dont_sort = false;
        o.alpha = true;
        o.by = None;
    }
    let (start, end) = window(o.offset, o.count, src.len());
    let selected = if o.dont_sort {
        src.window(start, end, o.desc)
    } else {
        keep_window(
            sort_items(&shards, src.all(), &o, (start, end), now, Misses::of(ctx))?,
            start,
            end,
        )
    };
    finish(ctx, &mut shards, &o, selected, now)
}

/// Replies with (or stores) the selected elements, each as itself or as its
/// GET lookups.
fn finish(
    ctx: &mut Ctx<'_>,
    shards: &mut ShardSet<'_>,
    o: &Options,
    selected: Vec<Bytes>,
    now: u64,
) -> CommandResult {
    let mut out: Vec<Option<Bytes>> =
        Vec::with_capacity(selected.len().saturating_mul(o.gets.len().max(1)));
    for element in selected {
        if o.gets.is_empty() {
            out.push(Some(element));
        } else {
            for pattern in &o.gets {
                out.push(lookup(shards, pattern, &element, now, Misses::of(ctx)));
            }
        }
    }
    let Some(store) = &o.store else {
        return Ok(Reply::Array(
            out.into_iter().map(Reply::bulk_or_nil).collect(),
        ));
    };
    let stored = out.len();
    let shard = shards.shard(store);
    if stored == 0 {
        if shard.remove(store, now).is_some() {
            ctx.notify(notify::GENERIC, "del", store);
        }
    } else {
        let mut result = List::default();
        let fill = ctx.shared.encodings.list_fill();
        let values: Vec<Bytes> = out.into_iter().map(Option::unwrap_or_default).collect();
        result.push_all(End::Right, values.iter().map(|v| &v[..]), fill);
        shard.insert(store, Entry::persistent(Value::List(Box::new(result))), now);
        // A client blocked on the STORE key (BLPOP) is served.
        ctx.shared.blocked.signal(ctx.session.db, store);
        ctx.notify(notify::LIST, "sortstore", store);
    }
    Ok(Reply::Int(i64::try_from(stored).unwrap_or(i64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_window_is_clamped_as_redis_clamps_it() {
        assert_eq!(window(0, -1, 5), (0, 4));
        assert_eq!(window(1, 2, 5), (1, 2));
        assert_eq!(window(-10, 2, 5), (0, 1));
        assert_eq!(window(3, 100, 5), (3, 4));
        assert_eq!(window(5, 1, 5), (4, 3));
        assert_eq!(window(i64::MAX, i64::MAX, 5), (4, 3));
        assert_eq!(window(i64::MIN, i64::MIN, 5), (0, 4));
        assert_eq!(window(0, 0, 5), (0, -1));
        assert_eq!(window(0, -1, 0), (-1, -2));
    }

    #[test]
    fn scores_are_read_as_strtod_reads_them() {
        assert_eq!(sort_score(b""), Some(0.0));
        assert_eq!(sort_score(b" 3"), Some(3.0));
        assert_eq!(sort_score(b"3 "), None);
        assert_eq!(sort_score(b"   "), None);
        assert_eq!(sort_score(b"0x10"), Some(16.0));
        assert_eq!(sort_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(sort_score(b"nan"), None);
        assert_eq!(sort_score(b"1e400"), None);
        assert_eq!(sort_score(b"1e-400"), None);
        assert_eq!(sort_score(b"4e-320"), None);
        assert_eq!(sort_score(b"0e-999"), Some(0.0));
        assert_eq!(sort_score(b"-0.0"), Some(0.0));
        assert_eq!(sort_score(b"12\0junk"), Some(12.0));
        assert_eq!(sort_score(b"abc"), None);
    }

    fn words(w: &[&str]) -> Vec<Bytes> {
        w.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn store_key_is_found_past_the_options_arguments() {
        let positions =
            |w: &[&str]| -> Vec<usize> { sort_keys(&words(w)).iter().map(|k| k.pos).collect() };
        assert_eq!(positions(&["sort", "k"]), vec![1]);
        assert_eq!(positions(&["sort", "k", "store", "d"]), vec![1, 3]);
        assert_eq!(
            positions(&["sort", "k", "get", "store", "store", "d"]),
            vec![1, 5]
        );
        assert_eq!(
            positions(&["sort", "k", "limit", "store", "store"]),
            vec![1]
        );
        assert_eq!(
            positions(&["sort", "k", "store", "a", "store", "b"]),
            vec![1, 5]
        );
        assert_eq!(positions(&["sort", "k", "store"]), vec![1]);
    }
}
