//! The read-only sandbox scripts run in, as Redis 7's (see `sandbox.lua` for the
//! proxies). Here: the base functions that see past metatables, replaced by
//! versions that look through a proxy and refuse to write into it, and Redis's
//! `pcall`, which hands a caught `{err=...}` error over as its message.
//!
//! They are Rust (C functions to Lua) rather than Lua so that a script that
//! tail-calls them (`return rawset(...)`) keeps its frame: their errors then
//! carry the script's line, as the C originals' do. `table.insert`, called in
//! loops, is a plain C function on the raw Lua API.

use std::ffi::{c_int, CStr};

use mlua::{ffi, Function, Lua, MultiValue, Table, Value, Variadic};

use super::{bad_arg, lua_type_name, script_raise, CallFailed};

/// What Lua 5.1's read-only tables (Redis's patch) answer to a write.
pub(super) const READONLY: &str = "Attempt to modify a readonly table";
const READONLY_C: &CStr = c"Attempt to modify a readonly table";

/// An error Lua raises without a position in its message (a write to a
/// read-only table, `table index is nil`, `invalid key to 'next'`): the reply is
/// `ERR` and the message, with the script line after the SHA; `pcall` sees the
/// bare message.
#[derive(Debug)]
pub(super) struct Raised {
    pub msg: String,
    pub at: usize,
}

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Raised {}

fn raise(lua: &Lua, msg: &str) -> mlua::Error {
    let at = lua
        .inspect_stack(1, |d| d.current_line())
        .flatten()
        .unwrap_or(0);
    mlua::Error::external(Raised {
        msg: msg.to_string(),
        at,
    })
}

/// The proxies' bookkeeping, shared with `sandbox.lua`: `real_of[proxy]` is the
/// table a proxy stands for; `shown[metatable]` what `getmetatable` shows for a
/// metatable of the sandbox's (`false`: nothing).
#[derive(Clone)]
pub(super) struct Proxies {
    pub real_of: Table,
    pub shown: Table,
}

impl Proxies {
    fn real(&self, t: &Table) -> mlua::Result<Option<Table>> {
        self.real_of.raw_get(t)
    }
}

/// Argument `i` (from 1) as a table, or `luaL_checktype`'s error.
fn table_arg(lua: &Lua, args: &[Value], i: usize, name: &str) -> mlua::Result<Table> {
    match args.get(i - 1) {
        Some(Value::Table(t)) => Ok(t.clone()),
        v => Err(bad_arg(
            lua,
            i,
            name,
            &format!("table expected, got {}", lua_type_name(v)),
        )),
    }
}

/// `luaL_checkany`.
fn any_arg(lua: &Lua, args: &[Value], i: usize, name: &str) -> mlua::Result<Value> {
    args.get(i - 1)
        .cloned()
        .ok_or_else(|| bad_arg(lua, i, name, "value expected"))
}

/// The first line of a Lua error raised by an original function called from
/// here (its message, without mlua's traceback).
fn message(e: &mlua::Error) -> String {
    let text = match e {
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => return message(cause),
        other => other.to_string(),
    };
    text.lines().next().unwrap_or_default().to_string()
}

/// `table.insert` as Lua 5.1's, refusing to write into a proxy.
///
/// A C function on the raw Lua API, not a Lua or mlua one: scripts call it in
/// loops (a Lua wrapper doubled its cost, an mlua callback costs more), and as
/// a C function its argument errors carry the calling script's line.
///
/// # Safety
///
/// Called by Lua only. Lua errors leave it by `longjmp`, so nothing here may
/// need dropping.
unsafe extern "C-unwind" fn table_insert(l: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
    let mut end = (ffi::lua_objlen(l, 1) as c_int).wrapping_add(1);
    let args = ffi::lua_gettop(l);
    let pos = match args {
        2 => end,
        3 => {
            // luaL_checkint: the integer, cut to an int as C does.
            let pos = ffi::luaL_checkinteger(l, 2) as c_int;
            end = end.max(pos);
            pos
        }
        _ => return ffi::luaL_error(l, c"wrong number of arguments to 'insert'".as_ptr()),
    };
    // The function's environment is `real_of` (see `insert_function`).
    ffi::lua_pushvalue(l, 1);
    let proxy = ffi::lua_rawget(l, ffi::LUA_ENVIRONINDEX) != ffi::LUA_TNIL;
    ffi::lua_pop(l, 1);
    if proxy {
        ffi::lua_pushstring(l, READONLY_C.as_ptr());
        ffi::lua_error(l);
    }
    // Move t[pos..end-1] up by one (`pos < i`, so `i - 1` cannot overflow).
    let mut i = end;
    while i > pos {
        ffi::lua_rawgeti_(l, 1, i - 1);
        ffi::lua_rawseti_(l, 1, i);
        i -= 1;
    }
    ffi::lua_rawseti_(l, 1, pos);
    0
}

