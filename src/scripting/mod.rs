//! The Lua scripting engine behind EVAL: one Lua 5.1 VM (as Redis embeds), a
//! cache of compiled scripts by SHA-1, and Redis's conversions between replies
//! and Lua values.
//!
//! A script runs while its caller holds the execution gate exclusively, so no
//! other command interleaves with it. `redis.call` and `redis.pcall` are created
//! once with the VM; for each run the caller's server and session are handed to
//! them through the VM's app data ([`Running`]), and they run commands through the
//! same `commands::call` as every client command.
//!
//! # Runaway scripts
//!
//! A count hook runs every 100,000 Lua instructions (as in Redis). Once a script
//! has run longer than `busy-reply-threshold`, it is *busy*: other clients' commands
//! stop waiting for the gate and get `BUSY` (or run, for the few Redis allows, such
//! as `SCRIPT KILL`), and the hook hands this worker thread's share of the runtime
//! to a fresh thread (`block_in_place`), so connections keep being served while the
//! script goes on here. `SCRIPT KILL` (for a script that has not written) and
//! `SHUTDOWN NOSAVE` set a flag the hook turns into an error that ends the script.
//!
//! # Sandbox
//!
//! Scripts run in read-only proxies of the globals and libraries, as Redis 7's
//! read-only tables (`sandbox.lua`, `sandbox.rs`), under `xpcall` with Redis's
//! error handler (`error_info`), which turns any error value into the
//! `{err=, source=, line=}` table the error reply is built from.
//!
//! Libraries: `string`, `table`, `math` (with Redis's `math.random`), `bit`,
//! `cjson` (`cjson.rs`) and `struct` (`struct_lib.rs`). Not here (see the README):
//! `cmsgpack`.

mod cjson;
mod sandbox;
mod struct_lib;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mlua::{
    Either, Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, Variadic,
    VmState,
};
use parking_lot::Mutex;

use crate::commands::{self, flag, CallMode};
use crate::error::CommandError;
use crate::reply::Reply;
use crate::server::Shared;
use crate::session::Session;

/// The VM and the compiled-script cache, shared by all connections.
pub struct Scripts {
    lua: Mutex<Lua>,
    /// By lower-case hex SHA-1. The names are digests of what clients sent, so a
    /// fast hash that is still keyed per process (ahash) is enough.
    cache: Mutex<HashMap<String, Function, ahash::RandomState>>,
    watch: Arc<Watch>,
    /// The real globals, behind the read-only proxy scripts see: KEYS and ARGV
    /// are set here.
    globals: Table,
    /// Lua's `xpcall`, which runs each script under [`error_info`].
    xpcall: Function,
    /// [`error_info`] as a Lua function.
    on_error: Function,
}

/// The running script's clock and flags, read by the count hook and by other
/// connections.
#[derive(Default)]
struct Watch {
    /// When the running script started; `None` between scripts.
    started: Mutex<Option<quanta::Instant>>,
    /// `busy-reply-threshold` in ms, read when the script started.
    threshold_ms: AtomicU64,
    /// Past the threshold: other clients get `BUSY`.
    busy: AtomicBool,
    /// [`CLEAN`], [`WROTE`] (SCRIPT KILL refuses) or [`KILLED`] (SCRIPT KILL or
    /// SHUTDOWN NOSAVE asked it to stop). One atomic, changed by compare-and-swap
    /// on both sides, so a kill and a first write cannot both succeed.
    state: AtomicU8,
    /// The hook runs on every line (after a kill, so `pcall` cannot swallow it).
    every_line: AtomicBool,
}

const CLEAN: u8 = 0;
const WROTE: u8 = 1;
const KILLED: u8 = 2;

/// What Redis prints when its count hook ends a killed script.
const KILLED_REPLY: &str = "ERR Script killed by user with SCRIPT KILL...";

/// Installs the hook: every 100,000 instructions (as Redis), or also on every line
/// once a script is killed.
fn install_hook(lua: &Lua, watch: &Arc<Watch>, every_line: bool) -> mlua::Result<()> {
    let mut triggers = HookTriggers::new().every_nth_instruction(100_000);
    if every_line {
        triggers = triggers.every_line();
    }
    watch.every_line.store(every_line, Ordering::Relaxed);
    let w = watch.clone();
    // A global hook: it also runs inside coroutines the script creates, which a
    // per-thread hook would not.
    lua.set_global_hook(triggers, move |lua, debug| {
        w.check(lua, &w, debug.current_line().unwrap_or(0))
    })
}

