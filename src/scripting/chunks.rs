//! Scripts load source text only, never precompiled bytecode: Lua 5.1's
//! bytecode loader trusts its input, so a crafted `string.dump` could corrupt
//! the server's memory. Redis's Lua has the loader removed and parses such a
//! chunk as text, which fails on its first byte (ESC); the EVAL body,
//! `loadstring` and `load` here answer the same way.

use mlua::{Function, Lua, MultiValue, Table, Value};

/// What Lua's parser says of a chunk starting with ESC, after the chunk's name.
const REFUSED: &str = ":1: unexpected symbol near 'char(27)'";

/// Whether `chunk` would be taken for bytecode.
pub fn is_binary(chunk: &[u8]) -> bool {
    chunk.first() == Some(&0x1b)
}

/// The error message Redis gives for a binary chunk named `name` (Lua's
/// `luaO_chunkid` of it).
pub fn refusal(name: &[u8]) -> Vec<u8> {
    let name = name.split(|&b| b == 0).next().unwrap_or_default();
    let mut out = Vec::new();
    match name.first() {
        Some(b'=') => out.extend_from_slice(&name[1..name.len().min(60)]),
        Some(b'@') => {
            let file = &name[1..];
            if file.len() > 52 {
                out.extend_from_slice(b"...");
                out.extend_from_slice(&file[file.len() - 52..]);
            } else {
                out.extend_from_slice(file);
            }
        }
        _ => {
            let line = name
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')
                .unwrap_or(name.len())
                .min(43);
            out.extend_from_slice(b"[string \"");
            out.extend_from_slice(&name[..line]);
            if line < name.len() {
                out.extend_from_slice(b"...");
            }
            out.extend_from_slice(b"\"]");
        }
    }
    out.extend_from_slice(REFUSED.as_bytes());
    out
}

/// Replaces `loadstring` and `load` in `globals` with text-only ones.
pub fn guard(lua: &Lua, globals: &Table) -> mlua::Result<()> {
    let loadstring: Function = globals.raw_get("loadstring")?;
    let guarded = lua.create_function(move |lua, args: MultiValue| {
        if let Some(Value::String(chunk)) = args.front() {
            if is_binary(&chunk.as_bytes()) {
                let name = match args.get(1) {
                    Some(Value::String(n)) => n.as_bytes().to_vec(),
                    _ => chunk.as_bytes().to_vec(),
                };
                return refuse(lua, &name);
            }
        }
        loadstring.call::<MultiValue>(args)
    })?;
    globals.raw_set("loadstring", guarded)?;
    let load: Function = globals.raw_get("load")?;
    let guarded = lua.create_function(move |lua, mut args: MultiValue| {
        let Some(Value::Function(reader)) = args.front().cloned() else {
            return load.call::<MultiValue>(args);
        };
        // The first piece decides: read it here, hand it back first.
        let first: Value = reader.call(())?;
        if let Value::String(piece) = &first {
            if is_binary(&piece.as_bytes()) {
                let name = match args.get(1) {
                    Some(Value::String(n)) => n.as_bytes().to_vec(),
                    _ => b"=(load)".to_vec(),
                };
                return refuse(lua, &name);
            }
        }
        let mut pending = Some(first);
        let replay = lua.create_function_mut(move |_, ()| match pending.take() {
            Some(v) => Ok(v),
            None => reader.call::<Value>(()),
        })?;
        if let Some(f) = args.front_mut() {
            *f = Value::Function(replay);
        }
        load.call::<MultiValue>(args)
    })?;
    globals.raw_set("load", guarded)
}

/// `nil` and the message, as `loadstring` fails.
fn refuse(lua: &Lua, name: &[u8]) -> mlua::Result<MultiValue> {
    let msg = lua.create_string(refusal(name))?;
    Ok(MultiValue::from_iter([Value::Nil, Value::String(msg)]))
}

#[cfg(test)]
mod tests {
    use super::refusal;

    #[test]
    fn a_dumped_chunk_is_named_as_lua_names_it() {
        assert_eq!(
            refusal(b"\x1bLuaQ\0\x01\x04"),
            b"[string \"\x1bLuaQ\"]:1: unexpected symbol near 'char(27)'".to_vec()
        );
        assert_eq!(
            refusal(b"=(load)"),
            b"(load):1: unexpected symbol near 'char(27)'".to_vec()
        );
    }
}
