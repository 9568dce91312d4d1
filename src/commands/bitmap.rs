//! Bitmap commands: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD and
//! BITFIELD_RO. A bitmap is a string value; the bit operations themselves are in
//! `types/bitmap.rs`. Writes change the string in place
//! ([`CompactBytes::edit`]), so setting a bit in a big bitmap does not copy it.

use bytes::Bytes;

use super::args::Args;
use super::{flag, is, CommandResult, CommandSpec, Ctx, KeyRef, KeySpec};
use crate::error::CommandError;
use crate::keyspace::{Entry, Value};
use crate::notify;
use crate::protocol::parse_i64;
use crate::reply::Reply;
use crate::types::bitmap::{self, BitOp, Field, Overflow, Unit};
use crate::types::CompactBytes;

/// The bitmap family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("setbit", 4, flag::WRITE | flag::DENYOOM, setbit)
        .keys(1, 1, 1)
        .acl(&["@write", "@bitmap", "@slow"])
        .key_specs(&[KeySpec::one(1, &["RW", "access", "update"])])
        .doc("bitmap", "2.2.0", "Sets or clears the bit at offset in the string value stored at key"),
    CommandSpec::new("getbit", 3, flag::READONLY | flag::FAST, getbit)
        .keys(1, 1, 1)
        .acl(&["@read", "@bitmap", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RO", "access"])])
        .doc("bitmap", "2.2.0", "Returns the bit value at offset in the string value stored at key"),
    CommandSpec::new("bitcount", -2, flag::READONLY, bitcount)
        .keys(1, 1, 1)
        .acl(&["@read", "@bitmap", "@slow"])
        .key_specs(&[KeySpec::one(1, &["RO", "access"])])
        .doc("bitmap", "2.6.0", "Count set bits in a string"),
    CommandSpec::new("bitpos", -3, flag::READONLY, bitpos)
        .keys(1, 1, 1)
        .acl(&["@read", "@bitmap", "@slow"])
        .key_specs(&[KeySpec::one(1, &["RO", "access"])])
        .doc("bitmap", "2.8.7", "Find first bit set or clear in a string"),
    CommandSpec::new("bitop", -4, flag::WRITE | flag::DENYOOM, bitop)
        .keys(2, -1, 1)
        .acl(&["@write", "@bitmap", "@slow"])
        .key_specs(&[KeySpec::one(2, &["OW", "update"]), KeySpec::range(3, -1, 1, &["RO", "access"])])
        .doc("bitmap", "2.6.0", "Perform bitwise operations between strings"),
    CommandSpec::new("bitfield", -2, flag::WRITE | flag::DENYOOM, bitfield)
        .getkeys(bitfield_keys)
        .keys(1, 1, 1)
        .acl(&["@write", "@bitmap", "@slow"])
        .key_specs(&[KeySpec::one(1, &["RW", "access", "update", "variable_flags"]).notes("This command allows both access and modification of the key")])
        .doc("bitmap", "3.2.0", "Perform arbitrary bitfield integer operations on strings"),
    CommandSpec::new("bitfield_ro", -2, flag::READONLY | flag::FAST, bitfield_ro)
        .keys(1, 1, 1)
        .acl(&["@read", "@bitmap", "@fast"])
        .key_specs(&[KeySpec::one(1, &["RO", "access"])])
        .doc("bitmap", "6.0.0", "Perform arbitrary bitfield integer operations on strings. Read-only variant of BITFIELD"),
];

/// `ERR bit offset is not an integer or out of range`.
fn bad_offset() -> CommandError {
    CommandError::err("bit offset is not an integer or out of range")
}

/// A bit offset as Redis reads one: a non-negative integer whose byte is below
/// `proto-max-bulk-len`. For BITFIELD (`width` given), `#N` means N fields of
/// that width (multiplied as Redis does, in wrapping 64-bit arithmetic).
fn bit_offset(arg: &[u8], width: Option<u32>, max: i64) -> Result<u64, CommandError> {
    let (fields, digits) = match (arg.split_first(), width) {
        (Some((b'#', rest)), Some(w)) => (Some(w), rest),
        _ => (None, arg),
    };
    let mut offset = parse_i64(digits).ok_or_else(bad_offset)?;
    if let Some(w) = fields {
        offset = offset.wrapping_mul(i64::from(w));
    }
    if offset < 0 || (offset >> 3) >= max {
        return Err(bad_offset());
    }
    Ok(offset as u64)
}

/// `byte_len` bytes as a buffer length (an offset already checked against
/// `proto-max-bulk-len` fits).
fn buffer_len(byte_len: u64) -> Result<usize, CommandError> {
    usize::try_from(byte_len).map_err(|_| bad_offset())
}

fn max_bulk(ctx: &Ctx<'_>) -> i64 {
    ctx.shared.config.read().proto_max_bulk_len
}

fn setbit(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let offset = bit_offset(a.bytes()?, None, max_bulk(ctx))?;
    let on = match parse_i64(a.bytes()?) {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(CommandError::err("bit is not an integer or out of range")),
    };
    let need = buffer_len(bitmap::bytes_for_bit(offset))?;
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let value = shard.get_or_create_quiet::<CompactBytes>(key, now)?;
    let (old, changed) = value.edit(|buf| {
        let grew = buf.len() < need;
        if grew {
            buf.resize(need, 0);
        }
        let old = bitmap::set_bit(buf, offset, on);
        (old, grew || old != on)
    });
    if changed {
        shard.touch(key);
        drop(shard);
        ctx.notify(notify::STRING, "setbit", key);
    }
    Ok(Reply::Int(i64::from(old)))
}

fn getbit(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let offset = bit_offset(a.bytes()?, None, max_bulk(ctx))?;
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let bit = shard
        .read::<CompactBytes>(key, now)?
        .is_some_and(|v| bitmap::get_bit(v, offset));
    Ok(Reply::Int(i64::from(bit)))
}

/// The optional `BYTE|BIT` after a range; anything else is a syntax error.
fn unit(a: &mut Args<'_>) -> Result<Unit, CommandError> {
    if a.is_done() {
        return Ok(Unit::Byte);
    }
    match a.one_of(&["byte", "bit"]) {
        Some(0) => Ok(Unit::Byte),
        Some(_) => Ok(Unit::Bit),
        None => Err(CommandError::Syntax),
    }
}

/// BITCOUNT key [start end [BYTE|BIT]]. The arguments are checked before the
/// key is read (Redis 7.2: a missing key with a bad range is an error, not 0).
fn bitcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let range = match a.remaining() {
        0 => None,
        2 | 3 => {
            let (start, end) = (a.int()?, a.int()?);
            Some((start, end, unit(&mut a)?))
        }
        _ => return Err(CommandError::Syntax),
    };
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(value) = shard.read::<CompactBytes>(key, now)? else {
        return Ok(Reply::Int(0));
    };
    let count = match range {
        None => bitmap::count_ones(value),
        // Both negative and crossed: empty before clamping.
        Some((start, end, _)) if start < 0 && end < 0 && start > end => 0,
        Some((start, end, unit)) => bitmap::bit_range(value.len(), start, Some(end), unit)
            .map_or(0, |(first, last)| bitmap::count_range(value, first, last)),
    };
    Ok(Reply::Int(count as i64))
}