/// `table.insert` for the sandbox (see [`table_insert`]).
pub(super) fn insert_function(lua: &Lua, proxies: &Proxies) -> mlua::Result<Function> {
    // SAFETY: `table_insert` follows the Lua C API's rules for a C function.
    let insert = unsafe { lua.create_c_function(table_insert) }?;
    // Its environment (a C function's own table, which scripts cannot reach:
    // getfenv is gone) is `real_of`, read there by `table_insert` without a
    // string key to intern. mlua sets environments of Lua functions only.
    // SAFETY: the stack holds the function and the table, and `lua_setfenv`
    // pops the table into the function's environment.
    unsafe {
        lua.exec_raw::<()>((&insert, &proxies.real_of), |state| {
            ffi::lua_setfenv(state, -2);
            ffi::lua_pop(state, 1);
        })?;
    }
    Ok(insert)
}

/// The replaced base functions, by global name.
pub(super) fn base_functions(lua: &Lua, proxies: &Proxies) -> mlua::Result<Table> {
    let g = lua.globals();
    let raw_getmetatable: Function = g.get("getmetatable")?;
    let raw_setmetatable: Function = g.get("setmetatable")?;
    let raw_next: Function = g.get("next")?;
    let raw_ipairs: Function = g.get("ipairs")?;
    let out = lua.create_table()?;

    let p = proxies.clone();
    out.set(
        "getmetatable",
        lua.create_function(move |lua, args: Variadic<Value>| {
            let v = any_arg(lua, &args, 1, "getmetatable")?;
            let mt: Value = raw_getmetatable.call(v)?;
            Ok(match p.shown.raw_get::<Value>(&mt)? {
                Value::Nil => mt,
                Value::Boolean(false) => Value::Nil,
                shown => shown,
            })
        })?,
    )?;

    let p = proxies.clone();
    out.set(
        "setmetatable",
        lua.create_function(move |lua, args: Variadic<Value>| {
            let t = table_arg(lua, &args, 1, "setmetatable")?;
            let mt = match args.get(1) {
                Some(v @ (Value::Nil | Value::Table(_))) => v.clone(),
                _ => return Err(bad_arg(lua, 2, "setmetatable", "nil or table expected")),
            };
            if p.real(&t)?.is_some() {
                return Err(raise(lua, READONLY));
            }
            // What can still fail is a protected metatable.
            raw_setmetatable
                .call::<Value>((&t, mt))
                .map_err(|e| script_raise(lua, &message(&e)))?;
            Ok(t)
        })?,
    )?;

    let p = proxies.clone();
    out.set(
        "rawget",
        lua.create_function(move |lua, args: Variadic<Value>| {
            let t = table_arg(lua, &args, 1, "rawget")?;
            let k = any_arg(lua, &args, 2, "rawget")?;
            p.real(&t)?.unwrap_or(t).raw_get::<Value>(k)
        })?,
    )?;

    let p = proxies.clone();
    out.set(
        "rawset",
        lua.create_function(move |lua, args: Variadic<Value>| {
            let t = table_arg(lua, &args, 1, "rawset")?;
            let k = any_arg(lua, &args, 2, "rawset")?;
            let v = any_arg(lua, &args, 3, "rawset")?;
            if p.real(&t)?.is_some() {
                return Err(raise(lua, READONLY));
            }
            match k {
                Value::Nil => return Err(raise(lua, "table index is nil")),
                Value::Number(n) if n.is_nan() => return Err(raise(lua, "table index is NaN")),
                _ => {}
            }
            t.raw_set(k, v)?;
            Ok(t)
        })?,
    )?;

    let p = proxies.clone();
    let next_raw = raw_next.clone();
    let next = lua.create_function(move |lua, args: Variadic<Value>| {
        let t = table_arg(lua, &args, 1, "next")?;
        let k = args.get(1).cloned().unwrap_or(Value::Nil);
        next_raw
            .call::<MultiValue>((p.real(&t)?.unwrap_or(t), k))
            .map_err(|e| raise(lua, &message(&e)))
    })?;
    out.set("next", &next)?;

    let p = proxies.clone();
    out.set(
        "pairs",
        lua.create_function(move |lua, args: Variadic<Value>| {
            let t = table_arg(lua, &args, 1, "pairs")?;
            let iter = if p.real(&t)?.is_some() {
                &next
            } else {
                &raw_next
            };
            Ok((iter.clone(), t, Value::Nil))
        })?,
    )?;

    let p = proxies.clone();
    let proxy_inext = lua.create_function(move |_, (t, i): (Table, i64)| {
        let i = i.saturating_add(1);
        let v: Value = match p.real(&t)? {
            Some(real) => real.raw_get(i)?,
            None => Value::Nil,
        };
        Ok(match v {
            Value::Nil => MultiValue::new(),
            v => MultiValue::from_iter([Value::Integer(i), v]),
        })
    })?;
    let p = proxies.clone();
    out.set(
        "ipairs",
        lua.create_function(move |lua, args: Variadic<Value>| {
            let t = table_arg(lua, &args, 1, "ipairs")?;
            if p.real(&t)?.is_some() {
                return Ok(MultiValue::from_iter([
                    Value::Function(proxy_inext.clone()),
                    Value::Table(t),
                    Value::Integer(0),
                ]));
            }
            raw_ipairs.call::<MultiValue>(t)
        })?,
    )?;

    out.set("pcall", pcall_function(lua)?)?;
    Ok(out)
}

