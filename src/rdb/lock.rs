//! Locks in an RDB file. Redis has no type for a lock, so a lock is not an
//! entry: it is an AUX field, which redis-server 7.0 (and redis-check-rdb)
//! logs and skips, and latchkey's loader turns back into the lock.
//!
//! Layout: aux key [`AUX_LOCK`] (`latchkey-lock`); its value holds, in RDB
//! encodings, the database (length), the key (string), the LIMIT plus one (a
//! length; 0 for a plain or shared lock), the number of holders (length) and
//! per holder: owner (string), fencing token (8 bytes LE), lease end as
//! absolute unix ms (8 bytes LE), flags (1 byte: 1 = a SHARED hold), the
//! hold's lock-delay in ms (length); then the end of the lock-delay the key is
//! in, absolute unix ms (8 bytes LE, 0 for none: a lock nobody holds is
//! written while its delay lasts, so the delay outlives a restart); then the
//! key's own expiry (PEXPIREAT on a lock key), absolute unix ms (8 bytes LE,
//! 0 for none).
//!
//! A decoded lock carries its lease ends and its delay end in its state; the
//! code that puts it in a shard files their deadlines, as for any restored
//! value's timers.
//!
//! Waiters are not written (their connections do not survive a restart), nor
//! is a holder's SESSION binding (its connection is gone too: the hold keeps
//! its lease, as a lease-only hold). The server's fencing-token high-water
//! mark is its own aux field, [`AUX_FENCING`] (decimal), and so is the
//! longest lease granted, [`AUX_LONGEST_LEASE`], both written by the snapshot
//! through [`super::file::Writer::aux`].

use super::encoding::{write_len, write_string, Input};
use super::RdbError;
use crate::types::lock::{Holder, Lock};
use crate::types::CompactBytes;

/// The aux key of one lock.
pub const AUX_LOCK: &[u8] = b"latchkey-lock";
/// The aux key of the fencing-token high-water mark.
pub const AUX_FENCING: &[u8] = b"latchkey-fencing-token";
/// The aux key of the longest lease (ms, decimal) the server had granted: how
/// long the next start's automatic restart grace lasts.
pub const AUX_LONGEST_LEASE: &[u8] = b"latchkey-longest-lease";

const FLAG_SHARED: u8 = 1;

/// The aux value for the lock at `key` in database `db`, whose key expires
/// at `expire_at_ms`.
pub fn encode(db: usize, key: &[u8], lock: &Lock, expire_at_ms: Option<u64>) -> Vec<u8> {
    let info = lock.info();
    let mut out = Vec::new();
    write_len(&mut out, db as u64);
    write_string(&mut out, key, false);
    write_len(&mut out, info.limit.map_or(0, |l| u64::from(l) + 1));
    write_len(&mut out, info.holders.len() as u64);
    for h in &info.holders {
        write_string(&mut out, h.owner.as_slice(), false);
        out.extend_from_slice(&h.token.to_le_bytes());
        out.extend_from_slice(&h.expires_at.to_le_bytes());
        out.push(if h.shared { FLAG_SHARED } else { 0 });
        write_len(&mut out, u64::from(h.delay_ms));
    }
    out.extend_from_slice(&info.delay_until.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&expire_at_ms.unwrap_or(0).to_le_bytes());
    out
}

/// A lock decoded from its aux value: (database, key, lock, the key's
/// expiry). `at` is the value's offset in the file, for errors.
pub fn decode(value: &[u8], at: usize) -> Result<(u64, Vec<u8>, Lock, Option<u64>), RdbError> {
    let mut inp = Input::at(value, at);
    let db = inp.length()?;
    let key = inp.string()?;
    let limit = match inp.length()? {
        0 => None,
        n => Some(u32::try_from(n - 1).map_err(|_| inp.invalid("lock limit"))?),
    };
    let n = inp.count(19)?;
    let mut holders = Vec::with_capacity(n);
    for _ in 0..n {
        let owner = CompactBytes::from_vec(inp.string()?);
        let token = u64::from_le_bytes(inp.array()?);
        let expires_at = u64::from_le_bytes(inp.array()?);
        let flags = inp.byte()?;
        if flags & !FLAG_SHARED != 0 {
            return Err(inp.invalid("lock holder flags"));
        }
        let delay_ms = u32::try_from(inp.length()?).map_err(|_| inp.invalid("lock-delay"))?;
        holders.push(Holder {
            owner,
            token,
            expires_at,
            session: None,
            shared: flags & FLAG_SHARED != 0,
            delay_ms,
        });
    }
    let delay_until = u64::from_le_bytes(inp.array()?);
    let expire_at_ms = Some(u64::from_le_bytes(inp.array()?)).filter(|&t| t != 0);
    if !inp.is_done() {
        return Err(inp.invalid("bytes after a lock"));
    }
    let mut lock = Lock::restored(limit, holders);
    // The deadline this files is the caller's to file (module doc); a delay
    // that ended before now ends at its first look.
    let _ = lock.delay(delay_until, 0);
    Ok((db, key, lock, expire_at_ms))
}
