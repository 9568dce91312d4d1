//! The `cjson` library Redis gives scripts (lua-cjson 2.1.0): `cjson.encode`,
//! `cjson.decode`, `cjson.null`, `cjson.new` and the settings
//! (`encode_sparse_array`, `encode_max_depth`, `decode_max_depth`,
//! `encode_number_precision`, `encode_keep_buffer`, `encode_invalid_numbers`,
//! `decode_invalid_numbers`), with lua-cjson's output (numbers as `%.14g`, `/`
//! escaped, empty tables as `{}`, sparse arrays refused) and its error messages,
//! so a script sees the same text and the same errors as on Redis.
//!
//! As in Redis, the settings belong to the library table: a script that changes
//! them changes them for the scripts that run after it (Redis resets them only
//! with a new Lua VM). `cjson.new()` gives a table with its own settings.

use std::sync::Arc;

use mlua::{LightUserData, Lua, MultiValue, Table, Value, Variadic};
use parking_lot::Mutex;

use super::{bad_arg, number_arg, script_raise, truncate_like_x86};

/// Deepest nesting encoded or decoded whatever the settings say. lua-cjson's
/// default; Redis lets a script raise it until Lua's stack runs out (about
/// 4,000 to 8,000 levels), but each level here holds mlua reference slots,
/// which are fewer.
const MAX_DEPTH: usize = 1000;

/// One library table's settings, lua-cjson's `json_config_t`.
#[derive(Debug, Clone, Copy)]
struct Config {
    sparse_convert: bool,
    sparse_ratio: i32,
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    /// 0 off, 1 on, 2 null.
    encode_invalid_numbers: u8,
    decode_invalid_numbers: bool,
    keep_buffer: bool,
    precision: i32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            encode_invalid_numbers: 0,
            decode_invalid_numbers: true,
            keep_buffer: true,
            precision: 14,
        }
    }
}

type Settings = Arc<Mutex<Config>>;

/// The nesting allowed by a depth setting.
fn depth_limit(setting: i32) -> usize {
    usize::try_from(setting).unwrap_or(0).min(MAX_DEPTH)
}

/// The settings of a VM's global `cjson` (not those of `cjson.new()`'s).
struct GlobalSettings(Settings);

/// The VM's global `cjson` table: its settings outlast the script that
/// changes them, as in Redis, until [`reset`].
pub fn global(lua: &Lua) -> mlua::Result<Table> {
    let settings: Settings = Arc::default();
    lua.set_app_data(GlobalSettings(settings.clone()));
    build(lua, settings)
}

/// Back to the default settings (SCRIPT FLUSH: Redis starts a new Lua VM).
pub fn reset(lua: &Lua) {
    if let Some(global) = lua.app_data_ref::<GlobalSettings>() {
        *global.0.lock() = Config::default();
    }
}

/// A `cjson` table with default settings of its own (`cjson.new()`).
pub fn library(lua: &Lua) -> mlua::Result<Table> {
    build(lua, Arc::default())
}

fn build(lua: &Lua, settings: Settings) -> mlua::Result<Table> {
    let cjson = lua.create_table()?;
    let cfg = settings.clone();
    cjson.set(
        "encode",
        lua.create_function(move |lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(super::bad_arg(lua, 1, "encode", "expected 1 argument"));
            }
            let config = *cfg.lock();
            let mut out = Vec::new();
            encode(lua, &config, &args[0], 0, &mut out)?;
            lua.create_string(&out)
        })?,
    )?;
    let cfg = settings.clone();
    cjson.set(
        "decode",
        lua.create_function(move |lua, args: MultiValue| {
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
            let config = *cfg.lock();
            Decoder::new(lua, &config, &text).document()
        })?,
    )?;
    settings_functions(lua, &cjson, &settings)?;
    cjson.set("new", lua.create_function(|lua, ()| library(lua))?)?;
    cjson.set("null", null())?;
    cjson.set("_NAME", "cjson")?;
    cjson.set("_VERSION", "2.1.0")?;
    Ok(cjson)
}

