//! The `cmsgpack` library Redis gives scripts (lua-cmsgpack 0.4.0):
//! `cmsgpack.pack`, `cmsgpack.unpack`, `cmsgpack.unpack_one` and
//! `cmsgpack.unpack_limit`, with that version's encoding choices (smallest
//! integer form, float32 when exact, `str8` but no `bin` types, tables nested
//! deeper than 16 packed as nil), its decoding of every MessagePack type (bin
//! and ext are "bad data") and its error messages.
//!
//! Not here: `cmsgpack_safe`, which Redis does not expose.
//!
//! The decoders are C functions on the raw Lua API, as the originals are: they
//! build the values on the Lua stack with the same stack checks, so a long or
//! deep input ends in the same "stack overflow" as on Redis (Lua's 8,000
//! slots, which also bound the nesting), and thousands of values cost no mlua
//! reference slots. They keep their place in containers in a fixed array
//! instead of recursing.
//!
//! # Safety
//!
//! The `extern "C-unwind"` functions are called by Lua only, with the Lua C
//! API's rules. Lua errors leave them by `longjmp`, so nothing in them may need
//! dropping.

use std::ffi::{c_int, CStr};

use mlua::{ffi, Lua, Table, Value, Variadic};

use super::{bad_arg, script_raise, truncate_like_x86};

/// Tables nested deeper than this are packed as nil (which also ends cycles).
const MAX_NESTING: usize = 16;

/// Lua 5.1's `LUAI_MAXCSTACK`: the stack slots a C function may use.
const STACK_SLOTS: usize = 8000;

/// The `cmsgpack` table.
pub fn library(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "pack",
        lua.create_function(|lua, args: Variadic<Value>| {
            pack(lua, &args).and_then(|b| lua.create_string(&b))
        })?,
    )?;
    let decoders: [(&str, ffi::lua_CFunction); 3] = [
        ("unpack", unpack),
        ("unpack_one", unpack_one),
        ("unpack_limit", unpack_limit),
    ];
    for (name, f) in decoders {
        // SAFETY: each follows the Lua C API's rules for a C function.
        t.set(name, unsafe { lua.create_c_function(f) }?)?;
    }
    t.set("_NAME", "cmsgpack")?;
    t.set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}

fn pack(lua: &Lua, args: &[Value]) -> mlua::Result<Vec<u8>> {
    if args.is_empty() {
        return Err(bad_arg(lua, 0, "pack", "MessagePack pack needs input."));
    }
    // The C function asks Lua for as many free slots as it has arguments.
    if 2 * args.len() > STACK_SLOTS {
        return Err(bad_arg(
            lua,
            0,
            "pack",
            "Too many arguments for MessagePack pack.",
        ));
    }
    let mut packer = Packer {
        lua,
        out: Vec::new(),
        limit: MAX_PACKED,
    };
    for v in args {
        packer.encode(v, 0)?;
    }
    Ok(packer.out)
}

/// The most `pack` writes before it gives up. A table that holds itself many
/// times packs to `n^16` values (Redis keeps going until memory runs out); a
/// string this long could not be a reply or a value anyway (`proto-max-bulk-len`).
const MAX_PACKED: usize = 512 << 20;

/// What `pack` is writing, and where it stops.
struct Packer<'a> {
    lua: &'a Lua,
    out: Vec<u8>,
    limit: usize,
}

impl Packer<'_> {
    fn encode(&mut self, v: &Value, level: usize) -> mlua::Result<()> {
        encode(v, level, self)
    }

    /// Past the limit: an error rather than all the server's memory.
    fn check(&self, adding: usize) -> mlua::Result<()> {
        if self.out.len().saturating_add(adding) > self.limit {
            return Err(script_raise(self.lua, "MessagePack pack output too large."));
        }
        Ok(())
    }
}

