//! The `struct` library Redis gives scripts (`struct.pack`, `struct.unpack`,
//! `struct.size`): binary packing driven by a format string, with the sizes,
//! alignment rules and error messages of the library Redis bundles, on x86-64
//! (native little-endian, `long` of 8 bytes, maximum alignment 8).
//!
//! Format: `<` `>` little/big endian, `!n` maximum alignment (power of 2, default
//! 8), `b/B` `h/H` `l/L` `T` `i/In` signed/unsigned integers of 1, 2, 8, 8 and n
//! (default 4, at most 32) bytes, `f` float, `d` double, `s` zero-terminated
//! string, `cn` n-byte string (`c0`: the whole string when packing, the previous
//! unpacked number's length when unpacking), `x` a zero byte; spaces are ignored.

use mlua::{Lua, MultiValue, Table, Value, Variadic};

use super::{bad_arg, number_arg, script_raise};

const MAX_INT_SIZE: usize = 32;
const MAX_ALIGN: usize = 8;

/// The `struct` table.
pub fn library(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "pack",
        lua.create_function(|lua, args: Variadic<Value>| {
            pack(lua, &args).and_then(|b| lua.create_string(&b))
        })?,
    )?;
    t.set(
        "unpack",
        lua.create_function(|lua, args: Variadic<Value>| {
            unpack(lua, &args).map(MultiValue::from_iter)
        })?,
    )?;
    t.set(
        "size",
        lua.create_function(|lua, args: Variadic<Value>| size(lua, &args))?,
    )?;
    Ok(t)
}

#[derive(Clone, Copy, PartialEq)]
enum Endian {
    Little,
    Big,
}

/// A format string being read: position, byte order and alignment in force.
struct Format<'a> {
    fmt: &'a [u8],
    at: usize,
    endian: Endian,
    align: usize,
    func: &'static str,
}

impl<'a> Format<'a> {
    fn new(fmt: &'a [u8], func: &'static str) -> Self {
        Format {
            fmt,
            at: 0,
            endian: Endian::Little,
            align: 1,
            func,
        }
    }

    fn next_option(&mut self) -> Option<u8> {
        let opt = *self.fmt.get(self.at)?;
        self.at += 1;
        Some(opt)
    }

    /// A decimal count following an option, or `default` when there is none.
    fn number(&mut self, lua: &Lua, default: usize) -> mlua::Result<usize> {
        let mut n: usize = 0;
        let mut any = false;
        while let Some(&d) = self.fmt.get(self.at).filter(|d| d.is_ascii_digit()) {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(usize::from(d - b'0')))
                .filter(|&n| n <= i32::MAX as usize)
                .ok_or_else(|| script_raise(lua, "integral size overflow"))?;
            self.at += 1;
            any = true;
        }
        Ok(if any { n } else { default })
    }

    /// The size of option `opt` (reading its count), 0 for options with none.
    fn size_of(&mut self, lua: &Lua, opt: u8) -> mlua::Result<usize> {
        Ok(match opt {
            b'b' | b'B' | b'x' => 1,
            b'h' | b'H' => 2,
            b'l' | b'L' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.number(lua, 1)?,
            b'i' | b'I' => {
                let n = self.number(lua, 4)?;
                if n > MAX_INT_SIZE {
                    return Err(script_raise(
                        lua,
                        &format!("integral size {n} is larger than limit of {MAX_INT_SIZE}"),
                    ));
                }
                n
            }
            _ => 0,
        })
    }

    /// Padding before an element of `size` at offset `len`.
    fn padding(&self, len: usize, opt: u8, size: usize) -> usize {
        if size == 0 || opt == b'c' {
            return 0;
        }
        let size = size.min(self.align);
        (size.wrapping_sub(len & (size - 1))) & (size - 1)
    }

    /// `<`, `>`, `!n` and spaces; anything else is an invalid option.
    fn control(&mut self, lua: &Lua, opt: u8) -> mlua::Result<()> {
        match opt {
            b' ' => {}
            b'<' => self.endian = Endian::Little,
            b'>' => self.endian = Endian::Big,
            b'!' => {
                let a = self.number(lua, MAX_ALIGN)?;
                if !a.is_power_of_two() {
                    return Err(script_raise(
                        lua,
                        &format!("alignment {a} is not a power of 2"),
                    ));
                }
                self.align = a;
            }
            _ => {
                let msg = format!("invalid format option '{}'", opt as char);
                return Err(bad_arg(lua, 1, self.func, &msg));
            }
        }
        Ok(())
    }
}

fn string_arg(lua: &Lua, args: &[Value], i: usize, func: &str) -> mlua::Result<Vec<u8>> {
    let v = args.get(i - 1);
    let s = match v {
        Some(v @ (Value::String(_) | Value::Integer(_) | Value::Number(_))) => {
            lua.coerce_string(v.clone())?.map(|s| s.as_bytes().to_vec())
        }
        _ => None,
    };
    s.ok_or_else(|| {
        let got = super::lua_type_name(v);
        bad_arg(lua, i, func, &format!("string expected, got {got}"))
    })
}

fn int_bytes(value: u64, size: usize, endian: Endian) -> Vec<u8> {
    let mut v = value;
    let mut bytes: Vec<u8> = (0..size)
        .map(|_| {
            let b = (v & 0xff) as u8;
            v = v.checked_shr(8).unwrap_or(0);
            b
        })
        .collect();
    if endian == Endian::Big {
        bytes.reverse();
    }
    bytes
}

