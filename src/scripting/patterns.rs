//! Lua 5.1's pattern matcher (`string.find`, `match`, `gmatch`, `gsub`) recurses
//! on the C stack once per pattern item, with no limit of its own: a script
//! matching `string.rep('a?', 60000)` overflowed a 2 MiB worker stack and aborted
//! the whole server. Each of those functions is wrapped here: a long pattern runs
//! on a stack segment sized for it (the depth is at most the pattern's length),
//! and a pattern longer than Redis itself survives is refused with Lua 5.2's
//! words for it. Short patterns, the usual ones, run where they are.

use mlua::{Function, Lua, MultiValue, Table, Value};

/// Patterns up to this long run on the caller's stack: at most this many levels
/// of recursion, well inside what is left of any worker's stack.
const SHORT: usize = 256;
/// The longest pattern accepted. Redis (on its 8 MiB main stack) survives a
/// 300,000-byte pattern of optional items and crashes at 800,000.
pub const MAX_PATTERN: usize = 400_000;
/// Stack given to each byte of a long pattern: one level of `match` is a few
/// hundred bytes in a debug build, less in a release one.
const PER_BYTE: usize = 1024;
/// Room left for what the matcher calls (a `gsub` replacement function, errors).
const BASE: usize = 1024 * 1024;

/// Replaces the pattern functions of `string` with guarded ones.
pub fn guard(lua: &Lua, string: &Table) -> mlua::Result<()> {
    for name in ["find", "match", "gsub"] {
        let matcher: Function = string.raw_get(name)?;
        let guarded = lua.create_function(move |lua, args: MultiValue| {
            let len = pattern_len(&args);
            run(lua, len, || matcher.call::<MultiValue>(args))
        })?;
        string.raw_set(name, guarded)?;
    }
    // `gmatch` matches when its iterator is called: the iterator is guarded.
    let gmatch: Function = string.raw_get("gmatch")?;
    let guarded = lua.create_function(move |lua, args: MultiValue| {
        let len = pattern_len(&args);
        let next: Function = run(lua, len, || gmatch.call::<Function>(args))?;
        lua.create_function(move |lua, ()| run(lua, len, || next.call::<MultiValue>(())))
    })?;
    string.raw_set("gmatch", guarded)
}

/// The length of the pattern argument (the second), if it is a string or a
/// number Lua would turn into one.
fn pattern_len(args: &MultiValue) -> usize {
    match args.get(1) {
        Some(Value::String(s)) => s.as_bytes().len(),
        Some(Value::Integer(_) | Value::Number(_)) => 32,
        _ => 0,
    }
}

/// Runs `f` (a call into the matcher) with stack for a pattern of `len` bytes;
/// errors it raises come back with the script line in front, as when the script
/// calls the matcher directly.
fn run<R>(lua: &Lua, len: usize, f: impl FnOnce() -> mlua::Result<R>) -> mlua::Result<R> {
    if len > MAX_PATTERN {
        return Err(super::script_raise(lua, "pattern too complex"));
    }
    let result = if len <= SHORT {
        f()
    } else {
        let need = BASE + len * PER_BYTE;
        stacker::maybe_grow(need, need, f)
    };
    result.map_err(|e| match e {
        // The matcher's own errors (`malformed pattern`, `unfinished capture`)
        // name no line: the caller is this wrapper, not the script.
        mlua::Error::RuntimeError(msg)
            if !msg
                .strip_prefix(super::chunk_name(lua))
                .is_some_and(|r| r.starts_with(':')) =>
        {
            super::script_raise(lua, &msg)
        }
        other => other,
    })
}