impl Watch {
    /// The hook: ends a killed script, and marks a long one busy.
    fn check(&self, lua: &Lua, me: &Arc<Watch>, line: usize) -> mlua::Result<VmState> {
        if self.state.load(Ordering::Acquire) == KILLED {
            // Redis hooks every line from here: an error raised inside a `pcall`
            // is caught, the next line outside it is not.
            if !self.every_line.load(Ordering::Relaxed) {
                install_hook(lua, me, true)?;
            }
            return Err(mlua::Error::external(CallFailed {
                line: KILLED_REPLY.to_string(),
                at: line,
            }));
        }
        if !self.busy.load(Ordering::Relaxed) {
            let threshold = Duration::from_millis(self.threshold_ms.load(Ordering::Relaxed));
            if self
                .started
                .lock()
                .is_some_and(|s| s.elapsed() >= threshold)
            {
                tracing::warn!(
                    "Slow script detected: still in execution after {} milliseconds. \
                     You can try killing the script using the SCRIPT KILL command.",
                    threshold.as_millis()
                );
                self.busy.store(true, Ordering::Release);
                hand_off_runtime();
            }
        }
        Ok(VmState::Continue)
    }
}

/// Called once a script turns busy, on the thread running it: gives this worker
/// thread's part of the runtime (its queue of tasks, the I/O driver) to a new
/// thread, so that other connections are served while the script runs on. The
/// script then finishes here, outside the runtime's workers. A current-thread
/// runtime cannot do this: there, a busy script holds up the runtime (only an
/// embedding on such a runtime can be in that case; the binary's is multi-thread).
fn hand_off_runtime() {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return;
    }
    // A task on this worker's own queue: when it runs, another thread has taken
    // the worker over, and returning from `block_in_place` leaves it there.
    let (taken_over, rx) = std::sync::mpsc::channel::<()>();
    handle.spawn(async move {
        let _ = taken_over.send(());
    });
    tokio::task::block_in_place(|| {
        let _ = rx.recv_timeout(Duration::from_secs(1));
    });
}

/// Clears the watch when a script ends, however it ends.
struct WatchGuard<'a>(&'a Watch);

impl Drop for WatchGuard<'_> {
    fn drop(&mut self) {
        // Under the `started` lock, as SCRIPT KILL decides under it: a kill
        // meant for this script cannot land on the next one.
        let mut started = self.0.started.lock();
        *started = None;
        self.0.busy.store(false, Ordering::Release);
        self.0.state.store(CLEAN, Ordering::Release);
    }
}

/// An error raised by `redis.call`: the reply line and the script line it came
/// from, so the script's error reply can say where.
#[derive(Debug)]
struct CallFailed {
    line: String,
    at: usize,
}

impl std::fmt::Display for CallFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

impl std::error::Error for CallFailed {}

/// The caller of the running script, for `redis.call`.
///
/// Raw pointers, because the callbacks live as long as the VM while the caller's
/// borrows last one run. Sound because: [`Scripts::run`] stores it just before
/// calling the script and removes it when the call returns (a guard, so also on
/// error); the VM's mutex admits one run at a time; and while the script runs,
/// `run` itself does not touch the session, so the callback's `&mut` is the only
/// live reference. A command run by `redis.call` cannot start another script
/// (EVAL is `noscript`), so there is no nesting.
struct Running {
    shared: *const Shared,
    session: *mut Session,
    read_only: bool,
    /// `redis.setresp(3)` was called: replies reach Lua with RESP3's types.
    resp3: bool,
}

// SAFETY: only dereferenced on the thread running the script, inside `run`.
unsafe impl Send for Running {}

/// Removes [`Running`] from the VM when a run ends, however it ends.
struct RunningGuard<'a>(&'a Lua);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.remove_app_data::<Running>();
    }
}

/// Body of `redis.call` (`raise`) and `redis.pcall`.
fn call_from_script(lua: &Lua, args: MultiValue, raise: bool) -> mlua::Result<Value> {
    let (shared, session, read_only, resp3) = match lua.app_data_ref::<Running>() {
        Some(r) => (r.shared, r.session, r.read_only, r.resp3),
        None => return Err(mlua::Error::runtime("redis.call outside a script run")),
    };
    let at = lua
        .inspect_stack(1, |d| d.current_line())
        .flatten()
        .unwrap_or(0);
    // SAFETY: see `Running`.
    let (shared, session) = unsafe { (&*shared, &mut *session) };
    match redis_call(lua, shared, session, args, read_only) {
        Reply::Error(e) if raise => Err(mlua::Error::external(CallFailed {
            line: e.to_string(),
            at,
        })),
        reply => reply_to_lua(lua, &reply, resp3),
    }
}

/// `redis.setresp(2|3)`: the protocol `redis.call` replies are converted from.
fn set_resp(lua: &Lua, args: Variadic<Value>) -> mlua::Result<()> {
    if args.len() != 1 {
        return Err(script_raise_plain(
            lua,
            "redis.setresp() requires one argument.",
        ));
    }
    let resp3 = match number_arg(lua, &args, 1, "setresp")? as i64 {
        2 => false,
        3 => true,
        _ => return Err(script_raise_plain(lua, "RESP version must be 2 or 3.")),
    };
    if let Some(mut r) = lua.app_data_mut::<Running>() {
        r.resp3 = resp3;
    }
    Ok(())
}