fn pack(lua: &Lua, args: &[Value]) -> mlua::Result<Vec<u8>> {
    // The library keeps a nil after its arguments on the stack, so the first
    // missing value reads as nil ("got nil", not "got no value").
    let mut args = args.to_vec();
    args.push(Value::Nil);
    let args = args.as_slice();
    let fmt = string_arg(lua, args, 1, "pack")?;
    let mut f = Format::new(&fmt, "pack");
    let mut out = Vec::new();
    let mut arg = 2;
    while let Some(opt) = f.next_option() {
        let mut size = f.size_of(lua, opt)?;
        let pad = f.padding(out.len(), opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = number_arg(lua, args, arg, "pack")?;
                arg += 1;
                let value = if n < 0.0 { n as i64 as u64 } else { n as u64 };
                out.extend(int_bytes(value, size, f.endian));
            }
            b'x' => out.push(0),
            b'f' => {
                let n = number_arg(lua, args, arg, "pack")? as f32;
                arg += 1;
                out.extend(match f.endian {
                    Endian::Little => n.to_le_bytes(),
                    Endian::Big => n.to_be_bytes(),
                });
            }
            b'd' => {
                let n = number_arg(lua, args, arg, "pack")?;
                arg += 1;
                out.extend(match f.endian {
                    Endian::Little => n.to_le_bytes(),
                    Endian::Big => n.to_be_bytes(),
                });
            }
            b'c' | b's' => {
                let s = string_arg(lua, args, arg, "pack")?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // The library reports the argument after the string.
                    return Err(bad_arg(lua, arg, "pack", "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => f.control(lua, opt)?,
        }
    }
    Ok(out)
}

fn unpack(lua: &Lua, args: &[Value]) -> mlua::Result<Vec<Value>> {
    let fmt = string_arg(lua, args, 1, "unpack")?;
    let data = string_arg(lua, args, 2, "unpack")?;
    let start = match args.get(2) {
        None | Some(Value::Nil) => 1,
        Some(_) => number_arg(lua, args, 3, "unpack")? as i64,
    };
    if start <= 0 {
        return Err(bad_arg(lua, 3, "unpack", "offset must be 1 or greater"));
    }
    let mut pos = (start - 1) as usize;
    let mut f = Format::new(&fmt, "unpack");
    let mut out: Vec<Value> = Vec::new();
    let too_short = || bad_arg(lua, 2, "unpack", "data string too short");
    while let Some(opt) = f.next_option() {
        let mut size = f.size_of(lua, opt)?;
        pos += f.padding(pos, opt, size);
        if size > data.len() || pos > data.len() - size {
            return Err(too_short());
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let mut bytes = data[pos..pos + size].to_vec();
                if f.endian == Endian::Little {
                    bytes.reverse();
                }
                let mut v: u64 = 0;
                for b in bytes {
                    v = v.checked_shl(8).unwrap_or(0) | u64::from(b);
                }
                let n = if opt.is_ascii_lowercase() {
                    let mask = u64::MAX.checked_shl((size * 8 - 1) as u32).unwrap_or(0);
                    if v & mask != 0 {
                        v |= mask;
                    }
                    v as i64 as f64
                } else {
                    v as f64
                };
                out.push(Value::Number(n));
            }
            b'x' => {}
            b'f' => {
                let b: [u8; 4] = data[pos..pos + 4].try_into().map_err(|_| too_short())?;
                let n = match f.endian {
                    Endian::Little => f32::from_le_bytes(b),
                    Endian::Big => f32::from_be_bytes(b),
                };
                out.push(Value::Number(f64::from(n)));
            }
            b'd' => {
                let b: [u8; 8] = data[pos..pos + 8].try_into().map_err(|_| too_short())?;
                let n = match f.endian {
                    Endian::Little => f64::from_le_bytes(b),
                    Endian::Big => f64::from_be_bytes(b),
                };
                out.push(Value::Number(n));
            }
            b'c' => {
                if size == 0 {
                    size = match out.pop() {
                        Some(Value::Number(n)) => c_size(n),
                        Some(Value::Integer(n)) => c_size(n as f64),
                        _ => return Err(script_raise(lua, "format 'c0' needs a previous size")),
                    };
                    if size > data.len() || pos > data.len() - size {
                        return Err(too_short());
                    }
                }
                out.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(len) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err(script_raise(lua, "unfinished string in data"));
                };
                out.push(Value::String(lua.create_string(&data[pos..pos + len])?));
                size = len + 1;
            }
            _ => f.control(lua, opt)?,
        }
        pos += size;
    }
    out.push(Value::Integer(pos as i64 + 1));
    Ok(out)
}

/// A `c0` length read from the data, as the C library converts it to `size_t`:
/// a negative (or NaN) length becomes one far past any data, so it is "too
/// short", not empty.
fn c_size(n: f64) -> usize {
    if n >= 0.0 && n < usize::MAX as f64 {
        n as usize
    } else {
        usize::MAX
    }
}

fn size(lua: &Lua, args: &[Value]) -> mlua::Result<i64> {
    let fmt = string_arg(lua, args, 1, "size")?;
    let mut f = Format::new(&fmt, "size");
    let mut pos = 0;
    while let Some(opt) = f.next_option() {
        let size = f.size_of(lua, opt)?;
        pos += f.padding(pos, opt, size);
        if opt == b's' {
            return Err(bad_arg(lua, 1, "size", "option 's' has no fixed size"));
        }
        if opt == b'c' && size == 0 {
            return Err(bad_arg(lua, 1, "size", "option 'c0' has no fixed size"));
        }
        if !opt.is_ascii_alphanumeric() {
            f.control(lua, opt)?;
        }
        pos += size;
    }
    Ok(pos as i64)
}
