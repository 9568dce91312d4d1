//! HyperLogLog commands: PFADD, PFCOUNT, PFMERGE, PFDEBUG and PFSELFTEST.
//!
//! A HyperLogLog is a string value in Redis's byte layout (`types/hll.rs`), so a
//! value copied from redis-server with GET/SET counts the same here. A command
//! that changes one writes a new copy ([`CompactBytes::raw_from_vec`]), except
//! PFADD on a dense value, which edits it in place ([`CompactBytes::edit`]). As in Redis, a value a PF command
//! has validated and may write (PFADD, PFCOUNT of one key, PFMERGE, PFDEBUG) is
//! a `raw` string afterwards for OBJECT ENCODING, even if nothing changed.

use std::borrow::Cow;

use bytes::Bytes;

use super::{flag, CommandResult, CommandSpec, Ctx, KeySpec};
use crate::error::CommandError;
use crate::keyspace::{CompactBytes, Entry, Value};
use crate::notify;
use crate::reply::Reply;
use crate::types::hll::{self, Encoding, HllError, SelfTestFailure, Union};

/// The hyperloglog family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("pfadd", -2, flag::WRITE | flag::DENYOOM | flag::FAST, pfadd)
        .keys(1, 1, 1)
        .acl(&["@write", "@hyperloglog", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RW", "insert"])])
        .doc("hyperloglog", "2.8.9", "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist."),
    CommandSpec::new("pfcount", -2, flag::READONLY, pfcount)
        .keys(1, -1, 1)
        .acl(&["@read", "@hyperloglog", "@slow"])
        .key_specs(&[KeySpec::range(1, -1, 1, &["RW", "access"]).notes("RW because it may change the internal representation of the key, and propagate to replicas")])
        .doc("hyperloglog", "2.8.9", "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s)."),
    CommandSpec::new("pfmerge", -2, flag::WRITE | flag::DENYOOM, pfmerge)
        .keys(1, -1, 1)
        .acl(&["@write", "@hyperloglog", "@slow"])
        .key_specs(&[
            KeySpec::one(1, &["RW", "access", "insert"]),
            KeySpec::range(2, -1, 1, &["RO", "access"]),
        ])
        .doc("hyperloglog", "2.8.9", "Merges one or more HyperLogLog values into a single key."),
    CommandSpec::new("pfdebug", 3, flag::WRITE | flag::DENYOOM | flag::ADMIN, pfdebug)
        .keys(2, 2, 1)
        .acl(&["@write", "@hyperloglog", "@admin", "@slow", "@dangerous"])
        .key_specs(&[KeySpec::one(2, &["RW", "access"])])
        .doc("hyperloglog", "2.8.9", "Internal commands for debugging HyperLogLog values."),
    CommandSpec::new("pfselftest", 1, flag::ADMIN, pfselftest)
        .acl(&["@hyperloglog", "@admin", "@slow", "@dangerous"])
        .doc("hyperloglog", "2.8.9", "An internal command for testing HyperLogLog values."),
];

/// Redis's replies for a value that is not, or no longer, a HyperLogLog.
fn hll_error(e: HllError) -> CommandError {
    match e {
        HllError::NotHll => {
            CommandError::raw("WRONGTYPE Key is not a valid HyperLogLog string value.")
        }
        HllError::Corrupt => CommandError::raw("INVALIDOBJ Corrupted HLL object detected"),
    }
}

/// Marks a validated value as Redis's `raw` string (its `dbUnshareStringValue`),
/// without changing its bytes.
fn unshare(value: &mut CompactBytes) {
    if !value.is_edited() {
        value.edit(|_| ());
    }
}

/// Replaces a value with new bytes, a `raw` string.
fn replace(value: &mut CompactBytes, bytes: Vec<u8>) {
    *value = CompactBytes::raw_from_vec(bytes);
}

fn sparse_max_bytes(ctx: &Ctx<'_>) -> usize {
    ctx.shared.config.read().hll_sparse_max_bytes
}

/// Adds `elements` to the HyperLogLog `stored`: whether a register grew, the
/// new bytes if anything changed, and the error that stopped it (the changes
/// made before a corrupt register stay, as in Redis).
fn add_all(
    stored: &[u8],
    elements: &[Bytes],
    max_bytes: usize,
) -> (bool, Option<Vec<u8>>, Result<(), HllError>) {
    let mut value = Cow::Borrowed(stored);
    let mut updated = false;
    let mut result = Ok(());
    for e in elements {
        match hll::add(&mut value, e, max_bytes) {
            Ok(grew) => updated |= grew,
            Err(err) => {
                result = Err(err);
                break;
            }
        }
    }
    let mut changed = match value {
        Cow::Owned(v) => Some(v),
        Cow::Borrowed(_) => None,
    };
    if let (Some(v), true, Ok(())) = (changed.as_mut(), updated, &result) {
        hll::invalidate_cache(v);
    }
    (updated, changed, result)
}

/// PFADD key [element ...]
fn pfadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let key = &args[1];
    let elements = &args[2..];
    let max_bytes = sparse_max_bytes(ctx);
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(stored) = shard.write_quiet::<CompactBytes>(key, now)? else {
        let (_, value, result) = add_all(&hll::new_sparse(), elements, max_bytes);
        result.map_err(hll_error)?;
        let mut value = value.unwrap_or_else(hll::new_sparse);
        hll::invalidate_cache(&mut value);
        let value = Value::Str(CompactBytes::raw_from_vec(value));
        shard.insert(key, Entry::persistent(value), now);
        drop(shard);
        ctx.notify(notify::STRING, "pfadd", key);
        return Ok(Reply::Int(1));
    };
    if hll::check(stored).map_err(hll_error)? == Encoding::Dense {
        // A dense value is edited in place: no 12 KB copy per PFADD.
        let updated = stored.edit(|buf| {
            let mut updated = false;
            for e in elements {
                updated |= hll::add_dense(buf, e);
            }
            if updated {
                hll::invalidate_cache(buf);
            }
            updated
        });
        if updated {
            shard.touch(key);
            drop(shard);
            ctx.notify(notify::STRING, "pfadd", key);
        }
        return Ok(Reply::Int(i64::from(updated)));
    }
    let (updated, changed, result) = add_all(stored, elements, max_bytes);
    match changed {
        Some(v) => replace(stored, v),
        None => unshare(stored),
    }
    result.map_err(hll_error)?;
    if updated {
        shard.touch(key);
        drop(shard);
        ctx.notify(notify::STRING, "pfadd", key);
    }
    Ok(Reply::Int(i64::from(updated)))
}

