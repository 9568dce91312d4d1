//! A whole RDB file: [`Writer`] streams one out (no whole-file buffer: each
//! entry is encoded on its own and written), [`load`] reads one from bytes.
//!
//! Layout (Redis 7.0): `REDIS0010`, aux fields (`redis-ver`, `redis-bits`,
//! `ctime`, `used-mem`, `aof-base`, and any the caller adds), then per
//! database SELECTDB and RESIZEDB and its entries (an optional EXPIRETIME_MS,
//! the type byte, the key, the value), then EOF and the CRC64 of everything
//! before it (0 when `rdbchecksum no`).

use std::io::{self, Write};

use super::encoding::{write_len, write_string, Input, CRC64};
use super::{RdbError, RDB_VERSION, RDB_VERSION_MAX};
use crate::keyspace::Value;
use crate::types::Encodings;

/// A library's code (Redis 7.0's `RDB_OPCODE_FUNCTION2`).
pub const FUNCTION2: u8 = op::FUNCTION2;
/// A library in 7.0-rc's form: name, engine, description, code.
pub const FUNCTION: u8 = op::FUNCTION;

/// Opcodes between entries.
mod op {
    pub const FUNCTION2: u8 = 0xF5;
    pub const FUNCTION: u8 = 0xF6;
    pub const MODULE_AUX: u8 = 0xF7;
    pub const IDLE: u8 = 0xF8;
    pub const FREQ: u8 = 0xF9;
    pub const AUX: u8 = 0xFA;
    pub const RESIZEDB: u8 = 0xFB;
    pub const EXPIRETIME_MS: u8 = 0xFC;
    pub const EXPIRETIME: u8 = 0xFD;
    pub const SELECTDB: u8 = 0xFE;
    pub const EOF: u8 = 0xFF;
}

/// How a file is written: `rdbcompression` and `rdbchecksum`.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// LZF-compress strings over 20 bytes when that saves space.
    pub compression: bool,
    /// Write the CRC64 at the end (else 0, which readers skip).
    pub checksum: bool,
    /// An AOF's base file: its `aof-base` aux field says 1, as Redis's.
    pub aof_base: bool,
}

impl Default for WriteOptions {
    /// Redis's defaults: both on.
    fn default() -> Self {
        WriteOptions {
            compression: true,
            checksum: true,
            aof_base: false,
        }
    }
}

/// Streams an RDB file to `out`.
pub struct Writer<W: Write> {
    out: W,
    crc: crc::Digest<'static, u64>,
    opts: WriteOptions,
    buf: Vec<u8>,
    /// The database last selected (a lock's aux field names it).
    db: usize,
}

impl<W: Write> Writer<W> {
    /// Starts a file: the magic and version, and the aux fields Redis 7.0
    /// writes (`used-mem` 0: latchkey does not count it).
    pub fn new(out: W, opts: WriteOptions) -> io::Result<Self> {
        let mut w = Writer {
            out,
            crc: CRC64.digest(),
            opts,
            buf: Vec::new(),
            db: 0,
        };
        w.put(format!("REDIS{RDB_VERSION:04}").as_bytes())?;
        let ctime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        w.aux(b"redis-ver", crate::server::REDIS_VERSION.as_bytes())?;
        w.aux(b"redis-bits", b"64")?;
        w.aux(b"ctime", ctime.to_string().as_bytes())?;
        w.aux(b"used-mem", b"0")?;
        w.aux(b"aof-base", if opts.aof_base { b"1" } else { b"0" })?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.opts.checksum {
            self.crc.update(bytes);
        }
        self.out.write_all(bytes)
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        let buf = std::mem::take(&mut self.buf);
        let r = self.put(&buf);
        self.buf = buf;
        self.buf.clear();
        r
    }

    /// An aux field (Redis logs and skips keys it does not know).
    pub fn aux(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.buf.clear();
        self.buf.push(op::AUX);
        write_string(&mut self.buf, key, false);
        write_string(&mut self.buf, value, self.opts.compression);
        self.flush_buf()
    }