fn encode(v: &Value, level: usize, packer: &mut Packer) -> mlua::Result<()> {
    // Checked before each value, and before a string is copied (one long
    // string held many times could pass the limit in one step).
    packer.check(match v {
        Value::String(s) => s.as_bytes().len(),
        _ => 0,
    })?;
    let out = &mut packer.out;
    match v {
        Value::Table(_) if level == MAX_NESTING => out.push(0xc0),
        Value::Table(t) => encode_table(t, level, packer)?,
        Value::String(s) => encode_bytes(&s.as_bytes(), out),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => encode_number(*i as f64, out),
        Value::Number(n) => encode_number(*n, out),
        // Functions, userdata (`cjson.null` too) and threads pack as nil.
        _ => out.push(0xc0),
    }
    Ok(())
}

fn encode_table(t: &Table, level: usize, packer: &mut Packer) -> mlua::Result<()> {
    if let Some(len) = array_length(t)? {
        header(&mut packer.out, len, 0x90, 0xdc, 0xdd);
        for i in 1..=len {
            packer.encode(&t.raw_get::<Value>(i)?, level + 1)?;
        }
        return Ok(());
    }
    let mut len = 0;
    for pair in t.pairs::<Value, Value>() {
        pair?;
        len += 1;
    }
    header(&mut packer.out, len, 0x80, 0xde, 0xdf);
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        packer.encode(&k, level + 1)?;
        packer.encode(&v, level + 1)?;
    }
    Ok(())
}

/// lua-cmsgpack's array test: every key a number that is a positive C `int`,
/// and the largest equal to the count (so the keys are exactly 1..n; an empty
/// table is an empty array). `Some(n)` for an array.
fn array_length(t: &Table) -> mlua::Result<Option<usize>> {
    let (mut max, mut count) = (0usize, 0usize);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        let n = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => return Ok(None),
        };
        // `(int)n == n` on x86-64: anything outside int's range fails.
        if n <= 0.0 || n >= 2_147_483_648.0 || n.trunc() != n {
            return Ok(None);
        }
        max = max.max(n as usize);
        count += 1;
    }
    Ok((max == count).then_some(count))
}