/// BITPOS key bit [start [end [BYTE|BIT]]]. Redis checks BYTE|BIT before it
/// reads `end`, and all arguments before the key (7.2).
fn bitpos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let key = a.key()?;
    let bit = match a.int()? {
        0 => false,
        1 => true,
        _ => return Err(CommandError::err("The bit argument must be 1 or 0.")),
    };
    let (start, end, unit) = match a.remaining() {
        0 => (0, None, Unit::Byte),
        1..=3 => {
            let start = a.int()?;
            let end_arg = a.next_arg();
            let unit = unit(&mut a)?;
            let end = end_arg.map(|e| super::int_arg(e)).transpose()?;
            (start, end, unit)
        }
        _ => return Err(CommandError::Syntax),
    };
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    let Some(value) = shard.read::<CompactBytes>(key, now)? else {
        // A missing key is all zeros.
        return Ok(Reply::Int(if bit { -1 } else { 0 }));
    };
    let Some((first, last)) = bitmap::bit_range(value.len(), start, end, unit) else {
        return Ok(Reply::Int(-1));
    };
    let pos = match bitmap::find_bit(value, bit, first, last) {
        Some(p) => p as i64,
        // Without an end, the string is read as zero-padded: the first clear bit
        // is the one after it.
        None if !bit && end.is_none() => last as i64 + 1,
        None => -1,
    };
    Ok(Reply::Int(pos))
}