    /// Starts database `db`, which holds `keys` keys, `expires` of them with
    /// a TTL (RESIZEDB's hints).
    pub fn select_db(&mut self, db: usize, keys: u64, expires: u64) -> io::Result<()> {
        self.db = db;
        self.buf.clear();
        self.buf.push(op::SELECTDB);
        write_len(&mut self.buf, db as u64);
        self.buf.push(op::RESIZEDB);
        write_len(&mut self.buf, keys);
        write_len(&mut self.buf, expires);
        self.flush_buf()
    }

    /// One key of the database last selected: its expiry (absolute unix ms),
    /// type, name and value. A lock becomes an aux field (see
    /// [`super::lock`]), with its key's expiry inside.
    pub fn entry(
        &mut self,
        key: &[u8],
        value: &Value,
        expire_at_ms: Option<u64>,
    ) -> io::Result<()> {
        if let Value::Lock(lock) = value {
            let aux = super::lock::encode(self.db, key, lock, expire_at_ms);
            return self.aux(super::lock::AUX_LOCK, &aux);
        }
        let mut payload = Vec::new();
        super::value::write(&mut payload, value, self.opts.compression).map_err(|u| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("no RDB form for this value yet: {u:?}"),
            )
        })?;
        self.buf.clear();
        if let Some(at) = expire_at_ms {
            self.buf.push(op::EXPIRETIME_MS);
            self.buf.extend_from_slice(&at.to_le_bytes());
        }
        self.buf.push(payload[0]);
        write_string(&mut self.buf, key, self.opts.compression);
        self.flush_buf()?;
        self.put(&payload[1..])
    }

    /// One function library's code (opcode 245), before any database.
    pub fn function(&mut self, code: &[u8]) -> io::Result<()> {
        self.buf.clear();
        self.buf.push(op::FUNCTION2);
        write_string(&mut self.buf, code, self.opts.compression);
        self.flush_buf()
    }

    /// The output, as it is (what was written so far has reached it).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// The output, to look at.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Ends the file (EOF and checksum) and hands back the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.put(&[op::EOF])?;
        let crc = if self.opts.checksum {
            self.crc.clone().finalize()
        } else {
            0
        };
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One item of a loaded file, in file order.
#[derive(Debug)]
pub enum Loaded {
    /// An aux field.
    Aux {
        /// Its name.
        key: Vec<u8>,
        /// Its value.
        value: Vec<u8>,
    },
    /// A function library's code (shebang included).
    Function {
        /// What FUNCTION LOAD was given.
        code: Vec<u8>,
    },
    /// A database starts (SELECTDB), with RESIZEDB's hints when present.
    Db {
        /// Its number.
        index: u64,
    },
    /// One key: of the current database, or for a lock (an aux field) of
    /// the database it names. A lock's holders keep their tokens and lease
    /// ends; the caller files its lease deadlines as for any inserted lock.
    Entry {
        /// The database it belongs to.
        db: u64,
        /// Its name.
        key: Vec<u8>,
        /// Its value.
        value: Value,
        /// Its expiry, absolute unix ms.
        expire_at_ms: Option<u64>,
    },
}

/// Reads a whole file, handing each item to `sink` in order; the values are
/// built under `enc`'s thresholds. A collection stored empty is skipped, as
/// Redis does. The checksum is verified when it is not 0. `sink` may stop
/// the load with an error of its own.
pub fn load(
    bytes: &[u8],
    enc: &Encodings,
    sink: &mut impl FnMut(Loaded) -> Result<(), RdbError>,
) -> Result<(), RdbError> {
    load_checked(bytes, enc, true, sink)
}