/// The settings functions: each sets what it is given (nil leaves a setting
/// alone) and returns the settings it covers.
fn settings_functions(lua: &Lua, cjson: &Table, settings: &Settings) -> mlua::Result<()> {
    let cfg = settings.clone();
    cjson.set(
        "encode_sparse_array",
        lua.create_function(move |lua, args: Variadic<Value>| {
            let name = "encode_sparse_array";
            let mut c = cfg.lock();
            check_count(lua, &args, 3, name)?;
            let convert = bool_option(lua, &args, 1, name, &mut c.sparse_convert)?;
            let ratio = int_option(lua, &args, 2, name, &mut c.sparse_ratio, 0, i32::MAX)?;
            let safe = int_option(lua, &args, 3, name, &mut c.sparse_safe, 0, i32::MAX)?;
            Ok((convert, ratio, safe))
        })?,
    )?;
    type IntField = fn(&mut Config) -> &mut i32;
    let ints: [(&'static str, IntField, i32, i32); 3] = [
        ("encode_max_depth", |c| &mut c.encode_max_depth, 1, i32::MAX),
        ("decode_max_depth", |c| &mut c.decode_max_depth, 1, i32::MAX),
        ("encode_number_precision", |c| &mut c.precision, 1, 14),
    ];
    for (name, field, min, max) in ints {
        let cfg = settings.clone();
        cjson.set(
            name,
            lua.create_function(move |lua, args: Variadic<Value>| {
                let mut c = cfg.lock();
                check_count(lua, &args, 1, name)?;
                int_option(lua, &args, 1, name, field(&mut c), min, max)
            })?,
        )?;
    }
    type BoolField = fn(&mut Config) -> &mut bool;
    let bools: [(&'static str, BoolField); 2] = [
        ("encode_keep_buffer", |c| &mut c.keep_buffer),
        ("decode_invalid_numbers", |c| &mut c.decode_invalid_numbers),
    ];
    for (name, field) in bools {
        let cfg = settings.clone();
        cjson.set(
            name,
            lua.create_function(move |lua, args: Variadic<Value>| {
                let mut c = cfg.lock();
                check_count(lua, &args, 1, name)?;
                bool_option(lua, &args, 1, name, field(&mut c))
            })?,
        )?;
    }
    let cfg = settings.clone();
    cjson.set(
        "encode_invalid_numbers",
        lua.create_function(move |lua, args: Variadic<Value>| {
            let name = "encode_invalid_numbers";
            let mut c = cfg.lock();
            check_count(lua, &args, 1, name)?;
            let setting = &mut c.encode_invalid_numbers;
            match args.first() {
                None | Some(Value::Nil) => {}
                Some(Value::Boolean(b)) => *setting = u8::from(*b),
                Some(_) => *setting = option(lua, &args, 1, name, &["off", "on", "null"])?,
            }
            Ok(match *setting {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                _ => Value::String(lua.create_string("null")?),
            })
        })?,
    )?;
    Ok(())
}

/// lua-cjson's `json_arg_init`: at most `max` arguments.
fn check_count(lua: &Lua, args: &[Value], max: usize, name: &str) -> mlua::Result<()> {
    if args.len() > max {
        return Err(bad_arg(lua, max + 1, name, "found too many arguments"));
    }
    Ok(())
}

/// An integer setting: argument `i` (unless nil) must be a number within
/// `min..=max` (the error names argument 1 whatever `i` is, as lua-cjson's).
fn int_option(
    lua: &Lua,
    args: &[Value],
    i: usize,
    name: &str,
    setting: &mut i32,
    min: i32,
    max: i32,
) -> mlua::Result<i32> {
    if !matches!(args.get(i - 1), None | Some(Value::Nil)) {
        // `int value = luaL_checkinteger(...)`: the low 32 bits.
        let value = truncate_like_x86(number_arg(lua, args, i, name)?) as i32;
        if !(min..=max).contains(&value) {
            return Err(bad_arg(
                lua,
                1,
                name,
                &format!("expected integer between {min} and {max}"),
            ));
        }
        *setting = value;
    }
    Ok(*setting)
}

/// An on/off setting: a boolean, or the option `off` or `on`.
fn bool_option(
    lua: &Lua,
    args: &[Value],
    i: usize,
    name: &str,
    setting: &mut bool,
) -> mlua::Result<bool> {
    match args.get(i - 1) {
        None | Some(Value::Nil) => {}
        Some(Value::Boolean(b)) => *setting = *b,
        Some(_) => *setting = option(lua, args, i, name, &["off", "on"])? == 1,
    }
    Ok(*setting)
}

/// `luaL_checkoption` without a default: argument `i`'s index in `options`.
fn option(lua: &Lua, args: &[Value], i: usize, name: &str, options: &[&str]) -> mlua::Result<u8> {
    let v = args.get(i - 1);
    let text = match v {
        Some(v @ (Value::String(_) | Value::Integer(_) | Value::Number(_))) => {
            lua.coerce_string(v.clone())?.map(|s| s.as_bytes().to_vec())
        }
        _ => None,
    };
    let Some(text) = text else {
        let got = super::lua_type_name(v);
        return Err(bad_arg(
            lua,
            i,
            name,
            &format!("string expected, got {got}"),
        ));
    };
    match options.iter().position(|o| o.as_bytes() == text) {
        Some(at) => Ok(at as u8),
        None => Err(bad_arg(
            lua,
            i,
            name,
            &format!("invalid option '{}'", String::from_utf8_lossy(&text)),
        )),
    }
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

/// A number as lua-cjson writes it: `%.14g` (as Lua prints it) or the
/// precision set, after the invalid-number setting: an error (off), `nan` and
/// `inf` (on) or `null`.
fn number_text(lua: &Lua, config: &Config, n: f64) -> mlua::Result<Vec<u8>> {
    if !n.is_finite() {
        match config.encode_invalid_numbers {
            0 => {
                return Err(script_raise(
                    lua,
                    "Cannot serialise number: must not be NaN or Inf",
                ))
            }
            1 if n.is_nan() => return Ok(b"nan".to_vec()),
            1 => {}
            _ => return Ok(b"null".to_vec()),
        }
    }
    if config.precision == 14 {
        if let Some(s) = lua.coerce_string(Value::Number(n))? {
            return Ok(s.as_bytes().to_vec());
        }
    }
    Ok(format_g(n, usize::try_from(config.precision).unwrap_or(14).max(1)).into_bytes())
}

/// C's `%.<precision>g`.
fn format_g(n: f64, precision: usize) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if n.is_infinite() {
        return if n > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if n == 0.0 {
        return if n.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let sci = format!("{:.*e}", precision - 1, n);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if exp < -4 || exp >= precision as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip(mantissa), exp.unsigned_abs())
    } else {
        let decimals = usize::try_from(precision as i32 - 1 - exp).unwrap_or(0);
        strip(&format!("{n:.decimals$}"))
    }
}

/// Stack kept free before each level of nesting; below it `stacker` continues on
/// a fresh segment, so 1000 levels fit on any thread's stack.
const STACK_RED_ZONE: usize = 64 * 1024;
const STACK_SEGMENT: usize = 1024 * 1024;

fn encode(
    lua: &Lua,
    config: &Config,
    v: &Value,
    depth: usize,
    out: &mut Vec<u8>,
) -> mlua::Result<()> {
    stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, || {
        encode_value(lua, config, v, depth, out)
    })
}

fn encode_value(
    lua: &Lua,
    config: &Config,
    v: &Value,
    depth: usize,
    out: &mut Vec<u8>,
) -> mlua::Result<()> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(_) | Value::Number(_) => {
            let n = as_number(v).unwrap_or_default();
            out.extend_from_slice(&number_text(lua, config, n)?);
        }
        Value::String(s) => encode_string(&s.as_bytes(), out),
        Value::Table(t) => {
            if depth + 1 > depth_limit(config.encode_max_depth) {
                return Err(script_raise(
                    lua,
                    &format!("Cannot serialise, excessive nesting ({})", depth + 1),
                ));
            }
            match array_length(lua, config, t)? {
                Some(len) if len > 0 => {
                    out.push(b'[');
                    for i in 1..=len {
                        if i > 1 {
                            out.push(b',');
                        }
                        encode(lua, config, &t.raw_get::<Value>(i)?, depth + 1, out)?;
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
                                    config,
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
                        encode(lua, config, &val, depth + 1, out)?;
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
/// integer, `None` for an object. An array with more than `ratio` times as many
/// slots as elements (and an index past `safe`) is excessively sparse: refused,
/// or an object when the setting says convert.
fn array_length(lua: &Lua, config: &Config, t: &Table) -> mlua::Result<Option<usize>> {
    // C `int`s, as lua-cjson keeps them: an index past int's range (even
    // `inf`) becomes INT_MIN on x86-64, which no longer looks like an array.
    let (mut max, mut items) = (0i32, 0i32);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        match as_number(&k) {
            Some(n) if n >= 1.0 && n.floor() == n => {
                if n > f64::from(max) {
                    max = if n < 2_147_483_648.0 {
                        n as i32
                    } else {
                        i32::MIN
                    };
                }
                items = items.wrapping_add(1);
            }
            _ => return Ok(None),
        }
    }
    let ratio = config.sparse_ratio;
    if ratio > 0 && max > items.wrapping_mul(ratio) && max > config.sparse_safe {
        if config.sparse_convert {
            return Ok(None);
        }
        return Err(script_raise(
            lua,
            "Cannot serialise table: excessively sparse array",
        ));
    }
    Ok(usize::try_from(max).ok())
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
    config: &'a Config,
    text: &'a [u8],
    pos: usize,
    depth: usize,
    /// Where a string's lexing error is reported (lua-cjson reports the position
    /// it had reached, not the token's start).
    error_at: Option<usize>,
}

impl<'a> Decoder<'a> {
    fn new(lua: &'a Lua, config: &'a Config, text: &'a [u8]) -> Self {
        Decoder {
            lua,
            config,
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
        if self.depth > depth_limit(self.config.decode_max_depth) {
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
            b'-' | b'0'..=b'9' => {
                if !self.config.decode_invalid_numbers && self.invalid_number() {
                    Token::Error("invalid number")
                } else {
                    self.number()
                }
            }
            b't' | b'f' | b'n' | b'i' | b'I' | b'N' | b'+' => self.word(),
            _ => Token::Error("invalid token"),
        };
        (token, self.error_at.take().unwrap_or(at))
    }

    /// `true`, `false`, `null`, or (when invalid numbers are read) a number
    /// JSON does not allow: `inf`, `nan`, `+1`.
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
        if self.config.decode_invalid_numbers && self.invalid_number() {
            return self.number();
        }
        Token::Error("invalid token")
    }

    /// lua-cjson's `json_is_invalid_number`: a leading `+`, hex, a leading zero,
    /// `inf` or `nan`.
    fn invalid_number(&self) -> bool {
        let rest = &self.text[self.pos..];
        if rest.first() == Some(&b'+') {
            return true;
        }
        let p = rest.strip_prefix(b"-").unwrap_or(rest);
        match p.first() {
            Some(b'0') => p
                .get(1)
                .is_some_and(|&c| (c | 0x20) == b'x' || c.is_ascii_digit()),
            Some(&c) if c <= b'9' => false,
            _ => {
                let word = |w: &[u8]| p.len() >= 3 && p[..3].eq_ignore_ascii_case(w);
                word(b"inf") || word(b"nan")
            }
        }
    }

    /// A number as `strtod` reads it (what lua-cjson calls): its longest
    /// prefix, hex, `inf` and `nan` included.
    fn number(&mut self) -> Token {
        match strtod(&self.text[self.pos..]) {
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

/// C's `strtod` on the start of `s`: the length of the longest prefix it
/// converts and the value, or `None` when it converts nothing. Decimal (through
/// Rust's exact parser), hex (`0x1.8p3`), `inf`, `infinity` and `nan(...)`.
fn strtod(s: &[u8]) -> Option<(usize, f64)> {
    let sign_len = usize::from(matches!(s.first(), Some(b'+' | b'-')));
    let negative = s.first() == Some(&b'-');
    let rest = &s[sign_len..];
    let starts = |w: &[u8]| rest.len() >= w.len() && rest[..w.len()].eq_ignore_ascii_case(w);
    let signed = |v: f64| if negative { -v } else { v };
    if starts(b"infinity") {
        return Some((sign_len + 8, signed(f64::INFINITY)));
    }
    if starts(b"inf") {
        return Some((sign_len + 3, signed(f64::INFINITY)));
    }
    if starts(b"nan") {
        let mut len = 3;
        if rest.get(3) == Some(&b'(') {
            let inner = rest[4..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            if rest.get(4 + inner) == Some(&b')') {
                len = 5 + inner;
            }
        }
        return Some((sign_len + len, signed(f64::NAN)));
    }
    if rest.len() > 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
        if let Some((len, v)) = hex_float(&rest[2..]) {
            return Some((sign_len + 2 + len, signed(v)));
        }
    }
    let digits = |from: usize| run_of(rest, from, u8::is_ascii_digit);
    let (_, _, mut len) = mantissa(rest, u8::is_ascii_digit)?;
    if matches!(rest.get(len), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(rest.get(len + 1), Some(b'+' | b'-')));
        let exp = digits(len + 1 + sign);
        if exp > 0 {
            len += 1 + sign + exp;
        }
    }
    let text = std::str::from_utf8(&rest[..len]).ok()?;
    let v: f64 = text.parse().ok()?;
    Some((sign_len + len, signed(v)))
}

/// The digits of a hex float after `0x`: the length read and the value, or
/// `None` without a hex digit (then `strtod` reads just the `0`). Digits past
/// 56 bits are dropped rather than rounded.
fn hex_float(s: &[u8]) -> Option<(usize, f64)> {
    let (int, frac, mut len) = mantissa(s, u8::is_ascii_hexdigit)?;
    let (mut mantissa, mut exp) = (0u64, 0i64);
    let fraction = if frac > 0 {
        &s[int + 1..int + 1 + frac]
    } else {
        &[][..]
    };
    for (i, c) in s[..int].iter().chain(fraction).enumerate() {
        let d = u64::from((*c as char).to_digit(16).unwrap_or(0));
        if mantissa >> 56 == 0 {
            mantissa = mantissa * 16 + d;
            if i >= int {
                exp -= 4;
            }
        } else if i < int {
            exp += 4;
        }
    }
    if matches!(s.get(len), Some(b'p' | b'P')) {
        let negative = s.get(len + 1) == Some(&b'-');
        let start = len + 1 + usize::from(matches!(s.get(len + 1), Some(b'+' | b'-')));
        let n = hex_digits_dec(s, start);
        if n > 0 {
            let text = std::str::from_utf8(&s[start..start + n]).ok()?;
            let e: i64 = text.parse().unwrap_or(100_000).min(100_000);
            exp += if negative { -e } else { e };
            len = start + n;
        }
    }
    let v = mantissa as f64 * 2f64.powi(exp.clamp(-100_000, 100_000) as i32);
    Some((len, v))
}

/// How many bytes from `from` on are `digit`s.
fn run_of(s: &[u8], from: usize, digit: fn(&u8) -> bool) -> usize {
    s.get(from..)
        .unwrap_or_default()
        .iter()
        .take_while(|c| digit(c))
        .count()
}

/// A number's digits before and after an optional point, as `strtod`
/// reads them: (integer digits, fraction digits, bytes read), or `None`
/// without a digit on either side.
fn mantissa(s: &[u8], digit: fn(&u8) -> bool) -> Option<(usize, usize, usize)> {
    let int = run_of(s, 0, digit);
    let mut len = int;
    let mut frac = 0;
    if s.get(len) == Some(&b'.') {
        frac = run_of(s, len + 1, digit);
        if int + frac > 0 {
            len += 1 + frac;
        }
    }
    (int + frac > 0).then_some((int, frac, len))
}

/// How many decimal digits start at `from`.
fn hex_digits_dec(s: &[u8], from: usize) -> usize {
    run_of(s, from, u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_g_matches_printf() {
        let cases: [(f64, usize, &str); 10] = [
            (1.23456, 3, "1.23"),
            (123456.0, 3, "1.23e+05"),
            (0.0001234, 3, "0.000123"),
            (0.00001234, 3, "1.23e-05"),
            (100.0, 1, "1e+02"),
            (-0.5, 5, "-0.5"),
            (1e300, 2, "1e+300"),
            (9.5, 1, "1e+01"),
            (-0.0, 4, "-0"),
            (f64::NEG_INFINITY, 4, "-inf"),
        ];
        for (n, p, want) in cases {
            assert_eq!(format_g(n, p), want, "{n} at {p}");
        }
    }

    #[test]
    fn strtod_reads_the_longest_prefix_c_reads() {
        assert_eq!(strtod(b"12abc"), Some((2, 12.0)));
        assert_eq!(strtod(b"1e"), Some((1, 1.0)));
        assert_eq!(strtod(b"1e+5x"), Some((4, 1e5)));
        assert_eq!(strtod(b".5"), Some((2, 0.5)));
        assert_eq!(strtod(b"5."), Some((2, 5.0)));
        assert_eq!(strtod(b"0x1.8p1"), Some((7, 3.0)));
        assert_eq!(strtod(b"0xg"), Some((1, 0.0)));
        assert_eq!(strtod(b"-Infinity"), Some((9, f64::NEG_INFINITY)));
        assert_eq!(strtod(b"infinit"), Some((3, f64::INFINITY)));
        assert!(strtod(b"nan(12)").is_some_and(|(n, v)| n == 7 && v.is_nan()));
        assert_eq!(strtod(b"-"), None);
        assert_eq!(strtod(b"."), None);
        assert_eq!(strtod(b"+x"), None);
        // A huge exponent or mantissa neither panics nor loops.
        assert_eq!(
            strtod(b"0x1p99999999999999999999"),
            Some((24, f64::INFINITY))
        );
        let long = [b'f'; 10_000];
        let mut hex = b"0x".to_vec();
        hex.extend_from_slice(&long);
        assert!(strtod(&hex).is_some_and(|(n, v)| n == 10_002 && v.is_infinite()));
    }
}