/// Redis's `pcall`: Lua's, except that a caught error table with an `err`
/// field hands over the field (so `redis.call`'s errors arrive as their
/// message), and a caught error from our Rust functions its message (see
/// [`caught`], kept in the function's environment). A C function on the raw
/// Lua API: an mlua callback around Lua's `pcall` cost 3,000 instructions
/// more per call.
///
/// # Safety
///
/// Called by Lua only. Lua errors leave it by `longjmp`, so nothing here may
/// need dropping.
unsafe extern "C-unwind" fn redis_pcall(l: *mut ffi::lua_State) -> c_int {
    let args = ffi::lua_gettop(l);
    if args == 0 {
        // Redis's pcall calls its own result slot when given nothing.
        ffi::lua_pushboolean(l, 0);
        ffi::lua_pushstring(l, c"attempt to call a boolean value".as_ptr());
        return 2;
    }
    if ffi::lua_pcall(l, args - 1, ffi::LUA_MULTRET, 0) == ffi::LUA_OK {
        ffi::lua_pushboolean(l, 1);
        ffi::lua_insert(l, 1);
        return ffi::lua_gettop(l);
    }
    // The error value is alone on the stack.
    match ffi::lua_type(l, -1) {
        ffi::LUA_TTABLE => {
            ffi::lua_getfield(l, -1, c"err".as_ptr());
            if ffi::lua_isstring(l, -1) != 0 {
                ffi::lua_replace(l, -2);
            } else {
                ffi::lua_pop(l, 1);
            }
        }
        ffi::LUA_TUSERDATA => {
            // An error raised from Rust (or a panic, which mlua resumes when
            // `caught` receives it).
            ffi::lua_rawgeti_(l, ffi::LUA_ENVIRONINDEX, 1);
            ffi::lua_insert(l, -2);
            ffi::lua_call(l, 1, 1);
        }
        _ => {}
    }
    ffi::lua_pushboolean(l, 0);
    ffi::lua_insert(l, 1);
    2
}

/// `pcall` for the sandbox (see [`redis_pcall`]).
fn pcall_function(lua: &Lua) -> mlua::Result<Function> {
    // SAFETY: `redis_pcall` follows the Lua C API's rules for a C function.
    let pcall = unsafe { lua.create_c_function(redis_pcall) }?;
    let env = lua.create_sequence_from([lua.create_function(caught)?])?;
    // SAFETY: as in `insert_function`.
    unsafe {
        lua.exec_raw::<()>((&pcall, env), |state| {
            ffi::lua_setfenv(state, -2);
            ffi::lua_pop(state, 1);
        })?;
    }
    Ok(pcall)
}

/// The message of an error raised by our Rust functions, as `pcall` hands it
/// to the script.
fn caught(lua: &Lua, e: Value) -> mlua::Result<Value> {
    Ok(match e {
        Value::Error(err) => Value::String(lua.create_string(error_text(&err))?),
        other => other,
    })
}

/// The message of an error raised from Rust, as a script's `pcall` sees it.
fn error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => error_text(cause),
        mlua::Error::ExternalError(inner) => {
            if let Some(c) = inner.downcast_ref::<CallFailed>() {
                c.line.clone()
            } else {
                inner.to_string()
            }
        }
        other => message(other),
    }
}
