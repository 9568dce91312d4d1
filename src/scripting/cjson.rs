//! The `cjson` library Redis gives scripts: `cjson.encode`, `cjson.decode` and
//! `cjson.null`, with lua-cjson's output (numbers as `%.14g`, `/` escaped, empty
//! tables as `{}`, sparse arrays refused) and its error messages, so a script
//! sees the same text and the same errors as on Redis.

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

use super::script_raise;

/// Nesting lua-cjson allows by default, encoding and decoding.
const MAX_DEPTH: usize = 1000;

/// The `cjson` table.
pub fn library(lua: &Lua) -> mlua::Result<Table> {
    let cjson = lua.create_table()?;
    cjson.set(
        "encode",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(super::bad_arg(lua, 1, "encode", "expected 1 argument"));
            }
            let mut out = Vec::new();
            encode(lua, &args[0], 0, &mut out)?;
            lua.create_string(&out)
        })?,
    )?;
    cjson.set(
        "decode",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(super::bad_arg(lua, 1, "decode", "expected 1 argument"));
            }
            let text = match &args[0] {
                v @ (Value::String(_) | Value::Integer(_) | Value::Number(_)) => {
                    lua.coerce_string(v.clone())?.map(|s| s.as_bytes().to_vec())
                }
                _ => None,
            };
            let Some(text) = text else {
                let got = type_name(&args[0]);
                return Err(super::bad_arg(
                    lua,
                    1,
                    "decode",
                    &format!("string expected, got {got}"),
                ));
            };
            // lua-cjson's check: only the first character is sure to be ASCII, so
            // a NUL in the first two means UTF-16 or UTF-32.
            if text.len() >= 2 && (text[0] == 0 || text[1] == 0) {
                return Err(script_raise(
                    lua,
                    "JSON parser does not support UTF-16 or UTF-32",
                ));
            }
            Decoder::new(lua, &text).document()
        })?,
    )?;
    cjson.set("null", null())?;
    Ok(cjson)
}

/// `cjson.null`: a NULL light userdata, as lua-cjson's.
fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// A number as Lua prints it (`%.14g`), which is also lua-cjson's format.
fn number_text(lua: &Lua, n: f64) -> mlua::Result<Vec<u8>> {
    match lua.coerce_string(Value::Number(n))? {
        Some(s) => Ok(s.as_bytes().to_vec()),
        None => Ok(n.to_string().into_bytes()),
    }
}

/// Stack kept free before each level of nesting; below it `stacker` continues on
/// a fresh segment, so 1000 levels fit on any thread's stack.
const STACK_RED_ZONE: usize = 64 * 1024;
const STACK_SEGMENT: usize = 1024 * 1024;

fn encode(lua: &Lua, v: &Value, depth: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, || {
        encode_value(lua, v, depth, out)
    })
}

fn encode_value(lua: &Lua, v: &Value, depth: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(_) | Value::Number(_) => {
            let n = as_number(v).unwrap_or_default();
            if !n.is_finite() {
                return Err(script_raise(
                    lua,
                    "Cannot serialise number: must not be NaN or Inf",
                ));
            }
            out.extend_from_slice(&number_text(lua, n)?);
        }
        Value::String(s) => encode_string(&s.as_bytes(), out),
        Value::Table(t) => {
            if depth + 1 > MAX_DEPTH {
                return Err(script_raise(
                    lua,
                    &format!("Cannot serialise, excessive nesting ({})", depth + 1),
                ));
            }
            match array_length(lua, t)? {
                Some(len) if len > 0 => {
                    out.push(b'[');
                    for i in 1..=len {
                        if i > 1 {
                            out.push(b',');
                        }
                        encode(lua, &t.raw_get::<Value>(i)?, depth + 1, out)?;
                    }
                    out.push(b']');
                }
                _ => {
                    out.push(b'{');
                    let mut first = true;
                    for pair in t.pairs::<Value, Value>() {
                        let (k, val) = pair?;
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        match &k {
                            Value::String(s) => encode_string(&s.as_bytes(), out),
                            Value::Integer(_) | Value::Number(_) => {
                                out.push(b'"');
                                out.extend_from_slice(&number_text(
                                    lua,
                                    as_number(&k).unwrap_or_default(),
                                )?);
                                out.push(b'"');
                            }
                            other => {
                                return Err(script_raise(
                                    lua,
                                    &format!(
                                        "Cannot serialise {}: table key must be a number or string",
                                        type_name(other)
                                    ),
                                ))
                            }
                        }
                        out.push(b':');
                        encode(lua, &val, depth + 1, out)?;
                    }
                    out.push(b'}');
                }
            }
        }
        other => {
            return Err(script_raise(
                lua,
                &format!("Cannot serialise {}: type not supported", type_name(other)),
            ))
        }
    }
    Ok(())
}