/// PFCOUNT key [key ...]: one key answers from (and refreshes) its cached
/// count; several are merged into a union that is counted and not stored.
fn pfcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    if args.len() > 2 {
        let keys = &args[1..];
        let shards = ctx.db().lock_keys(keys);
        let mut union = Union::default();
        for key in keys {
            if let Some(v) = shards.view::<CompactBytes>(key, now)? {
                union.merge(v).map_err(hll_error)?;
            }
        }
        return Ok(Reply::Int(union.count() as i64));
    }
    let key = &args[1];
    let mut shard = ctx.db().lock(key);
    let Some(stored) = shard.write_quiet::<CompactBytes>(key, now)? else {
        return Ok(Reply::Int(0));
    };
    hll::check(stored).map_err(hll_error)?;
    unshare(stored);
    if let Some(n) = hll::cached_count(stored) {
        return Ok(Reply::Int(n as i64));
    }
    let n = hll::count(stored).map_err(hll_error)?;
    let mut v = stored.to_vec();
    hll::store_count(&mut v, n);
    replace(stored, v);
    shard.touch(key);
    Ok(Reply::Int(n as i64))
}

/// PFMERGE destkey [sourcekey ...]: the destination is one of the merged values.
fn pfmerge(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let keys = &args[1..];
    let dest = &args[1];
    let max_bytes = sparse_max_bytes(ctx);
    let now = ctx.now;
    let mut shards = ctx.db().lock_keys(keys);
    let mut union = Union::default();
    for key in keys {
        if let Some(v) = shards.view::<CompactBytes>(key, now)? {
            union.merge(v).map_err(hll_error)?;
        }
    }
    let shard = shards.shard(dest);
    match shard.write::<CompactBytes>(dest, now)? {
        Some(stored) => {
            unshare(stored);
            let mut v = stored.to_vec();
            union.store_into(&mut v, max_bytes).map_err(hll_error)?;
            replace(stored, v);
        }
        None => {
            let mut v = hll::new_sparse();
            union.store_into(&mut v, max_bytes).map_err(hll_error)?;
            let value = Value::Str(CompactBytes::raw_from_vec(v));
            shard.insert(dest, Entry::persistent(value), now);
        }
    }
    drop(shards);
    // Redis names PFMERGE's event `pfadd`.
    ctx.notify(notify::STRING, "pfadd", dest);
    Ok(Reply::OK)
}

