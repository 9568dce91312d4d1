//! The read-only sandbox scripts run in, as Redis 7's (see `sandbox.lua` for the
//! proxies). Here: the base functions that see past metatables (`rawget`,
//! `rawset`, `next`, `pairs`, `getmetatable`, `setmetatable`, `table.insert`),
//! replaced by versions that look through a proxy and refuse to write into it,
//! and Redis's `pcall`, which hands a caught `{err=...}` error over as its
//! message.
//!
//! They are C functions written on the raw Lua API, as the originals are: a
//! script that tail-calls one (`return rawset(...)`) keeps its frame, so the
//! errors carry the script's line and the originals' texts; and scripts call
//! some of them in loops, where a Lua wrapper doubled the cost and an mlua
//! callback costs 3,000 instructions more. They share one environment table
//! (a C function's own table, which scripts cannot reach: `getfenv` is gone),
//! holding what they need at the `ENV_*` indexes.
//!
//! # Safety
//!
//! The `extern "C-unwind"` functions are called by Lua only, with the Lua C
//! API's rules. Lua errors leave them by `longjmp`, so nothing in them may need
//! dropping.

use std::ffi::{c_int, CStr};

use mlua::{ffi, Function, Lua, Table, Value};

use super::CallFailed;

/// What Lua 5.1's read-only tables (Redis's patch) answer to a write.
const READONLY_C: &CStr = c"Attempt to modify a readonly table";

/// The proxies' bookkeeping, shared with `sandbox.lua`: `real_of[proxy]` is the
/// table a proxy stands for; `shown[metatable]` what `getmetatable` shows for a
/// metatable of the sandbox's (`false`: nothing).
pub(super) struct Proxies {
    pub real_of: Table,
    pub shown: Table,
}

/// Indexes in the functions' environment table.
const ENV_REAL_OF: c_int = 1;
const ENV_SHOWN: c_int = 2;
/// Lua's own `next`, which `pairs` hands out for an ordinary table.
const ENV_RAW_NEXT: c_int = 3;
/// The `next` below, which `pairs` hands out for a proxy.
const ENV_NEXT: c_int = 4;
/// [`caught`], for `pcall`.
const ENV_CAUGHT: c_int = 5;

/// The table the table at `idx` (an absolute index) stands for, pushed; nil
/// for one that is not a proxy.
unsafe fn push_real(l: *mut ffi::lua_State, idx: c_int) -> bool {
    ffi::lua_rawgeti_(l, ffi::LUA_ENVIRONINDEX, ENV_REAL_OF);
    ffi::lua_pushvalue(l, idx);
    let found = ffi::lua_rawget(l, -2) != ffi::LUA_TNIL;
    ffi::lua_remove(l, -2);
    found
}

/// Raises the read-only error if argument 1 is a proxy. The message has no
/// position (the error handler adds the script line after the SHA), as the
/// patched Lua raises it from inside the C API.
unsafe fn refuse_proxy(l: *mut ffi::lua_State) {
    let proxy = push_real(l, 1);
    ffi::lua_pop(l, 1);
    if proxy {
        ffi::lua_pushstring(l, READONLY_C.as_ptr());
        ffi::lua_error(l);
    }
}

/// `rawget`, reading a proxy's table.
unsafe extern "C-unwind" fn rawget(l: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
    ffi::luaL_checkany(l, 2);
    ffi::lua_settop(l, 2);
    if push_real(l, 1) {
        ffi::lua_replace(l, 1);
    } else {
        ffi::lua_pop(l, 1);
    }
    ffi::lua_rawget(l, 1);
    1
}

/// `rawset`, refusing a proxy.
unsafe extern "C-unwind" fn rawset(l: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
    ffi::luaL_checkany(l, 2);
    ffi::luaL_checkany(l, 3);
    refuse_proxy(l);
    ffi::lua_settop(l, 3);
    ffi::lua_rawset(l, 1);
    1
}

/// `next`, walking a proxy's table.
unsafe extern "C-unwind" fn next(l: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
    ffi::lua_settop(l, 2);
    if push_real(l, 1) {
        ffi::lua_replace(l, 1);
    } else {
        ffi::lua_pop(l, 1);
    }
    if ffi::lua_next(l, 1) != 0 {
        2
    } else {
        ffi::lua_pushnil(l);
        1
    }
}

/// `pairs`: Lua's `next` for an ordinary table, the `next` above for a proxy.
unsafe extern "C-unwind" fn pairs(l: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
    let proxy = push_real(l, 1);
    ffi::lua_pop(l, 1);
    let iter = if proxy { ENV_NEXT } else { ENV_RAW_NEXT };
    ffi::lua_rawgeti_(l, ffi::LUA_ENVIRONINDEX, iter);
    ffi::lua_pushvalue(l, 1);
    ffi::lua_pushnil(l);
    3
}