/// BITOP op destkey key [key ...]: the result is as long as the longest source;
/// an empty result deletes the destination. The destination is a new `raw`
/// string without a TTL.
fn bitop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut a = Args::new(args);
    let op = match a.one_of(&["and", "or", "xor", "not"]) {
        Some(0) => BitOp::And,
        Some(1) => BitOp::Or,
        Some(2) => BitOp::Xor,
        Some(_) => BitOp::Not,
        None => return Err(CommandError::Syntax),
    };
    let dest = a.key()?;
    let sources = a.rest();
    if op == BitOp::Not && sources.len() != 1 {
        return Err(CommandError::err(
            "BITOP NOT must be called with a single source key.",
        ));
    }
    let now = ctx.now;
    let keys = &args[2..];
    let mut shards = ctx.db().lock_keys(keys);
    // The sources by reference (a count bump for a long one), so that the
    // destination can be written while they are read.
    let mut values: Vec<Bytes> = Vec::with_capacity(sources.len());
    for k in sources {
        let v = shards.view::<CompactBytes>(k, now)?;
        values.push(v.map_or_else(Bytes::new, CompactBytes::to_bytes));
    }
    let refs: Vec<&[u8]> = values.iter().map(|v| &v[..]).collect();
    let len = bitmap::result_len(op, &refs);
    let shard = shards.shard(dest);
    if len == 0 {
        if shard.remove(dest, now).is_some() {
            drop(shards);
            ctx.notify(notify::GENERIC, "del", dest);
        }
        return Ok(Reply::Int(0));
    }
    // A long string at the destination that is not a source is overwritten in
    // its own buffer: a repeated BITOP into the same key allocates nothing.
    let reuse = !sources.contains(dest) && len > CompactBytes::INLINE;
    match shard.write::<CompactBytes>(dest, now) {
        Ok(Some(value)) if reuse && value.shared().is_some() => {
            value.edit(|buf| {
                buf.resize(len, 0);
                bitmap::bitop_into(op, &refs, buf);
            });
            shard.set_expiry(dest, None, now);
        }
        _ => {
            let value = CompactBytes::raw_from_vec(bitmap::bitop(op, &refs));
            shard.insert(dest, Entry::persistent(Value::Str(value)), now);
        }
    }
    drop(shards);
    ctx.notify(notify::STRING, "set", dest);
    Ok(Reply::Int(len as i64))
}

/// One BITFIELD operation.
#[derive(Debug, Clone, Copy)]
enum Op {
    Get,
    Set(i64),
    IncrBy(i64),
}

/// A parsed BITFIELD operation, with the OVERFLOW policy in force for it.
#[derive(Debug, Clone, Copy)]
struct FieldOp {
    op: Op,
    field: Field,
    offset: u64,
    overflow: Overflow,
}

/// Reads BITFIELD's operations in Redis's order of checks: the subcommand and
/// its argument count, the type, the offset, then the value.
fn parse_field_ops(args: &[Bytes], max: i64) -> Result<Vec<FieldOp>, CommandError> {
    let mut a = Args::new(args);
    a.key()?;
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    while let Some(sub) = a.next_arg() {
        let left = a.remaining();
        let op = if is(sub, "get") && left >= 2 {
            Op::Get
        } else if is(sub, "set") && left >= 3 {
            Op::Set(0)
        } else if is(sub, "incrby") && left >= 3 {
            Op::IncrBy(0)
        } else if is(sub, "overflow") && left >= 1 {
            overflow = match a.one_of(&["wrap", "sat", "fail"]) {
                Some(0) => Overflow::Wrap,
                Some(1) => Overflow::Sat,
                Some(_) => Overflow::Fail,
                None => return Err(CommandError::err("Invalid OVERFLOW type specified")),
            };
            continue;
        } else {
            return Err(CommandError::Syntax);
        };
        let field = Field::parse(a.bytes()?).ok_or_else(|| {
            CommandError::err(
                "Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
            )
        })?;
        let offset = bit_offset(a.bytes()?, Some(field.bits), max)?;
        let op = match op {
            Op::Get => Op::Get,
            Op::Set(_) => Op::Set(a.int()?),
            Op::IncrBy(_) => Op::IncrBy(a.int()?),
        };
        ops.push(FieldOp {
            op,
            field,
            offset,
            overflow,
        });
    }
    Ok(ops)
}