/// lua-cjson's array test: `Some(max index)` when every key is a positive
/// integer, `None` for an object; an array with more than twice as many holes as
/// elements (and an index past 10) is refused.
fn array_length(lua: &Lua, t: &Table) -> mlua::Result<Option<usize>> {
    let (mut max, mut items) = (0f64, 0usize);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        match as_number(&k) {
            Some(n) if n >= 1.0 && n.floor() == n => {
                max = max.max(n);
                items += 1;
            }
            _ => return Ok(None),
        }
    }
    if max > 10.0 && max > (items * 2) as f64 {
        return Err(script_raise(
            lua,
            "Cannot serialise table: excessively sparse array",
        ));
    }
    Ok(Some(max as usize))
}

fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            8 => out.extend_from_slice(b"\\b"),
            9 => out.extend_from_slice(b"\\t"),
            10 => out.extend_from_slice(b"\\n"),
            12 => out.extend_from_slice(b"\\f"),
            13 => out.extend_from_slice(b"\\r"),
            0..=31 | 127 => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

/// A token of lua-cjson's lexer, with its name for error messages.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str(Vec<u8>),
    Number(f64),
    Boolean(bool),
    Null,
    Colon,
    Comma,
    End,
    /// A lexing error: its message stands where the token name would.
    Error(&'static str),
}

impl Token {
    fn name(&self) -> &'static str {
        match self {
            Token::ObjBegin => "T_OBJ_BEGIN",
            Token::ObjEnd => "T_OBJ_END",
            Token::ArrBegin => "T_ARR_BEGIN",
            Token::ArrEnd => "T_ARR_END",
            Token::Str(_) => "T_STRING",
            Token::Number(_) => "T_NUMBER",
            Token::Boolean(_) => "T_BOOLEAN",
            Token::Null => "T_NULL",
            Token::Colon => "T_COLON",
            Token::Comma => "T_COMMA",
            Token::End => "T_END",
            Token::Error(msg) => msg,
        }
    }
}

/// lua-cjson's decoder: a lexer over bytes and a recursive descent parser.
struct Decoder<'a> {
    lua: &'a Lua,
    text: &'a [u8],
    pos: usize,
    depth: usize,
    /// Where a string's lexing error is reported (lua-cjson reports the position
    /// it had reached, not the token's start).
    error_at: Option<usize>,
}

impl<'a> Decoder<'a> {
    fn new(lua: &'a Lua, text: &'a [u8]) -> Self {
        Decoder {
            lua,
            text,
            pos: 0,
            depth: 0,
            error_at: None,
        }
    }

    fn document(&mut self) -> mlua::Result<Value> {
        let (token, at) = self.next_token();
        let value = self.value(token, at)?;
        let (token, at) = self.next_token();
        if token != Token::End {
            return Err(self.expected("the end", &token, at));
        }
        Ok(value)
    }

    fn expected(&self, what: &str, found: &Token, at: usize) -> mlua::Error {
        script_raise(
            self.lua,
            &format!(
                "Expected {what} but found {} at character {}",
                found.name(),
                at + 1
            ),
        )
    }