/// As [`load`]; the checksum is verified only when `verify` (`rdbchecksum`).
pub fn load_checked(
    bytes: &[u8],
    enc: &Encodings,
    verify: bool,
    sink: &mut impl FnMut(Loaded) -> Result<(), RdbError>,
) -> Result<(), RdbError> {
    let mut inp = Input::new(bytes);
    let magic = inp.take(9).map_err(|_| RdbError::Version { found: 0 })?;
    let version = (&magic[..5] == b"REDIS")
        .then(|| std::str::from_utf8(&magic[5..]).ok()?.parse::<u16>().ok())
        .flatten()
        .ok_or(RdbError::Version { found: 0 })?;
    if version == 0 || version > RDB_VERSION_MAX {
        return Err(RdbError::Version { found: version });
    }
    let mut db = 0u64;
    let mut expire: Option<u64> = None;
    loop {
        let at = inp.offset();
        let t = inp.byte()?;
        match t {
            op::EOF => break,
            op::AUX => {
                let key = inp.string()?;
                let value_at = inp.offset();
                let value = inp.string()?;
                if key == super::lock::AUX_LOCK {
                    let (db, key, lock, expire_at_ms) = super::lock::decode(&value, value_at)?;
                    sink(Loaded::Entry {
                        db,
                        key,
                        value: Value::Lock(lock),
                        expire_at_ms,
                    })?;
                } else {
                    sink(Loaded::Aux { key, value })?;
                }
            }
            op::SELECTDB => {
                db = inp.length()?;
                sink(Loaded::Db { index: db })?;
            }
            op::RESIZEDB => {
                inp.length()?;
                inp.length()?;
            }
            op::EXPIRETIME_MS => expire = Some(u64::from_le_bytes(inp.array()?)),
            op::EXPIRETIME => {
                expire = Some(u64::from(u32::from_le_bytes(inp.array()?)).saturating_mul(1000))
            }
            op::IDLE => {
                inp.length()?;
            }
            op::FREQ => {
                inp.byte()?;
            }
            op::FUNCTION2 => sink(Loaded::Function {
                code: inp.string()?,
            })?,
            op::FUNCTION => {
                let code = old_function(&mut inp)
                    .map_err(|what| RdbError::Invalid { offset: at, what })?;
                sink(Loaded::Function { code })?
            }
            op::MODULE_AUX => {
                return Err(RdbError::Invalid {
                    offset: at,
                    what: "module aux data is not supported",
                })
            }
            kind => {
                let key = inp.string()?;
                match super::value::read(kind, &mut inp, enc) {
                    Ok(value) => sink(Loaded::Entry {
                        db,
                        key,
                        value,
                        expire_at_ms: expire.take(),
                    })?,
                    Err(RdbError::Empty { .. }) => expire = None,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let end = inp.offset();
    if version >= 5 {
        let crc = u64::from_le_bytes(inp.array()?);
        if verify && crc != 0 && crc != CRC64.checksum(&bytes[..end]) {
            return Err(RdbError::Checksum { offset: end });
        }
    }
    Ok(())
}

/// A library in 7.0-rc's form (`RDB_OPCODE_FUNCTION`: name, engine, an
/// optional description, code) as the code Redis makes of it:
/// `#!<engine> name=<name>\n<code>`; errors name the field, as Redis's.
pub fn old_function(inp: &mut Input<'_>) -> Result<Vec<u8>, &'static str> {
    let field = |what: &'static str| move |_| what;
    let name = inp.string().map_err(field("Failed loading library name"))?;
    let engine = inp.string().map_err(field("Failed loading engine name"))?;
    let has_desc = inp
        .length()
        .map_err(field("Failed loading library description indicator"))?;
    if has_desc != 0 {
        inp.string()
            .map_err(field("Failed loading library description"))?;
    }
    let blob = inp.string().map_err(field("Failed loading library blob"))?;
    let mut code = b"#!".to_vec();
    code.extend_from_slice(&engine);
    code.extend_from_slice(b" name=");
    code.extend_from_slice(&name);
    code.push(b'\n');
    code.extend_from_slice(&blob);
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::lock::{Holder, Lock, LockMode};
    use crate::types::CompactBytes;

    fn holder(owner: &str, token: u64, expires_at: u64, shared: bool) -> Holder {
        Holder {
            owner: CompactBytes::from_slice(owner.as_bytes()),
            token,
            expires_at,
            session: None,
            shared,
            delay_ms: 0,
        }
    }

    fn write_and_load(entries: Vec<(usize, &[u8], Value, Option<u64>)>) -> Vec<Loaded> {
        let mut w = Writer::new(Vec::new(), WriteOptions::default()).unwrap();
        w.aux(crate::rdb::lock::AUX_FENCING, b"42").unwrap();
        let mut db = usize::MAX;
        for (d, key, value, expire) in &entries {
            if *d != db {
                w.select_db(*d, 1, 0).unwrap();
                db = *d;
            }
            w.entry(key, value, *expire).unwrap();
        }
        let bytes = w.finish().unwrap();
        let mut out = Vec::new();
        load(&bytes, &Encodings::default(), &mut |l| {
            out.push(l);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn locks_round_trip_with_holders_tokens_and_lease_ends() {
        let exclusive = Lock::restored(None, [holder("me", 7, 1_900_000_000_000, false)]);
        let shared = Lock::restored(
            None,
            [
                holder("r1", 8, 1_900_000_000_001, true),
                holder("r2", 9, 1_900_000_000_002, true),
            ],
        );
        let semaphore = Lock::restored(Some(3), [holder("s1", 10, 1_900_000_000_003, false)]);
        let loaded = write_and_load(vec![
            (0, b"ex", Value::Lock(exclusive), None),
            (2, b"sh", Value::Lock(shared), None),
            (2, b"sem", Value::Lock(semaphore), None),
            (2, b"plain", Value::string(b"v"), Some(1_900_000_000_000)),
        ]);
        let mut fencing = None;
        let mut locks = Vec::new();
        let mut plain = None;
        for l in loaded {
            match l {
                Loaded::Aux { key, value } if key == crate::rdb::lock::AUX_FENCING => {
                    fencing = Some(value)
                }
                Loaded::Entry {
                    db,
                    key,
                    value: Value::Lock(lock),
                    expire_at_ms,
                } => {
                    assert_eq!(expire_at_ms, None);
                    locks.push((db, key, lock.info()));
                }
                Loaded::Entry {
                    db,
                    key,
                    expire_at_ms,
                    ..
                } => plain = Some((db, key, expire_at_ms)),
                _ => {}
            }
        }
        assert_eq!(fencing.as_deref(), Some(&b"42"[..]));
        assert_eq!(plain, Some((2, b"plain".to_vec(), Some(1_900_000_000_000))));
        assert_eq!(locks.len(), 3);
        let (db, key, ex) = &locks[0];
        assert_eq!(
            (*db, key.as_slice(), ex.mode, ex.limit),
            (0, &b"ex"[..], LockMode::Exclusive, None)
        );
        assert_eq!(
            (
                ex.holders[0].owner.as_slice(),
                ex.holders[0].token,
                ex.holders[0].expires_at
            ),
            (&b"me"[..], 7, 1_900_000_000_000)
        );
        let (db, _, sh) = &locks[1];
        assert_eq!((*db, sh.mode, sh.holders.len()), (2, LockMode::Shared, 2));
        assert_eq!(
            sh.holders.iter().map(|h| h.token).collect::<Vec<_>>(),
            vec![8, 9]
        );
        let (_, _, sem) = &locks[2];
        assert_eq!(
            (sem.mode, sem.limit, sem.holders[0].token),
            (LockMode::Semaphore, Some(3), 10)
        );
    }

    #[test]
    fn a_holds_lock_delay_and_a_keys_delay_survive_the_file() {
        let mut held = holder("me", 7, 1_900_000_000_000, false);
        held.delay_ms = 250;
        let exclusive = Lock::restored(None, [held]);
        // A lock nobody holds, in its lock-delay until the given instant.
        let mut delayed = Lock::restored(None, []);
        let _ = delayed.delay(1_900_000_000_500, 0);
        let loaded = write_and_load(vec![
            (0, b"held", Value::Lock(exclusive), None),
            (0, b"delayed", Value::Lock(delayed), None),
        ]);
        let infos: Vec<_> = loaded
            .into_iter()
            .filter_map(|l| match l {
                Loaded::Entry {
                    value: Value::Lock(lock),
                    ..
                } => Some(lock.info()),
                _ => None,
            })
            .collect();
        assert_eq!(infos.len(), 2);
        assert_eq!(infos[0].holders[0].delay_ms, 250);
        assert_eq!(infos[0].delay_until, None);
        assert!(infos[1].holders.is_empty());
        assert_eq!(infos[1].delay_until, Some(1_900_000_000_500));
    }

    #[test]
    fn every_cut_of_a_lock_field_is_an_error() {
        let mut held = holder("me", 7, 1_900_000_000_000, true);
        held.delay_ms = 250;
        let mut lock = Lock::restored(Some(2), [held]);
        let _ = lock.delay(1_900_000_000_500, 0);
        let whole = crate::rdb::lock::encode(3, b"k", &lock, Some(1_900_000_000_900));
        let (db, key, back, expire) = crate::rdb::lock::decode(&whole, 0).unwrap();
        assert_eq!(
            (db, key.as_slice(), expire),
            (3, &b"k"[..], Some(1_900_000_000_900))
        );
        assert_eq!(back.info().delay_until, Some(1_900_000_000_500));
        for n in 0..whole.len() {
            assert!(
                crate::rdb::lock::decode(&whole[..n], 0).is_err(),
                "cut at {n}"
            );
        }
        let mut longer = whole.clone();
        longer.push(0);
        assert!(crate::rdb::lock::decode(&longer, 0).is_err());
        // A lock-delay past u32 (hostile bytes) is refused, not truncated.
        let mut huge = Vec::new();
        crate::rdb::encoding::write_len(&mut huge, 0);
        crate::rdb::encoding::write_string(&mut huge, b"k", false);
        crate::rdb::encoding::write_len(&mut huge, 0);
        crate::rdb::encoding::write_len(&mut huge, 1);
        crate::rdb::encoding::write_string(&mut huge, b"o", false);
        huge.extend_from_slice(&[0; 17]);
        crate::rdb::encoding::write_len(&mut huge, u64::from(u32::MAX) + 1);
        huge.extend_from_slice(&[0; 16]);
        assert!(crate::rdb::lock::decode(&huge, 0).is_err());
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_the_offset() {
        let loaded = write_and_load(vec![(0, b"k", Value::string(b"value"), None)]);
        assert!(!loaded.is_empty());
        let mut w = Writer::new(Vec::new(), WriteOptions::default()).unwrap();
        w.select_db(0, 1, 0).unwrap();
        w.entry(b"k", &Value::string(b"value"), None).unwrap();
        let bytes = w.finish().unwrap();
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 12] ^= 0xff;
        let e = load(&bad, &Encodings::default(), &mut |_| Ok(())).unwrap_err();
        assert!(e.to_string().contains("offset"), "{e}");
        let e = load(&bytes[..n - 3], &Encodings::default(), &mut |_| Ok(())).unwrap_err();
        assert!(matches!(e, RdbError::Truncated { .. }), "{e}");
        // No checksum (rdbchecksum no) is accepted.
        let mut w = Writer::new(
            Vec::new(),
            WriteOptions {
                compression: false,
                checksum: false,
                aof_base: false,
            },
        )
        .unwrap();
        w.entry(b"k", &Value::string(b"value"), None).unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(&bytes[bytes.len() - 8..], &[0; 8]);
        load(&bytes, &Encodings::default(), &mut |_| Ok(())).unwrap();
    }
}