/// An error from the Redis API that Redis reports like a failed `redis.call`:
/// without a position in the message, with the line after the script's SHA.
fn script_raise_plain(lua: &Lua, msg: &str) -> mlua::Error {
    let at = lua
        .inspect_stack(1, |d| d.current_line())
        .flatten()
        .unwrap_or(0);
    mlua::Error::external(CallFailed {
        line: format!("ERR {msg}"),
        at,
    })
}

/// Lua's type name for an argument, as `luaL_checknumber` reports it.
fn lua_type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::Integer(_) | Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    }
}

/// Argument `i` (from 1) of bit library function `name` as LuaBitOp reads it: a
/// number (or numeric string), normalised to 32 bits with round-half-even.
fn bit_arg(lua: &Lua, args: &[Value], i: usize, name: &str) -> mlua::Result<i32> {
    number_arg(lua, args, i, name).map(tobit)
}

/// Argument `i` (from 1) as `luaL_checknumber` reads it: a number or a numeric
/// string.
fn number_arg(lua: &Lua, args: &[Value], i: usize, name: &str) -> mlua::Result<f64> {
    let v = args.get(i - 1);
    let n = match v {
        Some(Value::Integer(n)) => Some(*n as f64),
        Some(Value::Number(n)) => Some(*n),
        Some(Value::String(s)) => s.to_str().ok().and_then(|t| t.trim().parse::<f64>().ok()),
        _ => None,
    };
    n.ok_or_else(|| {
        let got = lua_type_name(v);
        bad_arg(lua, i, name, &format!("number expected, got {got}"))
    })
}

/// Argument `i` as `luaL_checkint` reads it on x86-64: truncated to an int.
fn int_arg(lua: &Lua, args: &[Value], i: usize, name: &str) -> mlua::Result<i32> {
    number_arg(lua, args, i, name).map(|n| n as i64 as i32)
}

/// `luaL_argerror`'s message, with the script position Redis shows. Called
/// from a C function (`pcall(bit.tobit, 'x')`), Lua knows neither the name
/// nor a line.
fn bad_arg(lua: &Lua, i: usize, name: &str, msg: &str) -> mlua::Error {
    match lua.inspect_stack(1, |d| d.current_line()).flatten() {
        Some(line) => mlua::Error::runtime(format!(
            "user_script:{line}: bad argument #{i} to '{name}' ({msg})"
        )),
        None => mlua::Error::runtime(format!("bad argument #{i} to '?' ({msg})")),
    }
}

/// `luaL_error`: the message prefixed with the calling script line.
/// (`luaL_where`: no position when the caller is not Lua, as under `pcall`.)
fn script_raise(lua: &Lua, msg: &str) -> mlua::Error {
    match lua.inspect_stack(1, |d| d.current_line()).flatten() {
        Some(line) => mlua::Error::runtime(format!("user_script:{line}: {msg}")),
        None => mlua::Error::runtime(msg.to_string()),
    }
}

/// Redis's `math.random`: its own `lrand48` (a 48-bit linear congruential
/// generator, unseeded state `0x1234ABCD330E`), one sequence for the server that
/// scripts share and `math.randomseed` resets, so scripts see the same numbers as
/// on Redis 7.
#[derive(Debug)]
struct Rand48(u64);

impl Default for Rand48 {
    fn default() -> Self {
        Rand48(0x1234_ABCD_330E)
    }
}

impl Rand48 {
    const MAX: i32 = i32::MAX;

    fn seed(&mut self, seed: i32) {
        self.0 = (u64::from(seed as u32) << 16) | 0x330E;
    }

    fn next(&mut self) -> i32 {
        self.0 = (0x5_DEEC_E66D_u64.wrapping_mul(self.0).wrapping_add(0xB)) & ((1 << 48) - 1);
        (self.0 >> 17) as i32
    }

    /// A float in [0, 1), as Redis's `math.random` makes it.
    fn unit(&mut self) -> f64 {
        f64::from(self.next() % Self::MAX) / f64::from(Self::MAX)
    }
}