/// BITFIELD's key flags for COMMAND GETKEYSANDFLAGS: read-only when every
/// operation is a GET (or OVERFLOW), as Redis's `bitfieldGetKeys` decides.
fn bitfield_keys(args: &[Bytes]) -> Vec<KeyRef> {
    let mut readonly = true;
    let mut i = 2;
    while i < args.len() {
        let left = args.len() - i - 1;
        let a = &args[i];
        if is(a, "get") && left >= 2 {
            i += 3;
        } else if is(a, "overflow") && left >= 1 {
            i += 2;
        } else {
            readonly = false;
            break;
        }
    }
    let flags: &'static [&'static str] = if readonly {
        &["RO", "access"]
    } else {
        &["RW", "access", "update"]
    };
    vec![KeyRef { pos: 1, flags }]
}

fn bitfield(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    bitfield_generic(ctx, args, false)
}

fn bitfield_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    bitfield_generic(ctx, args, true)
}

fn bitfield_generic(ctx: &mut Ctx<'_>, args: &[Bytes], read_only: bool) -> CommandResult {
    let ops = parse_field_ops(args, max_bulk(ctx))?;
    let key = &args[1];
    let now = ctx.now;
    // The last bit any SET or INCRBY reaches: the string grows to hold it first.
    let highest = ops
        .iter()
        .filter(|o| !matches!(o.op, Op::Get))
        .map(|o| o.offset + u64::from(o.field.bits) - 1)
        .max();
    let Some(highest) = highest else {
        let mut shard = ctx.db().lock(key);
        let value = shard.read::<CompactBytes>(key, now)?;
        let bytes = value.map_or(&[][..], |v| v.as_slice());
        let replies = ops
            .iter()
            .map(|o| Reply::Int(o.field.get(bytes, o.offset)))
            .collect();
        return Ok(Reply::Array(replies));
    };
    if read_only {
        return Err(CommandError::err(
            "BITFIELD_RO only supports the GET subcommand",
        ));
    }
    let need = buffer_len(bitmap::bytes_for_bit(highest))?;
    let mut shard = ctx.db().lock(key);
    let value = shard.get_or_create_quiet::<CompactBytes>(key, now)?;
    // Redis raises `setbit` when any SET or INCRBY was applied, changed or not.
    let mut wrote = false;
    let (replies, changed) = value.edit(|buf| {
        let mut changed = buf.len() < need;
        if changed {
            buf.resize(need, 0);
        }
        let replies: Vec<Reply> = ops
            .iter()
            .map(|o| {
                let old = o.field.get(buf, o.offset);
                let (wanted, reply_new) = match o.op {
                    Op::Get => return Reply::Int(old),
                    Op::Set(v) => (o.field.set_value(v), false),
                    Op::IncrBy(by) => (i128::from(old) + i128::from(by), true),
                };
                let Some(new) = o.field.settle(wanted, o.overflow) else {
                    return Reply::Nil;
                };
                o.field.set(buf, o.offset, new);
                changed |= new != old;
                wrote = true;
                Reply::Int(if reply_new { new } else { old })
            })
            .collect();
        (replies, changed)
    });
    if changed {
        shard.touch(key);
    }
    drop(shard);
    if wrote {
        ctx.notify(notify::STRING, "setbit", key);
    }
    Ok(Reply::Array(replies))
}