/// `getmetatable`: what the sandbox shows for its own metatables.
unsafe extern "C-unwind" fn getmetatable(l: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checkany(l, 1);
    if ffi::lua_getmetatable(l, 1) == 0 {
        ffi::lua_pushnil(l);
        return 1;
    }
    if ffi::luaL_getmetafield(l, 1, c"__metatable".as_ptr()) != ffi::LUA_TNIL {
        return 1;
    }
    // The metatable is on top: look it up in `shown`.
    ffi::lua_rawgeti_(l, ffi::LUA_ENVIRONINDEX, ENV_SHOWN);
    ffi::lua_pushvalue(l, -2);
    match ffi::lua_rawget(l, -2) {
        ffi::LUA_TNIL => ffi::lua_pop(l, 2),
        ffi::LUA_TBOOLEAN => ffi::lua_pushnil(l),
        _ => {}
    }
    1
}

/// `setmetatable`, refusing a proxy.
unsafe extern "C-unwind" fn setmetatable(l: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
    let t = ffi::lua_type(l, 2);
    if t != ffi::LUA_TNIL && t != ffi::LUA_TTABLE {
        return ffi::luaL_argerror(l, 2, c"nil or table expected".as_ptr());
    }
    if ffi::luaL_getmetafield(l, 1, c"__metatable".as_ptr()) != ffi::LUA_TNIL {
        return ffi::luaL_error(l, c"cannot change a protected metatable".as_ptr());
    }
    refuse_proxy(l);
    ffi::lua_settop(l, 2);
    ffi::lua_setmetatable(l, 1);
    1
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
    refuse_proxy(l);
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

/// Redis's `pcall`: Lua's, except that a caught error table with an `err`
/// field hands over the field (so `redis.call`'s errors arrive as their
/// message), and a caught error from our Rust functions its message (see
/// [`caught`]). An mlua callback around Lua's `pcall` cost 3,000
/// instructions more per call.
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
        // The call may have returned as many values as the stack holds: room
        // for the status first (Lua's checks abort a debug build otherwise).
        if ffi::lua_checkstack(l, 1) == 0 {
            ffi::lua_settop(l, 0);
            ffi::lua_pushstring(l, c"stack overflow (pcall results)".as_ptr());
            ffi::lua_error(l);
        }
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
            ffi::lua_rawgeti_(l, ffi::LUA_ENVIRONINDEX, ENV_CAUGHT);
            ffi::lua_insert(l, -2);
            ffi::lua_call(l, 1, 1);
        }
        _ => {}
    }
    ffi::lua_pushboolean(l, 0);
    ffi::lua_insert(l, 1);
    2
}

/// The replaced functions, by global name (`table.insert` as `insert`),
/// sharing one environment table.
pub(super) fn base_functions(lua: &Lua, proxies: &Proxies) -> mlua::Result<Table> {
    let raw_next: Function = lua.globals().get("next")?;
    let fns: [(&str, ffi::lua_CFunction); 8] = [
        ("rawget", rawget),
        ("rawset", rawset),
        ("next", next),
        ("pairs", pairs),
        ("getmetatable", getmetatable),
        ("setmetatable", setmetatable),
        ("pcall", redis_pcall),
        ("insert", table_insert),
    ];
    let out = lua.create_table()?;
    let env = lua.create_table()?;
    for (name, f) in fns {
        // SAFETY: each follows the Lua C API's rules for a C function.
        let f = unsafe { lua.create_c_function(f) }?;
        // SAFETY: the stack holds the function and the table, and
        // `lua_setfenv` pops the table into the function's environment.
        unsafe {
            lua.exec_raw::<()>((&f, &env), |state| {
                ffi::lua_setfenv(state, -2);
                ffi::lua_pop(state, 1);
            })?;
        }
        if name == "next" {
            env.raw_set(ENV_NEXT, &f)?;
        }
        out.raw_set(name, f)?;
    }
    env.raw_set(ENV_REAL_OF, &proxies.real_of)?;
    env.raw_set(ENV_SHOWN, &proxies.shown)?;
    env.raw_set(ENV_RAW_NEXT, raw_next)?;
    env.raw_set(ENV_CAUGHT, lua.create_function(caught)?)?;
    Ok(out)
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
        mlua::Error::RuntimeError(m) => m.lines().next().unwrap_or_default().to_string(),
        other => other.to_string(),
    }
}