    fn nest(&mut self, at: usize) -> mlua::Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(script_raise(
                self.lua,
                &format!(
                    "Found too many nested data structures ({}) at character {}",
                    self.depth,
                    at + 1
                ),
            ));
        }
        Ok(())
    }

    fn value(&mut self, token: Token, at: usize) -> mlua::Result<Value> {
        stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, || self.value_here(token, at))
    }

    fn value_here(&mut self, token: Token, at: usize) -> mlua::Result<Value> {
        Ok(match token {
            Token::Str(s) => Value::String(self.lua.create_string(&s)?),
            Token::Number(n) => Value::Number(n),
            Token::Boolean(b) => Value::Boolean(b),
            Token::Null => null(),
            Token::ObjBegin => self.object(at)?,
            Token::ArrBegin => self.array(at)?,
            other => return Err(self.expected("value", &other, at)),
        })
    }

    fn object(&mut self, at: usize) -> mlua::Result<Value> {
        self.nest(at)?;
        let t = self.lua.create_table()?;
        let (mut token, mut at) = self.next_token();
        if token == Token::ObjEnd {
            self.depth -= 1;
            return Ok(Value::Table(t));
        }
        loop {
            let Token::Str(key) = token else {
                return Err(self.expected("object key string", &token, at));
            };
            let (colon, colon_at) = self.next_token();
            if colon != Token::Colon {
                return Err(self.expected("colon", &colon, colon_at));
            }
            let (v, v_at) = self.next_token();
            let v = self.value(v, v_at)?;
            t.raw_set(self.lua.create_string(&key)?, v)?;
            let (next, next_at) = self.next_token();
            match next {
                Token::ObjEnd => {
                    self.depth -= 1;
                    return Ok(Value::Table(t));
                }
                Token::Comma => {}
                other => return Err(self.expected("comma or object end", &other, next_at)),
            }
            (token, at) = self.next_token();
        }
    }

    fn array(&mut self, at: usize) -> mlua::Result<Value> {
        self.nest(at)?;
        let t = self.lua.create_table()?;
        let (mut token, mut at) = self.next_token();
        if token == Token::ArrEnd {
            self.depth -= 1;
            return Ok(Value::Table(t));
        }
        for i in 1.. {
            let v = self.value(token, at)?;
            t.raw_set(i, v)?;
            let (next, next_at) = self.next_token();
            match next {
                Token::ArrEnd => break,
                Token::Comma => {}
                other => return Err(self.expected("comma or array end", &other, next_at)),
            }
            (token, at) = self.next_token();
        }
        self.depth -= 1;
        Ok(Value::Table(t))
    }

    /// The byte at `i`, or the NUL that ends lua-cjson's buffer.
    fn byte(&self, i: usize) -> u8 {
        self.text.get(i).copied().unwrap_or(0)
    }

    /// The next token and the byte offset where it starts.
    fn next_token(&mut self) -> (Token, usize) {
        while self
            .text
            .get(self.pos)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.pos += 1;
        }
        let at = self.pos;
        // lua-cjson reads a NUL-terminated buffer: a NUL ends the text.
        let c = self.byte(self.pos);
        if c == 0 {
            return (Token::End, at);
        }
        let single = match c {
            b'{' => Some(Token::ObjBegin),
            b'}' => Some(Token::ObjEnd),
            b'[' => Some(Token::ArrBegin),
            b']' => Some(Token::ArrEnd),
            b':' => Some(Token::Colon),
            b',' => Some(Token::Comma),
            _ => None,
        };
        if let Some(token) = single {
            self.pos += 1;
            return (token, at);
        }
        let token = match c {
            b'"' => self.string(),
            b'-' | b'0'..=b'9' => self.number(),
            _ => self.word(),
        };
        (token, self.error_at.take().unwrap_or(at))
    }

    fn word(&mut self) -> Token {
        let rest = &self.text[self.pos..];
        for (word, token) in [
            (&b"true"[..], Token::Boolean(true)),
            (b"false", Token::Boolean(false)),
            (b"null", Token::Null),
        ] {
            if rest.starts_with(word) {
                self.pos += word.len();
                return token;
            }
        }
        Token::Error("invalid token")
    }

    /// A number as Redis's lua-cjson reads it: no hex, then the longest prefix
    /// `strtod` accepts (leading zeros pass: `01` is 1).
    fn number(&mut self) -> Token {
        let rest = &self.text[self.pos..];
        let digits = rest.strip_prefix(b"-").unwrap_or(rest);
        if digits.first() == Some(&b'0') && digits.get(1).is_some_and(|c| (c | 0x20) == b'x') {
            return Token::Error("invalid number");
        }
        let len = rest
            .iter()
            .take_while(|c| matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .count();
        let parsed = (1..=len).rev().find_map(|n| {
            std::str::from_utf8(&rest[..n])
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .map(|v| (n, v))
        });
        match parsed {
            Some((n, v)) => {
                self.pos += n;
                Token::Number(v)
            }
            None => Token::Error("invalid number"),
        }
    }

    fn string(&mut self) -> Token {
        let mut out = Vec::new();
        self.pos += 1;
        loop {
            let c = self.byte(self.pos);
            if c == 0 {
                self.error_at = Some(self.pos);
                return Token::Error("unexpected end of string");
            }
            self.pos += 1;
            match c {
                b'"' => return Token::Str(out),
                b'\\' => {
                    self.error_at = Some(self.pos - 1);
                    // A backslash at the end escapes the terminating NUL: an
                    // invalid escape, as in lua-cjson.
                    let e = self.byte(self.pos);
                    self.pos += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => match self.unicode_escape() {
                            Some(ch) => {
                                let mut buf = [0u8; 4];
                                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                            }
                            None => return Token::Error("invalid unicode escape code"),
                        },
                        _ => return Token::Error("invalid escape code"),
                    }
                    self.error_at = None;
                }
                _ => out.push(c),
            }
        }
    }

    /// The code point of `\uXXXX` (the `\u` already read), joining a UTF-16
    /// surrogate pair.
    fn unicode_escape(&mut self) -> Option<char> {
        let hex4 = |d: &mut Self| -> Option<u32> {
            let digits = d.text.get(d.pos..d.pos + 4)?;
            let v = u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()?;
            d.pos += 4;
            Some(v)
        };
        let first = hex4(self)?;
        if (0xD800..0xDC00).contains(&first) {
            if self.text.get(self.pos..self.pos + 2) != Some(b"\\u") {
                return None;
            }
            self.pos += 2;
            let low = hex4(self)?;
            if !(0xDC00..0xE000).contains(&low) {
                return None;
            }
            return char::from_u32(0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00));
        }
        char::from_u32(first)
    }
}