/// A container header: the fix form (`fix | n`) up to 15, then 16- and 32-bit
/// lengths.
fn header(out: &mut Vec<u8>, n: usize, fix: u8, with16: u8, with32: u8) {
    if n <= 15 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(with16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(with32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// A string: fixstr below 32 bytes, then `str8`, `str16`, `str32` (lengths past
/// 32 bits keep their low 32 bits, as the C code writes them).
fn encode_bytes(s: &[u8], out: &mut Vec<u8>) {
    let len = s.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

/// A Lua number: an integer when it is one that fits 64 bits, else a float32
/// when that is exact (infinities are), else a double (NaN is).
fn encode_number(n: f64, out: &mut Vec<u8>) {
    let as_int = truncate_like_x86(n);
    if n.is_finite() && as_int as f64 == n {
        encode_int(as_int, out);
    } else if (n as f32) as f64 == n {
        out.push(0xca);
        out.extend_from_slice(&(n as f32).to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        match n {
            0..=127 => out.push(n as u8),
            128..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
            0x100..=0xffff => {
                out.push(0xcd);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(0xce);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            _ => {
                out.push(0xcf);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
    } else {
        match n {
            -32..=-1 => out.push(n as i8 as u8),
            -128..=-33 => out.extend_from_slice(&[0xd0, n as i8 as u8]),
            -32768..=-129 => {
                out.push(0xd1);
                out.extend_from_slice(&(n as i16).to_be_bytes());
            }
            -2_147_483_648..=-32769 => {
                out.push(0xd2);
                out.extend_from_slice(&(n as i32).to_be_bytes());
            }
            _ => {
                out.push(0xd3);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
    }
}

/// `mp_unpack_full` on the Lua stack: up to `limit` values from `offset` (both
/// 0: every value, and no offset returned); otherwise the next offset (-1 at
/// the end) comes first. The input is argument 1.
///
/// # Safety
///
/// Called from a Lua C function, with the Lua C API's rules. Lua errors leave by
/// `longjmp`: nothing here needs dropping.
unsafe fn unpack_full(l: *mut ffi::lua_State, limit: i64, offset: i64) -> c_int {
    let mut len = 0usize;
    let s = ffi::luaL_checklstring(l, 1, &mut len);
    let decode_all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        // lua-cmsgpack prints the input length where it says "limit".
        return ffi::luaL_error(
            l,
            c"Invalid request to unpack with offset of %d and limit of %d.".as_ptr(),
            offset as c_int,
            len as c_int,
        );
    }
    if offset as u64 > len as u64 {
        return ffi::luaL_error(
            l,
            c"Start offset %d greater than input length %d.".as_ptr(),
            offset as c_int,
            len as c_int,
        );
    }
    let limit = if decode_all {
        i64::from(c_int::MAX)
    } else {
        limit
    };
    // SAFETY: argument 1 is a string and stays on the stack until we return.
    let input = std::slice::from_raw_parts(s.cast::<u8>(), len);
    let mut cursor = Cursor {
        input,
        pos: offset as usize,
    };
    let mut frames = [Frame::EMPTY; MAX_FRAMES];
    let mut count: c_int = 0;
    while cursor.pos < len && i64::from(count) < limit {
        let message = match decode(l, &mut cursor, &mut frames) {
            Ok(()) => {
                count += 1;
                continue;
            }
            Err(Failure::Eof) => c"Missing bytes in input.",
            Err(Failure::BadFormat) => c"Bad data format in input.",
        };
        // What was decoded goes, so the message has room (see `need_slot`).
        ffi::lua_settop(l, 0);
        return ffi::luaL_error(l, message.as_ptr());
    }
    if !decode_all {
        need_slot(l, c"in function mp_unpack_full");
        let next = if cursor.pos == len {
            -1
        } else {
            cursor.pos as ffi::lua_Integer
        };
        ffi::lua_pushinteger(l, next);
        ffi::lua_insert(l, 2);
        count += 1;
    }
    count
}

/// `luaL_checkstack(l, 1, what)`: room for one more value, or Lua's "stack
/// overflow (what)". The values decoded so far are dropped first, so the error
/// message has room (real Lua has a few spare slots; the API checks of a debug
/// build do not allow them).
unsafe fn need_slot(l: *mut ffi::lua_State, what: &CStr) {
    if ffi::lua_checkstack(l, 1) == 0 {
        ffi::lua_settop(l, 0);
        ffi::luaL_error(l, c"stack overflow (%s)".as_ptr(), what.as_ptr());
    }
}

/// `cmsgpack.unpack(s)`: every value in `s`.
unsafe extern "C-unwind" fn unpack(l: *mut ffi::lua_State) -> c_int {
    unpack_full(l, 0, 0)
}

/// `cmsgpack.unpack_one(s [, offset])`.
unsafe extern "C-unwind" fn unpack_one(l: *mut ffi::lua_State) -> c_int {
    let offset = ffi::luaL_optinteger(l, 2, 0);
    keep_first_argument(l);
    unpack_full(l, 1, offset)
}

/// `cmsgpack.unpack_limit(s, limit [, offset])`.
unsafe extern "C-unwind" fn unpack_limit(l: *mut ffi::lua_State) -> c_int {
    let limit = ffi::luaL_checkinteger(l, 2);
    let offset = ffi::luaL_optinteger(l, 3, 0);
    keep_first_argument(l);
    unpack_full(l, limit, offset)
}

/// Drops the arguments after the first, as lua-cmsgpack does before decoding
/// (they would count against the stack the values need).
unsafe fn keep_first_argument(l: *mut ffi::lua_State) {
    if ffi::lua_gettop(l) > 1 {
        ffi::lua_settop(l, 1);
    }
}

/// Why decoding stopped, for the errors raised once the C function's frame is
/// back in charge.
enum Failure {
    /// The input ended inside a value: "Missing bytes in input."
    Eof,
    /// A first byte lua-cmsgpack does not know: "Bad data format in input."
    BadFormat,
}

/// The input and how far it is read. Every value consumes at least one byte,
/// and a length is checked against what is left before anything is made, so
/// the work and memory of a decode follow the input's length, not its length
/// prefixes.
struct Cursor<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    /// The `N` bytes after the one-byte header at the cursor, consumed with it.
    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Failure> {
        let bytes = self
            .input
            .get(self.pos + 1..self.pos + 1 + N)
            .ok_or(Failure::Eof)?;
        let mut a = [0; N];
        a.copy_from_slice(bytes);
        self.pos += 1 + N;
        Ok(a)
    }

    /// `n` bytes at the cursor, consumed.
    fn take(&mut self, n: usize) -> Result<&[u8], Failure> {
        let end = self.pos.checked_add(n).ok_or(Failure::Eof)?;
        let bytes = self.input.get(self.pos..end).ok_or(Failure::Eof)?;
        self.pos = end;
        Ok(bytes)
    }
}

/// A container being filled. lua-cmsgpack recurses; this decoder keeps the
/// same Lua stack (table, then index or key) and its own place in a fixed
/// array, so its depth costs no Rust stack.
#[derive(Clone, Copy)]
struct Frame {
    remaining: u32,
    index: u32,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Array,
    MapKey,
    MapValue,
}

impl Frame {
    const EMPTY: Frame = Frame {
        remaining: 0,
        index: 0,
        kind: Kind::Array,
    };
}

/// Every open container holds at least one Lua stack slot, so Lua's limit is
/// also the deepest nesting.
const MAX_FRAMES: usize = STACK_SLOTS;

/// What the byte at the cursor started.
enum Item {
    /// A scalar, pushed.
    Scalar,
    /// A container's table, pushed, with the number of elements or pairs.
    Array(u32),
    Map(u32),
}

/// Decodes one value at the cursor onto the Lua stack, as lua-cmsgpack's
/// `mp_decode_to_lua_type` does: the same stack checks in the same places
/// (so the same "stack overflow" errors), elements stored with `lua_settable`
/// (so a nil or NaN map key is Lua's own error).
///
/// # Safety
///
/// As [`unpack_full`].
unsafe fn decode(
    l: *mut ffi::lua_State,
    cursor: &mut Cursor,
    frames: &mut [Frame; MAX_FRAMES],
) -> Result<(), Failure> {
    let mut depth = 0usize;
    loop {
        if cursor.pos >= cursor.input.len() {
            return Err(Failure::Eof);
        }
        need_slot(
            l,
            c"too many return values at once; use unpack_one or unpack_limit instead.",
        );
        let opened = match push_item(l, cursor)? {
            Item::Scalar => None,
            Item::Array(n) => {
                need_slot(l, c"in function mp_decode_to_lua_array");
                (n > 0).then_some((Kind::Array, n))
            }
            Item::Map(n) => (n > 0).then_some((Kind::MapKey, n)),
        };
        if let Some((kind, remaining)) = opened {
            if depth == MAX_FRAMES {
                ffi::luaL_error(l, c"stack overflow".as_ptr());
                return Ok(());
            }
            frames[depth] = Frame {
                remaining,
                index: 1,
                kind,
            };
            depth += 1;
            if kind == Kind::Array {
                ffi::lua_pushnumber(l, 1.0);
            }
            continue;
        }
        // A value is complete on top of the stack: store it, closing every
        // container it completes.
        loop {
            let Some(top) = depth.checked_sub(1) else {
                return Ok(());
            };
            let frame = &mut frames[top];
            if frame.kind == Kind::MapKey {
                frame.kind = Kind::MapValue;
                break;
            }
            ffi::lua_settable(l, -3);
            frame.remaining -= 1;
            if frame.remaining == 0 {
                depth = top;
                continue;
            }
            if frame.kind == Kind::Array {
                frame.index += 1;
                ffi::lua_pushnumber(l, f64::from(frame.index));
            } else {
                frame.kind = Kind::MapKey;
            }
            break;
        }
    }
}

/// Pushes the scalar, or the table of the container, that starts at the cursor.
///
/// # Safety
///
/// As [`unpack_full`]; the stack has room for one more value.
unsafe fn push_item(l: *mut ffi::lua_State, cursor: &mut Cursor) -> Result<Item, Failure> {
    let first = cursor.input[cursor.pos];
    let number = |n: f64| {
        ffi::lua_pushnumber(l, n);
        Ok(Item::Scalar)
    };
    let string = |cursor: &mut Cursor, len: usize| {
        let bytes = cursor.take(len)?;
        ffi::lua_pushlstring(l, bytes.as_ptr().cast(), bytes.len());
        Ok(Item::Scalar)
    };
    match first {
        0x00..=0x7f | 0xe0..=0xff => {
            cursor.pos += 1;
            number(f64::from(first as i8))
        }
        0xc0 | 0xc2 | 0xc3 => {
            cursor.pos += 1;
            if first == 0xc0 {
                ffi::lua_pushnil(l);
            } else {
                ffi::lua_pushboolean(l, c_int::from(first == 0xc3));
            }
            Ok(Item::Scalar)
        }
        0xcc => number(f64::from(u8::from_be_bytes(cursor.fixed()?))),
        0xd0 => number(f64::from(i8::from_be_bytes(cursor.fixed()?))),
        0xcd => number(f64::from(u16::from_be_bytes(cursor.fixed()?))),
        0xd1 => number(f64::from(i16::from_be_bytes(cursor.fixed()?))),
        0xce => number(f64::from(u32::from_be_bytes(cursor.fixed()?))),
        0xd2 => number(f64::from(i32::from_be_bytes(cursor.fixed()?))),
        // uint 64 goes through a signed 64-bit integer: past 2^63 it wraps.
        0xcf | 0xd3 => number(i64::from_be_bytes(cursor.fixed()?) as f64),
        0xca => number(f64::from(f32::from_be_bytes(cursor.fixed()?))),
        0xcb => number(f64::from_be_bytes(cursor.fixed()?)),
        0xa0..=0xbf => {
            cursor.pos += 1;
            string(cursor, usize::from(first & 0x1f))
        }
        0xd9 => {
            let n = u8::from_be_bytes(cursor.fixed()?);
            string(cursor, usize::from(n))
        }
        0xda => {
            let n = u16::from_be_bytes(cursor.fixed()?);
            string(cursor, usize::from(n))
        }
        0xdb => {
            let n = u32::from_be_bytes(cursor.fixed()?);
            string(cursor, n as usize)
        }
        0x80..=0x9f => {
            cursor.pos += 1;
            ffi::lua_newtable(l);
            let n = u32::from(first & 0x0f);
            Ok(if first >= 0x90 {
                Item::Array(n)
            } else {
                Item::Map(n)
            })
        }
        0xdc | 0xde => {
            let n = u32::from(u16::from_be_bytes(cursor.fixed()?));
            ffi::lua_newtable(l);
            Ok(if first == 0xdc {
                Item::Array(n)
            } else {
                Item::Map(n)
            })
        }
        0xdd | 0xdf => {
            let n = u32::from_be_bytes(cursor.fixed()?);
            ffi::lua_newtable(l);
            Ok(if first == 0xdd {
                Item::Array(n)
            } else {
                Item::Map(n)
            })
        }
        // 0xc1 (never used), bin 8/16/32, ext and fixext.
        _ => Err(Failure::BadFormat),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lua() -> Lua {
        let lua = Lua::new();
        let lib = library(&lua).unwrap();
        lua.globals().set("cmsgpack", lib).unwrap();
        lua
    }

    /// `cmsgpack.unpack` called from Lua (as scripts call it): the error
    /// message, or how many values it returned.
    fn unpack_outcome(lua: &Lua, input: &[u8]) -> Result<i64, String> {
        // Not under `pcall`: Lua 5.1's `pcall` pushes past the API's limit
        // after many results, which a debug build's API checks abort on.
        let f: mlua::Function = lua
            .load("return function(s) return select('#', cmsgpack.unpack(s)) end")
            .eval()
            .unwrap();
        f.call::<i64>(lua.create_string(input).unwrap())
            .map_err(|e| e.to_string())
    }

    fn unpack_error(lua: &Lua, input: &[u8]) -> String {
        match unpack_outcome(lua, input) {
            Ok(n) => panic!("decoded {n} values"),
            Err(e) => e,
        }
    }

    #[test]
    fn length_prefixes_past_the_input_fail_without_allocating() {
        let lua = lua();
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for first in [0xdb, 0xdd, 0xdf] {
            let mut v = vec![first, 0xff, 0xff, 0xff, 0xff];
            v.extend_from_slice(b"0123456789");
            inputs.push(v);
        }
        inputs.push(vec![0xda, 0xff, 0xff, b'x']);
        inputs.push(vec![0xd9, 0xff]);
        for input in inputs {
            let before = lua.used_memory();
            let e = unpack_error(&lua, &input);
            assert!(e.contains("Missing bytes in input."), "{e}");
            assert!(lua.used_memory() < before + 64 * 1024);
        }
    }

    #[test]
    fn deep_nesting_stops_at_the_lua_stack_limit() {
        let lua = lua();
        for (open, what) in [
            (&[0x91u8][..], "mp_decode_to_lua_array"),
            (&[0x81, 0x01][..], "too many return values"),
            (&[0x81][..], "too many return values"),
            (&[0xdc, 0x00, 0x01][..], "mp_decode_to_lua_array"),
        ] {
            let input = open.repeat(100_000);
            let e = unpack_error(&lua, &input);
            assert!(e.contains("stack overflow") && e.contains(what), "{e}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let lua = lua();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for round in 0..20_000 {
            let len = round % 40;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect();
            let _ = unpack_outcome(&lua, &bytes);
        }
    }

    #[test]
    fn errors_after_many_values_under_pcall_do_not_abort() {
        let lua = lua();
        let f: mlua::Function = lua
            .load("return function(s) local ok, e = pcall(cmsgpack.unpack, s) return e end")
            .eval()
            .unwrap();
        for tail in [&b"\xcc"[..], b"\xc1"] {
            let mut input = vec![1u8; 100];
            input.extend_from_slice(tail);
            let e: String = f.call(lua.create_string(&input).unwrap()).unwrap();
            assert!(e.ends_with("in input."), "{e}");
        }
    }

    #[test]
    fn thousands_of_values_come_back_without_reference_slots() {
        let lua = lua();
        let mut input = Vec::new();
        for _ in 0..7999 {
            input.extend_from_slice(b"\xa1x");
        }
        assert_eq!(unpack_outcome(&lua, &input), Ok(7999));
        input.extend_from_slice(b"\xa1x");
        assert!(unpack_outcome(&lua, &input)
            .unwrap_err()
            .contains("stack overflow (too many return values"));
    }

    #[test]
    fn a_table_holding_itself_stops_at_the_output_limit() {
        let lua = lua();
        let t: Table = lua
            .load("local t = {} for i = 1, 100 do t[i] = t end return t")
            .eval()
            .unwrap();
        let mut packer = Packer {
            lua: &lua,
            out: Vec::new(),
            limit: 1 << 20,
        };
        let e = packer.encode(&Value::Table(t), 0).unwrap_err();
        assert!(e.to_string().contains("output too large"), "{e}");
        assert!(packer.out.len() < (1 << 20) + 16);
        let big: Table = lua
            .load("local s = string.rep('x', 300000) return {s, s, s, s, s}")
            .eval()
            .unwrap();
        packer.out.clear();
        assert!(packer.encode(&Value::Table(big), 0).is_err());
        assert!(packer.out.len() < (1 << 20) + 16);
    }

    #[test]
    fn pack_round_trips_through_unpack() {
        let lua = lua();
        let ok: bool = lua
            .load(
                r#"
                local a, b, c, d = cmsgpack.unpack(cmsgpack.pack(-129, 'x', {1, {2}}, 1.5))
                return a == -129 and b == 'x' and c[2][1] == 2 and d == 1.5
                "#,
            )
            .eval()
            .unwrap();
        assert!(ok);
    }
}