/// PFDEBUG GETREG|DECODE|ENCODING|TODENSE key
fn pfdebug(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let sub = &args[1];
    let key = &args[2];
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(stored) = shard.write_quiet::<CompactBytes>(key, now)? else {
        return Err(CommandError::err("The specified key does not exist"));
    };
    let encoding = hll::check(stored).map_err(hll_error)?;
    unshare(stored);
    let name = sub.to_ascii_lowercase();
    match name.as_slice() {
        b"getreg" | b"todense" => {
            let converted = encoding == Encoding::Sparse;
            if converted {
                let mut v = stored.to_vec();
                hll::to_dense(&mut v).map_err(hll_error)?;
                replace(stored, v);
            }
            if name == b"todense" {
                return Ok(Reply::Int(i64::from(converted)));
            }
            let regs = hll::registers(stored);
            Ok(Reply::Array(
                regs.into_iter().map(|r| Reply::Int(i64::from(r))).collect(),
            ))
        }
        b"decode" => match hll::decode(stored) {
            Some(text) => Ok(Reply::bulk_string(text)),
            None => Err(CommandError::err("HLL encoding is not sparse")),
        },
        b"encoding" => Ok(Reply::Simple(encoding.name())),
        _ => Err(CommandError::err(format!(
            "Unknown PFDEBUG subcommand '{}'",
            String::from_utf8_lossy(sub)
        ))),
    }
}

/// PFSELFTEST: Redis's self-test of the register layout and the estimator.
fn pfselftest(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CommandResult {
    let max_bytes = sparse_max_bytes(ctx);
    match hll::selftest(1000, 10_000_000, max_bytes) {
        Ok(()) => Ok(Reply::OK),
        Err(f) => Err(CommandError::err(selftest_message(&f))),
    }
}

fn selftest_message(f: &SelfTestFailure) -> String {
    match f {
        SelfTestFailure::Register {
            index,
            expected,
            actual,
        } => format!("TESTFAILED Register {index} should be {expected} but is {actual}"),
        SelfTestFailure::NotSparse => "TESTFAILED sparse encoding not used".into(),
        SelfTestFailure::Disagree => "TESTFAILED dense/sparse disagree".into(),
        SelfTestFailure::TooBigError { cardinality, error } => {
            format!("TESTFAILED Too big error. card:{cardinality} abserr:{error}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selftest_failures_read_as_redis_prints_them() {
        let register = SelfTestFailure::Register {
            index: 7,
            expected: 3,
            actual: 4,
        };
        assert_eq!(
            selftest_message(&register),
            "TESTFAILED Register 7 should be 3 but is 4"
        );
        let error = SelfTestFailure::TooBigError {
            cardinality: 1000,
            error: 300,
        };
        assert_eq!(
            selftest_message(&error),
            "TESTFAILED Too big error. card:1000 abserr:300"
        );
        assert_eq!(
            selftest_message(&SelfTestFailure::Disagree),
            "TESTFAILED dense/sparse disagree"
        );
        assert_eq!(
            selftest_message(&SelfTestFailure::NotSparse),
            "TESTFAILED sparse encoding not used"
        );
    }
}