/// Replaces `math.random` and `math.randomseed` with Redis's.
fn install_random(lua: &Lua) -> mlua::Result<()> {
    let state = Arc::new(Mutex::new(Rand48::default()));
    let math: Table = lua.globals().get("math")?;
    let s = state.clone();
    math.set(
        "random",
        lua.create_function(move |lua, args: Variadic<Value>| {
            let r = s.lock().unit();
            let (low, high) = match args.len() {
                0 => return Ok(r),
                1 => (1, int_arg(lua, &args, 1, "random")?),
                2 => (
                    int_arg(lua, &args, 1, "random")?,
                    int_arg(lua, &args, 2, "random")?,
                ),
                _ => return Err(script_raise(lua, "wrong number of arguments")),
            };
            if low > high {
                return Err(bad_arg(lua, args.len(), "random", "interval is empty"));
            }
            Ok((r * (f64::from(high) - f64::from(low) + 1.0)).floor() + f64::from(low))
        })?,
    )?;
    math.set(
        "randomseed",
        lua.create_function(move |lua, args: Variadic<Value>| {
            state.lock().seed(int_arg(lua, &args, 1, "randomseed")?);
            Ok(())
        })?,
    )
}

/// LuaBitOp's `tobit`: adding 2^52 + 2^51 puts the integer part, rounded half to
/// even, in the low 32 bits of the double.
fn tobit(n: f64) -> i32 {
    (n + 6_755_399_441_055_744.0).to_bits() as u32 as i32
}

/// The `bit` library (LuaBitOp), which Redis scripts may use.
fn bit_library(lua: &Lua) -> mlua::Result<Table> {
    let bit = lua.create_table()?;
    type Op = fn(&Lua, &[Value]) -> mlua::Result<i32>;
    let ops: [(&str, Op); 11] = [
        ("tobit", |l, a| bit_arg(l, a, 1, "tobit")),
        ("bnot", |l, a| Ok(!bit_arg(l, a, 1, "bnot")?)),
        ("band", |l, a| fold(l, a, "band", |x, y| x & y)),
        ("bor", |l, a| fold(l, a, "bor", |x, y| x | y)),
        ("bxor", |l, a| fold(l, a, "bxor", |x, y| x ^ y)),
        ("lshift", |l, a| {
            Ok(((bit_arg(l, a, 1, "lshift")? as u32) << (bit_arg(l, a, 2, "lshift")? & 31)) as i32)
        }),
        ("rshift", |l, a| {
            Ok(((bit_arg(l, a, 1, "rshift")? as u32) >> (bit_arg(l, a, 2, "rshift")? & 31)) as i32)
        }),
        ("arshift", |l, a| {
            Ok(bit_arg(l, a, 1, "arshift")? >> (bit_arg(l, a, 2, "arshift")? & 31))
        }),
        ("rol", |l, a| {
            Ok(
                (bit_arg(l, a, 1, "rol")? as u32)
                    .rotate_left((bit_arg(l, a, 2, "rol")? & 31) as u32) as i32,
            )
        }),
        ("ror", |l, a| {
            Ok((bit_arg(l, a, 1, "ror")? as u32)
                .rotate_right((bit_arg(l, a, 2, "ror")? & 31) as u32) as i32)
        }),
        ("bswap", |l, a| Ok(bit_arg(l, a, 1, "bswap")?.swap_bytes())),
    ];
    for (name, op) in ops {
        bit.set(
            name,
            lua.create_function(move |lua, args: Variadic<Value>| op(lua, &args).map(f64::from))?,
        )?;
    }
    bit.set(
        "tohex",
        lua.create_function(|lua, args: Variadic<Value>| {
            let x = bit_arg(lua, &args, 1, "tohex")? as u32;
            let n = if args.len() >= 2 {
                bit_arg(lua, &args, 2, "tohex")?
            } else {
                8
            };
            let (digits, upper) = (n.unsigned_abs().min(8) as usize, n < 0);
            let hex = if upper {
                format!("{x:08X}")
            } else {
                format!("{x:08x}")
            };
            Ok(hex[8 - digits..].to_string())
        })?,
    )?;
    Ok(bit)
}

/// `band`/`bor`/`bxor`: at least one argument, folded left.
fn fold(lua: &Lua, args: &[Value], name: &str, f: fn(i32, i32) -> i32) -> mlua::Result<i32> {
    let mut acc = bit_arg(lua, args, 1, name)?;
    for i in 2..=args.len() {
        acc = f(acc, bit_arg(lua, args, i, name)?);
    }
    Ok(acc)
}

/// Hex SHA-1 of a script body, the name EVALSHA uses.
pub fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

const PRELUDE: &str = r#"
redis = redis or {}
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
function redis.set_repl(_) end
function redis.replicate_commands() return true end
function redis.log(_level, ...) end
"#;

/// Makes the globals and libraries read-only (see the file); run last.
const SANDBOX: &str = include_str!("sandbox.lua");

impl Scripts {
    /// A fresh VM with the libraries Redis scripts may use and its sandbox.
    pub fn new() -> Result<Self, String> {
        let lua = Lua::new_with(
            StdLib::STRING | StdLib::TABLE | StdLib::MATH,
            LuaOptions::default(),
        )
        .map_err(|e| e.to_string())?;
        let globals = lua.globals();
        let redis = lua.create_table().map_err(|e| e.to_string())?;
        let sha = lua
            .create_function(|_, s: mlua::String| Ok(sha1_hex(&s.as_bytes())))
            .map_err(|e| e.to_string())?;
        redis.set("sha1hex", sha).map_err(|e| e.to_string())?;
        let setresp = lua.create_function(set_resp).map_err(|e| e.to_string())?;
        redis.set("setresp", setresp).map_err(|e| e.to_string())?;
        for (name, raise) in [("call", true), ("pcall", false)] {
            let f = lua
                .create_function(move |lua, args: MultiValue| call_from_script(lua, args, raise))
                .map_err(|e| e.to_string())?;
            redis.set(name, f).map_err(|e| e.to_string())?;
        }
        globals.set("redis", redis).map_err(|e| e.to_string())?;
        globals
            .set("bit", bit_library(&lua).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        install_random(&lua).map_err(|e| e.to_string())?;
        globals
            .set("cjson", cjson::library(&lua).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        globals
            .set(
                "struct",
                struct_lib::library(&lua).map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
        // No file access from scripts.
        for name in ["loadfile", "dofile"] {
            globals.raw_remove(name).map_err(|e| e.to_string())?;
        }
        lua.load(PRELUDE)
            .set_name("=prelude")
            .exec()
            .map_err(|e| e.to_string())?;
        let xpcall: Function = globals.get("xpcall").map_err(|e| e.to_string())?;
        let proxies = sandbox::Proxies {
            real_of: lua.create_table().map_err(|e| e.to_string())?,
            shown: lua.create_table().map_err(|e| e.to_string())?,
        };
        let base = sandbox::base_functions(&lua, &proxies).map_err(|e| e.to_string())?;
        let (scripts_g, real_g): (Table, Table) = lua
            .load(SANDBOX)
            .set_name(SANDBOX_NAME)
            .call((proxies.real_of, proxies.shown, base))
            .map_err(|e| e.to_string())?;
        // Scripts (and the coroutines and `loadstring` chunks they make) get the
        // read-only proxy as their globals.
        lua.set_globals(scripts_g).map_err(|e| e.to_string())?;
        let on_error = lua.create_function(error_info).map_err(|e| e.to_string())?;
        let watch = Arc::new(Watch::default());
        install_hook(&lua, &watch, false).map_err(|e| e.to_string())?;
        Ok(Scripts {
            lua: Mutex::new(lua),
            cache: Mutex::new(HashMap::default()),
            watch,
            globals: real_g,
            xpcall,
            on_error,
        })
    }

    /// Whether a script has run past `busy-reply-threshold`: other clients get
    /// `BUSY`.
    pub fn is_busy(&self) -> bool {
        self.watch.busy.load(Ordering::Acquire)
    }

    /// SCRIPT KILL: asks the running script to stop, unless it has written.
    pub fn kill(&self) -> Result<(), CommandError> {
        let started = self.watch.started.lock();
        if started.is_none() {
            return Err(CommandError::raw(
                "NOTBUSY No scripts in execution right now.",
            ));
        }
        let state = &self.watch.state;
        match state.compare_exchange(CLEAN, KILLED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) | Err(KILLED) => Ok(()),
            Err(_) => Err(CommandError::raw(
                "UNKILLABLE Sorry the script already executed write commands against the \
                 dataset. You can either wait the script termination or kill the server in a \
                 hard way using the SHUTDOWN NOSAVE command.",
            )),
        }
    }

    /// SHUTDOWN NOSAVE: stops the running script, written or not.
    pub fn abort(&self) {
        let started = self.watch.started.lock();
        if started.is_some() {
            self.watch.state.store(KILLED, Ordering::Release);
        }
    }

    /// Compiles and caches `body` (SCRIPT LOAD, and EVAL on first use); returns its
    /// SHA-1.
    pub fn load(&self, body: &[u8]) -> Result<String, CommandError> {
        let sha = sha1_hex(body);
        if self.cache.lock().contains_key(&sha) {
            return Ok(sha);
        }
        let lua = self.lua.lock();
        let function = lua
            .load(body)
            .set_name("@user_script")
            .into_function()
            .map_err(|e| {
                let msg = match e {
                    mlua::Error::SyntaxError { message, .. } => message,
                    other => other.to_string(),
                };
                CommandError::err(format!("Error compiling script (new function): {msg}"))
            })?;
        self.cache.lock().insert(sha.clone(), function);
        Ok(sha)
    }

    /// Whether a script with this SHA-1 is cached.
    pub fn exists(&self, sha: &str) -> bool {
        self.cache.lock().contains_key(&sha.to_ascii_lowercase())
    }

    /// Drops every cached script.
    pub fn flush(&self) {
        self.cache.lock().clear();
    }

    /// Runs the cached script `sha` (lower-case hex) with KEYS and ARGV. The caller
    /// holds the execution gate exclusively.
    pub fn run(
        &self,
        shared: &Shared,
        session: &mut Session,
        sha: &str,
        keys: &[Bytes],
        argv: &[Bytes],
        read_only: bool,
    ) -> Result<Reply, CommandError> {
        // The cache stays locked for the run: nothing else can use it meanwhile
        // (the caller holds the gate exclusively), and the function need not be
        // cloned out of it.
        let cache = self.cache.lock();
        let function = cache
            .get(sha)
            .ok_or_else(|| CommandError::raw("NOSCRIPT No matching script. Please use EVAL."))?;
        let lua = self.lua.lock();
        let watch = &self.watch;
        watch
            .threshold_ms
            .store(shared.config.read().busy_reply_threshold, Ordering::Relaxed);
        // The command's start, already read: no clock read per script. (The state
        // is CLEAN: the last script's guard left it so.)
        *watch.started.lock() = Some(session.clock_mark);
        let _watching = WatchGuard(watch);
        let fail = |line: String, at: usize| {
            CommandError::raw(format!("{line} script: {sha}, on @user_script:{at}."))
        };
        let outcome = (|| {
            self.globals.raw_set("KEYS", string_table(&lua, keys)?)?;
            self.globals.raw_set("ARGV", string_table(&lua, argv)?)?;
            lua.set_app_data(Running {
                shared,
                session,
                read_only,
                resp3: false,
            });
            let _running = RunningGuard(&lua);
            let (ok, value) = self
                .xpcall
                .call::<(bool, Value)>((function, &self.on_error))?;
            let resp3 = lua.app_data_ref::<Running>().is_some_and(|r| r.resp3);
            Ok((ok, value, resp3))
        })();
        if watch.every_line.load(Ordering::Relaxed) {
            install_hook(&lua, watch, false).map_err(|e| CommandError::err(e.to_string()))?;
        }
        match outcome {
            Ok((true, value, resp3)) => Ok(lua_to_reply(&value, resp3)),
            Ok((false, Value::Table(info), _)) => Err(error_from_info(&info, sha)),
            Ok((false, Value::Error(e), _)) => Err(script_error(*e, &fail)),
            Ok((false, other, _)) => Err(fail(
                format!("ERR {}", other.to_string().unwrap_or_default()),
                0,
            )),
            Err(e) => Err(script_error(e, &fail)),
        }
    }
}

/// The chunk name of `sandbox.lua`: its frames are not the script's.
const SANDBOX_NAME: &str = "=sandbox";

/// The message handler scripts run under, as Redis's `__redis__err__handler`:
/// turns the error value into the table `{err=, source=, line=}` that Redis
/// builds its error reply from. `err` is `ERR ` and the message for a string
/// (or any value but a table), the `err` field of a table; `source` and `line`
/// are the innermost script frame's (skipping C functions and the sandbox's
/// wrappers). Errors raised by our Rust functions pass through unchanged: they
/// carry their own line.
fn error_info(lua: &Lua, e: Value) -> mlua::Result<Value> {
    if let Value::Error(_) = e {
        return Ok(e);
    }
    // The innermost script frame: source and line.
    let mut frame = None;
    let mut level = 1;
    while let Some((what, source, line)) = lua.inspect_stack(level, |d| {
        let s = d.source();
        (s.what, s.source.map(|c| c.into_owned()), d.current_line())
    }) {
        level += 1;
        // Not C, not a call lost to a tail call, not the sandbox's wrappers.
        if what != "C" && what != "tail" && source.as_deref() != Some(SANDBOX_NAME) {
            frame = Some((source, line));
            break;
        }
    }
    let err = match &e {
        Value::Table(t) => match t.raw_get::<Value>("err")? {
            Value::String(s) => Some(s),
            v @ (Value::Integer(_) | Value::Number(_)) => lua.coerce_string(v)?,
            _ => None,
        },
        Value::String(s) => {
            let mut line = b"ERR ".to_vec();
            line.extend_from_slice(&s.as_bytes());
            Some(lua.create_string(line)?)
        }
        other => Some(lua.create_string(format!("ERR {}", other.to_string()?))?),
    };
    let info = lua.create_table()?;
    info.raw_set("err", err)?;
    if let Some((source, line)) = frame {
        info.raw_set("source", source)?;
        info.raw_set("line", line)?;
    }
    Ok(Value::Table(info))
}

/// Redis's error reply for a script that raised an error value: the `err`
/// field, and where it was raised.
fn error_from_info(info: &Table, sha: &str) -> CommandError {
    let msg = match info.raw_get::<Value>("err") {
        Ok(Value::String(s)) => s.to_string_lossy(),
        // Redis 7.0 crashes on an error table without `err`; its words for an
        // error it cannot read.
        _ => "ERR execution failure".to_string(),
    };
    let source = info.raw_get::<Option<String>>("source").ok().flatten();
    let line = info.raw_get::<Option<i64>>("line").ok().flatten();
    match (source, line) {
        (Some(source), Some(line)) => {
            CommandError::raw(format!("{msg} script: {sha}, on {source}:{line}."))
        }
        _ => CommandError::raw(msg),
    }
}

/// Turns a failed script into Redis's error reply.
fn script_error(e: mlua::Error, fail: &dyn Fn(String, usize) -> CommandError) -> CommandError {
    if let mlua::Error::ExternalError(inner) = &e {
        if let Some(c) = inner.downcast_ref::<CallFailed>() {
            return fail(c.line.clone(), c.at);
        }
    }
    if let mlua::Error::CallbackError { cause, .. } = &e {
        return script_error((**cause).clone(), fail);
    }
    let msg = match e {
        mlua::Error::RuntimeError(m) => m,
        mlua::Error::ExternalError(inner) => inner.to_string(),
        other => other.to_string(),
    };
    let msg = msg.lines().next().unwrap_or_default().to_string();
    let at = msg
        .strip_prefix("user_script:")
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    fail(format!("ERR {msg}"), at)
}

/// KEYS or ARGV: a Lua array of the strings, built in one call. Text goes
/// straight onto the Lua stack (mlua's path for `&str`); only binary items
/// take a string handle. Each `raw_set` and `create_string` is a round trip
/// through mlua's reference slots, which cost a quarter of an EVALSHA.
fn string_table(lua: &Lua, items: &[Bytes]) -> mlua::Result<Table> {
    let items = items
        .iter()
        .map(|b| match std::str::from_utf8(b) {
            Ok(text) => Ok(Either::Left(text)),
            Err(_) => lua.create_string(b).map(Either::Right),
        })
        .collect::<mlua::Result<Vec<_>>>()?;
    lua.create_sequence_from(items)
}

/// Runs one command for `redis.call`/`redis.pcall`; errors are replies.
fn redis_call(
    lua: &Lua,
    shared: &Shared,
    session: &mut Session,
    args: MultiValue,
    read_only: bool,
) -> Reply {
    let mut words = Vec::with_capacity(args.len());
    for v in args {
        match v {
            Value::String(s) => words.push(Bytes::copy_from_slice(&s.as_bytes())),
            // Numbers become text as Lua's tostring writes them (`1.5`, `3`).
            v @ (Value::Integer(_) | Value::Number(_)) => match lua.coerce_string(v) {
                Ok(Some(s)) => words.push(Bytes::copy_from_slice(&s.as_bytes())),
                _ => {
                    return Reply::Error(CommandError::err(
                        "Lua redis lib command arguments must be strings or integers",
                    ))
                }
            },
            _ => {
                return Reply::Error(CommandError::err(
                    "Lua redis lib command arguments must be strings or integers",
                ))
            }
        }
    }
    if words.is_empty() {
        return Reply::Error(CommandError::err(
            "Please specify at least one argument for this redis lib call",
        ));
    }
    let cmd = match shared.commands.resolve(&words) {
        Ok(cmd) => cmd,
        Err(CommandError::WrongArity(_)) => {
            return Reply::Error(CommandError::err(
                "Wrong number of args calling Redis command from script",
            ))
        }
        Err(_) => {
            return Reply::Error(CommandError::err(
                "Unknown Redis command called from script",
            ))
        }
    };
    if cmd.spec.has(flag::NOSCRIPT) {
        return Reply::Error(CommandError::err(
            "This Redis command is not allowed from script",
        ));
    }
    if cmd.spec.has(flag::WRITE) {
        if read_only {
            return Reply::Error(CommandError::err(
                "Write commands are not allowed from read-only scripts.",
            ));
        }
        // A script killed before its first write does not get to write.
        let state = &shared.scripts.watch.state;
        if state.compare_exchange(CLEAN, WROTE, Ordering::AcqRel, Ordering::Acquire) == Err(KILLED)
        {
            return Reply::Error(CommandError::raw(KILLED_REPLY));
        }
    }
    commands::call(shared, session, cmd, &words, CallMode::Script)
}

/// A reply as a Lua value, with Redis's RESP2 conversions or, after
/// `redis.setresp(3)`, its RESP3 ones (nil, booleans, and `{double=}`, `{map=}`,
/// `{set=}`, `{verbatim_string=}` tables).
fn reply_to_lua(lua: &Lua, reply: &Reply, resp3: bool) -> mlua::Result<Value> {
    let wrapped = |field: &str, v: Value| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        t.raw_set(field, v)?;
        Ok(Value::Table(t))
    };
    Ok(match reply {
        Reply::Int(i) => Value::Integer(*i),
        Reply::Verbatim(b) if resp3 => {
            let v = lua.create_table()?;
            v.raw_set("format", "txt")?;
            v.raw_set("string", lua.create_string(b)?)?;
            wrapped("verbatim_string", Value::Table(v))?
        }
        Reply::Bulk(b) | Reply::Verbatim(b) => Value::String(lua.create_string(b)?),
        Reply::Short(b) => Value::String(lua.create_string(b.as_slice())?),
        Reply::Simple(s) => status_table(lua, s.as_bytes())?,
        Reply::Status(s) => status_table(lua, s)?,
        Reply::Nil | Reply::NilArray | Reply::Silent if resp3 => Value::Nil,
        Reply::Nil | Reply::NilArray | Reply::Silent => Value::Boolean(false),
        Reply::Bool(b) if resp3 => Value::Boolean(*b),
        Reply::Bool(b) => Value::Integer(i64::from(*b)),
        Reply::Double(d) if resp3 => wrapped("double", Value::Number(*d))?,
        Reply::Double(d) => Value::String(lua.create_string(crate::reply::format_double(*d))?),
        Reply::Error(e) => {
            let t = lua.create_table()?;
            t.raw_set("err", e.to_string())?;
            Value::Table(t)
        }
        Reply::Set(items) if resp3 => {
            let members = lua.create_table()?;
            for item in items {
                members.raw_set(reply_to_lua(lua, item, resp3)?, true)?;
            }
            wrapped("set", Value::Table(members))?
        }
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, reply_to_lua(lua, item, resp3)?)?;
            }
            Value::Table(t)
        }
        Reply::Map(pairs) if resp3 => {
            let map = lua.create_table()?;
            for (k, v) in pairs {
                map.raw_set(reply_to_lua(lua, k, resp3)?, reply_to_lua(lua, v, resp3)?)?;
            }
            wrapped("map", Value::Table(map))?
        }
        Reply::Map(pairs) => {
            let t = lua.create_table_with_capacity(pairs.len() * 2, 0)?;
            for (i, (k, v)) in pairs.iter().enumerate() {
                t.raw_set(2 * i + 1, reply_to_lua(lua, k, resp3)?)?;
                t.raw_set(2 * i + 2, reply_to_lua(lua, v, resp3)?)?;
            }
            Value::Table(t)
        }
    })
}

fn status_table(lua: &Lua, s: &[u8]) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("ok", lua.create_string(s)?)?;
    Ok(Value::Table(t))
}

/// A Lua value as a reply (Redis's conversions): numbers truncate to integers,
/// `true` is 1 and `false` nil (a RESP3 boolean after `redis.setresp(3)`), nil is
/// nil, `{ok=}`/`{err=}` are status/error replies, `{double=}`, `{map=}` and
/// `{set=}` the RESP3 types, other tables arrays up to their first nil.
fn lua_to_reply(value: &Value, resp3: bool) -> Reply {
    match value {
        Value::Integer(i) => Reply::Int(*i),
        Value::Number(n) => Reply::Int(*n as i64),
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) if resp3 => Reply::Bool(*b),
        Value::Boolean(true) => Reply::Int(1),
        Value::Boolean(false) | Value::Nil => Reply::Nil,
        Value::Table(t) => {
            if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
                return Reply::Error(CommandError::raw(e.to_string_lossy()));
            }
            if let Ok(Value::String(ok)) = t.raw_get::<Value>("ok") {
                return Reply::Status(Bytes::copy_from_slice(&ok.as_bytes()));
            }
            match t.raw_get::<Value>("double") {
                Ok(Value::Number(d)) => return Reply::Double(d),
                Ok(Value::Integer(d)) => return Reply::Double(d as f64),
                _ => {}
            }
            if let Ok(Value::Table(map)) = t.raw_get::<Value>("map") {
                return Reply::Map(
                    map.pairs::<Value, Value>()
                        .filter_map(Result::ok)
                        .map(|(k, v)| (lua_to_reply(&k, resp3), lua_to_reply(&v, resp3)))
                        .collect(),
                );
            }
            if let Ok(Value::Table(set)) = t.raw_get::<Value>("set") {
                return Reply::Set(
                    set.pairs::<Value, Value>()
                        .filter_map(Result::ok)
                        .map(|(k, _)| lua_to_reply(&k, resp3))
                        .collect(),
                );
            }
            let mut items = Vec::new();
            for i in 1.. {
                match t.raw_get::<Value>(i) {
                    Ok(Value::Nil) | Err(_) => break,
                    Ok(v) => items.push(lua_to_reply(&v, resp3)),
                }
            }
            Reply::Array(items)
        }
        _ => Reply::Nil,
    }
}
