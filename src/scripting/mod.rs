//! The Lua scripting engine behind EVAL and FCALL: Lua 5.1 VMs (as Redis
//! embeds) built by one [`Vm`] builder, EVAL's and the functions' own
//! (`functions.rs`, as Redis 7 keeps libraries in a Lua state of their own), a
//! cache of compiled scripts by SHA-1, and Redis's conversions between replies
//! and Lua values. Scripts and functions run through one path
//! ([`Scripts::run_in`]) and share the runaway-script watch.
//!
//! A script runs while its caller holds the execution gate exclusively, so no
//! other command interleaves with it. `redis.call` and `redis.pcall` are created
//! once with the VM; for each run the caller's server and session are handed to
//! them through the VM's [`CallSlot`] ([`Running`]), and they run commands through
//! the same `commands::call` as every client command.
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
//! `cjson` (`cjson.rs`), `cmsgpack` (`cmsgpack.rs`) and `struct` (`struct_lib.rs`).

mod chunks;
mod cjson;
mod cmsgpack;
pub mod functions;
mod patterns;
mod sandbox;
mod struct_lib;

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{c_char, c_int};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mlua::{
    ffi, Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, Variadic,
    VmState,
};
use parking_lot::Mutex;

use crate::commands::{self, flag, CallMode};
use crate::error::CommandError;
use crate::reply::{Nested, Part, Reply};
use crate::server::Shared;
use crate::session::Session;

/// The VMs (EVAL's and the functions'), the compiled-script cache and the
/// function libraries, shared by all connections.
pub struct Scripts {
    /// Built by the first script compiled (EVAL, SCRIPT LOAD).
    eval: LazyVm,
    /// By lower-case hex SHA-1. The names are digests of what clients sent, so a
    /// fast hash that is still keyed per process (ahash) is enough.
    /// The functions are kept in the Lua registry: a `Function` handle would hold
    /// one of the VM's reference slots, and there are only 8,000 of those.
    cache: Mutex<HashMap<String, Cached, ahash::RandomState>>,
    watch: Arc<Watch>,
    /// FUNCTION's libraries and their VM.
    pub functions: functions::Functions,
}

/// The running script's clock and flags, read by the count hook and by other
/// connections.
#[derive(Default)]
pub(crate) struct Watch {
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
    /// The running script is a function (FCALL), not EVAL's.
    function: AtomicBool,
    /// A library's load must end by then (FUNCTION LOAD's 500 ms).
    load_deadline: Mutex<Option<quanta::Instant>>,
    /// The running function's name and its FCALL, for FUNCTION STATS: copied
    /// from `call` when the script turns busy, the only time another client
    /// can ask (the run holds the gate until then), so a run that ends in
    /// time copies nothing.
    current: Mutex<Option<(String, Vec<Bytes>)>>,
    /// The running function's name and FCALL, borrowed from the run.
    call: Mutex<Option<CallRef>>,
}

/// See [`Watch::call`]: pointers into the caller's frame of a run, set just
/// before the run and cleared by its [`WatchGuard`], and read only by the
/// hook, on the thread running it, during it.
pub(crate) struct CallRef {
    name: *const str,
    args: *const [Bytes],
}

// SAFETY: only dereferenced on the thread running the script, during the run.
unsafe impl Send for CallRef {}

impl CallRef {
    /// Lends a function run's name and FCALL to [`Watch::call`]; the run's
    /// [`WatchGuard`] takes them back before they go.
    pub(crate) fn lend(watch: &Watch, name: &str, args: &[Bytes]) {
        *watch.call.lock() = Some(CallRef { name, args });
    }
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
    /// The hook: ends a killed script or a library load past its time, and
    /// marks a long script busy.
    fn check(&self, lua: &Lua, me: &Arc<Watch>, line: usize) -> mlua::Result<VmState> {
        if self
            .load_deadline
            .lock()
            .is_some_and(|d| quanta::Instant::now() >= d)
        {
            if !self.every_line.load(Ordering::Relaxed) {
                install_hook(lua, me, true)?;
            }
            return Err(mlua::Error::external(functions::LoadFailed(
                "ERR FUNCTION LOAD timeout".to_string(),
            )));
        }
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
                // Kept for FUNCTION STATS before other clients can ask.
                if let Some(call) = self.call.lock().as_ref() {
                    // SAFETY: see `CallRef`: this runs inside the run.
                    let (name, args) = unsafe { (&*call.name, &*call.args) };
                    *self.current.lock() = Some((name.to_string(), args.to_vec()));
                }
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
        *self.0.call.lock() = None;
        *self.0.current.lock() = None;
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
#[derive(Clone, Copy)]
struct Running {
    shared: *const Shared,
    session: *mut Session,
    read_only: bool,
    /// Commands that may grow memory run over `maxmemory` (`allow-oom`).
    allow_oom: bool,
    /// `redis.setresp(3)` was called: replies reach Lua with RESP3's types.
    resp3: bool,
}

// SAFETY: only dereferenced on the thread running the script, inside `run`.
unsafe impl Send for Running {}

/// What `redis.call` and the VM's other callbacks share with the run: the
/// running script's caller, and a `redis.call` reply on its way to Lua. One per
/// VM, at a fixed address for the VM's life (the `redis.call` closures hold
/// it; the mlua callbacks find it in the VM's app data, [`SlotRef`]).
#[derive(Default)]
pub(crate) struct CallSlot {
    /// The run's caller; `None` between runs.
    running: Cell<Option<Running>>,
    /// A command's reply (or a panic) that [`call_entry`] hands to
    /// [`finish_call`] to convert or raise.
    pending: Cell<Option<Pending>>,
}

// SAFETY: only touched on the thread running a script of its VM, while it
// runs (the VM's mutex admits one run at a time), and by its guard.
unsafe impl Sync for CallSlot {}
unsafe impl Send for CallSlot {}

/// See [`CallSlot::pending`].
enum Pending {
    /// The reply of the command `redis.call` (`raise`) or `redis.pcall` ran.
    Reply { reply: Reply, raise: bool },
    /// The command panicked: [`finish_call`] resumes the panic inside an mlua
    /// callback, which carries it out of the VM as any callback's panic.
    Panic(Box<dyn std::any::Any + Send>),
}

/// The VM's [`CallSlot`] in its app data.
struct SlotRef(Arc<CallSlot>);

/// The [`CallSlot`] of the VM `lua`.
fn slot_of(lua: &Lua) -> Option<Arc<CallSlot>> {
    lua.app_data_ref::<SlotRef>().map(|s| s.0.clone())
}

/// The run's caller, if a script is running.
fn running(lua: &Lua) -> Option<Running> {
    lua.app_data_ref::<SlotRef>()
        .and_then(|s| s.0.running.get())
}

/// Clears the run's caller from the [`CallSlot`] when a run ends, however it
/// ends.
struct RunningGuard<'a>(&'a CallSlot);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.running.set(None);
        self.0.pending.set(None);
    }
}

/// `redis.call` (`RAISE`) and `redis.pcall` as scripts see them: a C closure
/// over the VM's [`CallSlot`] (upvalue 1), [`call_from_script`] (2),
/// [`finish_call`] (3) and [`depth_probe`] (4, made once: no closure per
/// call). Calls whose arguments are all strings (nearly all)
/// run here with no mlua round trip: the words are read off the stack, the
/// command runs, and a scalar reply is pushed straight back; any other reply
/// (or an error to raise) goes through [`finish_call`]. Any other arguments go
/// to [`call_from_script`] whole (the errors and number conversions).
///
/// An error raised by Lua or by the mlua functions called here unwinds through
/// this frame: it holds nothing that needs dropping when it calls them (the
/// command runs in [`CallSlot::run_call`], which has returned by then, and a
/// reply is pushed by [`CallSlot::push_scalar`], which holds it without a
/// destructor).
unsafe extern "C-unwind" fn call_entry<const RAISE: bool>(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: upvalue 1 is the VM's slot, which outlives its closures.
    let slot = &*(ffi::lua_touserdata(state, ffi::lua_upvalueindex(1)) as *const CallSlot);
    let n = ffi::lua_gettop(state);
    let strings = n > 0 && (1..=n).all(|i| ffi::lua_type(state, i) == ffi::LUA_TSTRING);
    if strings {
        // A reply that is not a scalar, and an error to raise, go through
        // `finish_call`, C calls deeper than this one: make sure Lua's C-call
        // limit has room for them before the command runs, so that a script
        // nested that deep fails with nothing done, not after the command.
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(4));
        ffi::lua_call(state, 0, 0);
    }
    let ran = strings
        && match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            slot.run_call(state, n, RAISE)
        })) {
            Ok(ran) => ran,
            Err(panic) => {
                slot.pending.set(Some(Pending::Panic(panic)));
                true
            }
        };
    if !ran {
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(2));
        ffi::lua_insert(state, 1);
        ffi::lua_call(state, n, 1);
        return 1;
    }
    if !slot.push_scalar(state) {
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(3));
        ffi::lua_call(state, 0, 1);
    }
    1
}

/// Does nothing. Called before a command runs, one C call below
/// [`call_entry`] as `finish_call` is (mlua's trampoline into it): a script
/// nested so deep that it would not fit raises Lua's `C stack overflow`
/// here, with nothing done (tests/scripting.rs checks each depth near the
/// limit, for array, nested array and error replies).
unsafe extern "C-unwind" fn depth_probe(_: *mut ffi::lua_State) -> c_int {
    0
}

impl CallSlot {
    /// Runs the command whose words are the `n` strings on `state`'s stack
    /// and keeps its reply in `pending`; false (nothing run) outside a run.
    ///
    /// # Safety
    /// The `n` values at the bottom of `state`'s stack are strings; called by
    /// [`call_entry`] while a script of this slot's VM runs.
    unsafe fn run_call(&self, state: *mut ffi::lua_State, n: c_int, raise: bool) -> bool {
        let Some(r) = self.running.get() else {
            return false;
        };
        let mut words = Vec::with_capacity(n as usize);
        for i in 1..=n {
            let mut len = 0usize;
            let p = ffi::lua_tolstring(state, i, &mut len);
            if p.is_null() {
                return false;
            }
            words.push(Bytes::copy_from_slice(std::slice::from_raw_parts(
                p.cast::<u8>(),
                len,
            )));
        }
        // SAFETY: see `Running`.
        let (shared, session) = (&*r.shared, &mut *r.session);
        // As in `call_from_script`: the script's protocol, not its caller's.
        let caller_resp3 = std::mem::replace(&mut session.resp3, r.resp3);
        let reply = run_words(shared, session, words, r.read_only, r.allow_oom);
        session.resp3 = caller_resp3;
        self.pending.set(Some(Pending::Reply { reply, raise }));
        true
    }

    /// Pushes the pending reply if it is a scalar Lua gets as a plain value
    /// or an `{ok=}` table, as [`reply_to_lua`] converts it, and clears it;
    /// false (left pending) for anything else.
    ///
    /// # Safety
    /// `state` has 3 free stack slots (a C function's 20 do). The reply is
    /// taken out of the slot first and held without a destructor while it is
    /// pushed: a push that raises Lua's memory error longjmps over no frame
    /// with a destructor (the reply leaks), and a collection step during the
    /// push that ran a nested `redis.call` (from a finalizer, which the
    /// sandbox gives scripts no way to set today) could not free the bytes
    /// being copied.
    unsafe fn push_scalar(&self, state: *mut ffi::lua_State) -> bool {
        let resp3 = self.running.get().is_some_and(|r| r.resp3);
        let (reply, raise) = match self.pending.take() {
            Some(Pending::Reply { reply, raise }) => (std::mem::ManuallyDrop::new(reply), raise),
            other => {
                self.pending.set(other);
                return false;
            }
        };
        match &*reply {
            Reply::Int(i) => ffi::lua_pushinteger(state, *i),
            Reply::Bulk(b) => push_bytes(state, b),
            Reply::Verbatim(b) if !resp3 => push_bytes(state, b),
            Reply::Short(b) => push_bytes(state, b.as_slice()),
            Reply::Nil | Reply::NilArray | Reply::Silent if resp3 => ffi::lua_pushnil(state),
            Reply::Nil | Reply::NilArray | Reply::Silent => ffi::lua_pushboolean(state, 0),
            Reply::Bool(b) if !resp3 => ffi::lua_pushinteger(state, i64::from(*b)),
            Reply::Simple(s) => push_status(state, s.as_bytes()),
            Reply::Status(s) => push_status(state, s),
            _ => {
                self.pending.set(Some(Pending::Reply {
                    reply: std::mem::ManuallyDrop::into_inner(reply),
                    raise,
                }));
                return false;
            }
        }
        drop(std::mem::ManuallyDrop::into_inner(reply));
        true
    }
}

/// Pushes a Lua string of `bytes`.
///
/// # Safety
/// One free stack slot; may raise Lua's memory error.
unsafe fn push_bytes(state: *mut ffi::lua_State, bytes: &[u8]) {
    if bytes.is_empty() {
        ffi::lua_pushlstring_(state, c"".as_ptr(), 0);
    } else {
        ffi::lua_pushlstring_(state, bytes.as_ptr().cast::<c_char>(), bytes.len());
    }
}

/// Pushes `{ok = s}`, as [`status_table`] builds it.
///
/// # Safety
/// Three free stack slots; may raise Lua's memory error.
unsafe fn push_status(state: *mut ffi::lua_State, s: &[u8]) {
    ffi::lua_createtable(state, 0, 0);
    ffi::lua_pushlstring_(state, c"ok".as_ptr(), 2);
    push_bytes(state, s);
    ffi::lua_rawset(state, -3);
}

/// The rest of a `redis.call` [`call_entry`] ran: the pending reply as a Lua
/// value, or, for `redis.call`, its error raised (with the line of the
/// script's call, two levels up: this function, then `call_entry`).
fn finish_call(lua: &Lua, _: ()) -> mlua::Result<Value> {
    let slot = slot_of(lua).ok_or_else(|| mlua::Error::runtime("no call slot"))?;
    let resp3 = slot.running.get().is_some_and(|r| r.resp3);
    match slot.pending.take() {
        Some(Pending::Panic(panic)) => std::panic::resume_unwind(panic),
        Some(Pending::Reply {
            reply: Reply::Error(e),
            raise: true,
        }) => Err(mlua::Error::external(CallFailed {
            line: e.to_string(),
            at: line_at(lua, 2),
        })),
        Some(Pending::Reply { reply, .. }) => reply_to_lua(lua, &reply, resp3),
        None => Ok(Value::Nil),
    }
}

/// The current line of the function `level` frames up, 0 if none.
fn line_at(lua: &Lua, level: usize) -> usize {
    lua.inspect_stack(level, |d| d.current_line())
        .flatten()
        .unwrap_or(0)
}

/// What [`call_entry`] hands its other calls to: the body of `redis.call`
/// (`raise`) and `redis.pcall`. The script's call is two levels up (this
/// function, then `call_entry`).
fn call_from_script(lua: &Lua, args: MultiValue, raise: bool) -> mlua::Result<Value> {
    let Some(Running {
        shared,
        session,
        read_only,
        allow_oom,
        resp3,
    }) = running(lua)
    else {
        return Err(mlua::Error::runtime("redis.call outside a script run"));
    };
    let at = line_at(lua, 2);
    // SAFETY: see `Running`.
    let (shared, session) = unsafe { (&*shared, &mut *session) };
    // A command inside a script speaks the script's protocol (`redis.setresp`),
    // not its caller's: replies whose shape depends on it (ZRANGE WITHSCORES)
    // are built for that.
    let caller_resp3 = std::mem::replace(&mut session.resp3, resp3);
    let reply = redis_call(shared, session, args, read_only, allow_oom);
    session.resp3 = caller_resp3;
    match reply {
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
    if let Some(slot) = slot_of(lua) {
        if let Some(mut r) = slot.running.get() {
            r.resp3 = resp3;
            slot.running.set(Some(r));
        }
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
            "{}:{line}: bad argument #{i} to '{name}' ({msg})",
            chunk_name(lua)
        )),
        None => mlua::Error::runtime(format!("bad argument #{i} to '?' ({msg})")),
    }
}

/// `luaL_error`: the message prefixed with the calling script line.
/// (`luaL_where`: no position when the caller is not Lua, as under `pcall`.)
fn script_raise(lua: &Lua, msg: &str) -> mlua::Error {
    match lua.inspect_stack(1, |d| d.current_line()).flatten() {
        Some(line) => mlua::Error::runtime(format!("{}:{line}: {msg}", chunk_name(lua))),
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

/// One Lua VM with the libraries Redis scripts may use and its sandbox. EVAL
/// has one; functions have their own (Redis 7 keeps libraries in a Lua state
/// of their own), built by the same code.
pub(crate) struct Vm {
    /// What `redis.call` shares with the run.
    slot: Arc<CallSlot>,
    pub(crate) lua: Mutex<Lua>,
    /// The real globals, behind the read-only proxy scripts see: KEYS and ARGV
    /// are set here for EVAL.
    globals: Table,
    /// The metatable of the proxy scripts see as their globals: a library's
    /// load swaps its `__index` for the load-time API (functions only).
    shown_globals_mt: Table,
    /// Registry references of what a run pushes: [`error_info`] as a Lua
    /// function, and the real globals.
    run_refs: RunRefs,
    /// [`run_entry`] as a Lua function.
    runner: Function,
    /// What a library's code sees as its globals while it loads (functions
    /// only): `redis.register_function`, `redis.log` and the log levels.
    pub(crate) library_api: Option<Table>,
    /// `user_script` or `user_function`: the chunk's name without its `@`.
    pub(crate) chunk: &'static str,
}

/// See [`Vm::run_refs`]. The keys hold their registry slots for the VM's life.
struct RunRefs {
    on_error: mlua::RegistryKey,
    globals: mlua::RegistryKey,
}

/// The chunk name errors of a VM carry (`user_script`, `user_function`).
#[derive(Clone, Copy)]
struct ChunkName(&'static str);

/// The chunk name of the VM `lua` (without its `@`).
pub(crate) fn chunk_name(lua: &Lua) -> &'static str {
    lua.app_data_ref::<ChunkName>()
        .map_or("user_script", |c| c.0)
}

impl Vm {
    /// A fresh VM with the libraries Redis scripts may use and its sandbox;
    /// `register` (functions only) is `redis.register_function`, which only
    /// the load-time API offers.
    pub(crate) fn new(
        chunk: &'static str,
        watch: &Arc<Watch>,
        register: Option<fn(&Lua, MultiValue) -> mlua::Result<()>>,
    ) -> Result<Self, String> {
        Self::build(chunk, watch, register).map_err(|e| e.to_string())
    }

    fn build(
        chunk: &'static str,
        watch: &Arc<Watch>,
        register: Option<fn(&Lua, MultiValue) -> mlua::Result<()>>,
    ) -> mlua::Result<Self> {
        let lua = Lua::new_with(
            StdLib::STRING | StdLib::TABLE | StdLib::MATH,
            LuaOptions::default(),
        )?;
        lua.set_app_data(ChunkName(chunk));
        let globals = lua.globals();
        let redis = lua.create_table()?;
        let sha = lua.create_function(|_, s: mlua::String| Ok(sha1_hex(&s.as_bytes())))?;
        redis.set("sha1hex", sha)?;
        redis.set("setresp", lua.create_function(set_resp)?)?;
        redis.set("acl_check_cmd", lua.create_function(acl_check_cmd)?)?;
        let slot = Arc::new(CallSlot::default());
        lua.set_app_data(SlotRef(slot.clone()));
        let finish = lua.create_function(finish_call)?;
        for (name, raise) in [("call", true), ("pcall", false)] {
            let whole = lua
                .create_function(move |lua, args: MultiValue| call_from_script(lua, args, raise))?;
            let entry: ffi::lua_CFunction = if raise {
                call_entry::<true>
            } else {
                call_entry::<false>
            };
            let slot_ptr = Arc::as_ptr(&slot).cast_mut().cast::<std::ffi::c_void>();
            // SAFETY: pushes the closure's four upvalues and makes it; the
            // slot outlives the VM's closures (the VM and its app data hold it).
            let f: Function = unsafe {
                lua.exec_raw((whole, &finish), |state| {
                    ffi::lua_pushlightuserdata(state, slot_ptr);
                    ffi::lua_insert(state, 1);
                    ffi::lua_pushcfunction(state, depth_probe);
                    ffi::lua_pushcclosure(state, entry, 4);
                })
            }?;
            redis.set(name, f)?;
        }
        globals.set("redis", redis)?;
        globals.set("bit", bit_library(&lua)?)?;
        install_random(&lua)?;
        let string: Table = globals.get("string")?;
        patterns::guard(&lua, &string)?;
        chunks::guard(&lua, &globals)?;
        globals.set("cjson", cjson::global(&lua)?)?;
        globals.set("cmsgpack", cmsgpack::library(&lua)?)?;
        globals.set("struct", struct_lib::library(&lua)?)?;
        // No file access from scripts.
        for name in ["loadfile", "dofile"] {
            globals.raw_remove(name)?;
        }
        lua.load(PRELUDE).set_name("=prelude").exec()?;
        let proxies = sandbox::Proxies {
            real_of: lua.create_table()?,
            shown: lua.create_table()?,
        };
        let base = sandbox::base_functions(&lua, &proxies)?;
        let register = match register {
            Some(f) => Value::Function(lua.create_function(f)?),
            None => Value::Nil,
        };
        let (scripts_g, real_g, library_api): (Table, Table, Option<Table>) = lua
            .load(SANDBOX)
            .set_name(SANDBOX_NAME)
            .call((proxies.real_of, proxies.shown, base, register))?;
        let shown_globals_mt = scripts_g
            .metatable()
            .ok_or_else(|| mlua::Error::runtime("the globals proxy has no metatable"))?;
        // Scripts (and the coroutines and `loadstring` chunks they make) get the
        // read-only proxy as their globals.
        lua.set_globals(scripts_g)?;
        let on_error = lua.create_function(error_info)?;
        let run_refs = RunRefs {
            on_error: lua.create_registry_value(on_error)?,
            globals: lua.create_registry_value(&real_g)?,
        };
        // SAFETY: `run_entry` keeps to the Lua API's rules (see there).
        let runner = unsafe { lua.create_c_function(run_entry) }?;
        install_hook(&lua, watch, false)?;
        Ok(Vm {
            runner,
            slot,
            lua: Mutex::new(lua),
            globals: real_g,
            shown_globals_mt,
            run_refs,
            library_api,
            chunk,
        })
    }

    /// Calls the function in the registry slot `function` (of this VM, locked:
    /// `lua`) with [`error_info`] as its message handler, as Lua's `xpcall`
    /// and Redis's `luaCallFunction` do: an EVAL script with KEYS and ARGV set
    /// as globals, a function with them as its two arguments. Returns what
    /// `xpcall` would: whether it ran, and its first value or the handler's.
    /// The one round trip into the VM of a run: [`run_entry`] (a C function,
    /// called through mlua's protected call, which allocates nothing on Lua
    /// 5.1) pushes everything by registry slot, nothing through mlua's handles.
    fn call(
        &self,
        kind: &RunKind,
        function: &mlua::RegistryKey,
        keys: &[Bytes],
        argv: &[Bytes],
    ) -> mlua::Result<(bool, Value)> {
        let params = RunParams {
            on_error: self.run_refs.on_error.id(),
            globals: self.run_refs.globals.id(),
            function: function.id(),
            script: matches!(kind, RunKind::Script),
            keys,
            argv,
        };
        let ptr = std::ptr::from_ref(&params)
            .cast_mut()
            .cast::<std::ffi::c_void>();
        self.runner.call(mlua::LightUserData(ptr))
    }

    /// Points the globals scripts see at `index` (a library's load-time API
    /// while it loads, the real globals after).
    pub(crate) fn set_globals_index(&self, index: Option<&Table>) -> mlua::Result<()> {
        match index {
            Some(t) => self.shown_globals_mt.raw_set("__index", t),
            None => self.shown_globals_mt.raw_set("__index", &self.globals),
        }
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts::new()
    }
}

/// A [`Vm`] built on first use: building one (the libraries, the sandbox)
/// is about half of a server's start-up, and most servers (a test fixture's
/// above all) never run a script. Until it is built there is nothing in it to
/// flush: no cached script, no library, cjson at its defaults.
pub(crate) struct LazyVm {
    vm: std::sync::OnceLock<Result<Vm, String>>,
    /// What the new VM held when built (Lua's heap): start-up memory in
    /// MEMORY STATS, as Redis's VMs, built at start-up, are.
    built_bytes: AtomicU64,
    chunk: &'static str,
    watch: Arc<Watch>,
    register: Option<fn(&Lua, MultiValue) -> mlua::Result<()>>,
}

impl LazyVm {
    /// A VM to build when first asked for, as [`Vm::new`] would.
    pub(crate) fn new(
        chunk: &'static str,
        watch: &Arc<Watch>,
        register: Option<fn(&Lua, MultiValue) -> mlua::Result<()>>,
    ) -> Self {
        LazyVm {
            vm: std::sync::OnceLock::new(),
            built_bytes: AtomicU64::new(0),
            chunk,
            watch: watch.clone(),
            register,
        }
    }

    /// The VM, built now if it is not yet (an error if it cannot be: the
    /// server goes on, without scripts).
    pub(crate) fn get(&self) -> Result<&Vm, CommandError> {
        self.vm
            .get_or_init(|| {
                let vm = Vm::new(self.chunk, &self.watch, self.register);
                if let Ok(vm) = &vm {
                    let bytes = vm.lua.lock().used_memory() as u64;
                    self.built_bytes.store(bytes, Ordering::Relaxed);
                }
                vm
            })
            .as_ref()
            .map_err(|e| CommandError::err(format!("cannot start the Lua VM: {e}")))
    }

    /// The VM if it has been built.
    pub(crate) fn built(&self) -> Option<&Vm> {
        self.vm.get().and_then(|vm| vm.as_ref().ok())
    }

    /// What the VM held when it was built (0 before).
    pub(crate) fn built_bytes(&self) -> u64 {
        self.built_bytes.load(Ordering::Relaxed)
    }

    /// The watch shared by the VMs (there whether or not this one is built).
    pub(crate) fn watch(&self) -> &Arc<Watch> {
        &self.watch
    }
}

/// What one run is: an EVAL script (KEYS and ARGV as globals) or a function
/// (called with the keys and the arguments).
pub(crate) enum RunKind {
    Script,
    Function,
}

impl Scripts {
    /// No scripts and no libraries; their VMs (EVAL's and the functions',
    /// with the libraries Redis scripts may use and their sandbox) are built
    /// on first use ([`Scripts::vms_built`]).
    pub fn new() -> Self {
        let watch = Arc::new(Watch::default());
        Scripts {
            eval: LazyVm::new("user_script", &watch, None),
            cache: Mutex::new(HashMap::default()),
            functions: functions::Functions::new(&watch),
            watch,
        }
    }

    /// Whether EVAL's VM and the functions' VM have been built (each is on
    /// its first use): what a test of their laziness looks at.
    #[doc(hidden)]
    pub fn vms_built(&self) -> (bool, bool) {
        (self.eval.built().is_some(), self.functions.vm_built())
    }

    /// What the VMs built so far held when built: MEMORY STATS counts it in
    /// `startup.allocated`, where Redis's start-up VMs are.
    pub fn vms_built_bytes(&self) -> u64 {
        self.eval.built_bytes() + self.functions.vm_built_bytes()
    }

    /// Whether a script has run past `busy-reply-threshold`: other clients get
    /// `BUSY`.
    pub fn is_busy(&self) -> bool {
        self.watch.busy.load(Ordering::Acquire)
    }

    /// Whether a script or function is running (this answers only beside a
    /// busy one).
    pub fn is_running(&self) -> bool {
        self.watch.started.lock().is_some()
    }

    /// The `BUSY` error for a busy script: a function's names FUNCTION KILL.
    pub fn busy_error(&self) -> CommandError {
        if self.watch.function.load(Ordering::Acquire) {
            CommandError::raw(BUSY_FUNCTION)
        } else {
            CommandError::raw(BUSY_SCRIPT)
        }
    }

    /// SCRIPT KILL (`eval`) or FUNCTION KILL: asks the running script to stop,
    /// unless it has written or is of the other kind.
    pub fn kill(&self, eval: bool) -> Result<(), CommandError> {
        let started = self.watch.started.lock();
        if started.is_none() {
            return Err(CommandError::raw(
                "NOTBUSY No scripts in execution right now.",
            ));
        }
        let unkillable = || {
            CommandError::raw(
                "UNKILLABLE Sorry the script already executed write commands against the \
                 dataset. You can either wait the script termination or kill the server in a \
                 hard way using the SHUTDOWN NOSAVE command.",
            )
        };
        let state = &self.watch.state;
        if state.load(Ordering::Acquire) == WROTE {
            return Err(unkillable());
        }
        let function = self.watch.function.load(Ordering::Acquire);
        if eval && function {
            return Err(CommandError::raw(BUSY_FUNCTION));
        }
        if !eval && !function {
            return Err(CommandError::raw(BUSY_SCRIPT));
        }
        match state.compare_exchange(CLEAN, KILLED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) | Err(KILLED) => Ok(()),
            Err(_) => Err(unkillable()),
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
        let flags = script_shebang(body)?;
        // Lua gets the code from the shebang's newline on, so lines keep
        // their numbers.
        let body = &body[flags.map_or(0, |(_, len)| len)..];
        if chunks::is_binary(body) {
            return Err(CommandError::err(format!(
                "Error compiling script (new function): {}",
                String::from_utf8_lossy(&chunks::refusal(b"@user_script"))
            )));
        }
        let lua = self.eval.get()?.lua.lock();
        let function = compile_chunk(&lua, body, "@user_script").map_err(|msg| {
            CommandError::err(format!("Error compiling script (new function): {msg}"))
        })?;
        let key = lua
            .create_registry_value(function)
            .map_err(|e| CommandError::err(e.to_string()))?;
        let flags = flags.map(|(flags, _)| flags);
        self.cache.lock().insert(sha.clone(), Cached { key, flags });
        Ok(sha)
    }

    /// Whether a script with this SHA-1 is cached.
    pub fn exists(&self, sha: &str) -> bool {
        self.cache.lock().contains_key(&sha.to_ascii_lowercase())
    }

    /// Drops every cached script.
    pub fn flush(&self) {
        self.cache.lock().clear();
        // A VM not built yet holds no script and cjson's defaults.
        let Some(vm) = self.eval.built() else {
            return;
        };
        let lua = vm.lua.lock();
        lua.expire_registry_values();
        // Redis's SCRIPT FLUSH starts a new VM: cjson's settings go back to
        // their defaults.
        cjson::reset(&lua);
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
        let cached = cache
            .get(sha)
            .ok_or_else(|| CommandError::raw("NOSCRIPT No matching script. Please use EVAL."))?;
        // A script with a shebang runs by its flags, as a function does; one
        // without runs as before Redis 7 had them.
        let (read_only, allow_oom) = match cached.flags {
            Some(flags) => functions::check_flags(shared, flags, read_only)?,
            None => (read_only, false),
        };
        // A cached script was compiled in the VM: it is built.
        let vm = self.eval.get()?;
        let lua = vm.lua.lock();
        let run = Run {
            vm,
            lua: &lua,
            kind: RunKind::Script,
            name: sha,
            read_only,
            allow_oom,
        };
        self.run_in(run, shared, session, &cached.key, keys, argv)
    }

    /// Runs `function` of `run.vm` (locked: `run.lua`) for its caller: the
    /// one way EVAL's scripts and FCALL's functions run. The caller holds the
    /// execution gate exclusively.
    pub(crate) fn run_in(
        &self,
        run: Run<'_>,
        shared: &Shared,
        session: &mut Session,
        function: &mlua::RegistryKey,
        keys: &[Bytes],
        argv: &[Bytes],
    ) -> Result<Reply, CommandError> {
        let Run {
            vm,
            lua,
            kind,
            name,
            read_only,
            allow_oom,
        } = run;
        let watch = &self.watch;
        watch
            .threshold_ms
            .store(shared.config.read().busy_reply_threshold, Ordering::Relaxed);
        watch
            .function
            .store(matches!(kind, RunKind::Function), Ordering::Release);
        // The command's start, already read: no clock read per script. (The state
        // is CLEAN: the last script's guard left it so.)
        *watch.started.lock() = Some(session.clock_mark);
        let _watching = WatchGuard(watch);
        let chunk = vm.chunk;
        let fail = |line: String, at: usize| {
            CommandError::raw(format!("{line} script: {name}, on @{chunk}:{at}."))
        };
        let outcome = (|| {
            vm.slot.running.set(Some(Running {
                shared,
                session,
                read_only,
                allow_oom,
                resp3: false,
            }));
            let _running = RunningGuard(&vm.slot);
            let (ok, value) = vm.call(&kind, function, keys, argv)?;
            let resp3 = vm.slot.running.get().is_some_and(|r| r.resp3);
            Ok::<_, mlua::Error>((ok, value, resp3))
        })();
        if watch.every_line.load(Ordering::Relaxed) {
            install_hook(lua, watch, false).map_err(|e| CommandError::err(e.to_string()))?;
        }
        match outcome {
            Ok((true, value, resp3)) => Ok(lua_to_reply(lua, value, resp3)),
            Ok((false, Value::Table(info), _)) => Err(error_from_info(&info, name)),
            Ok((false, Value::Error(e), _)) => Err(script_error(*e, chunk, &fail)),
            Ok((false, other, _)) => Err(fail(
                format!("ERR {}", other.to_string().unwrap_or_default()),
                0,
            )),
            Err(e) => Err(script_error(e, chunk, &fail)),
        }
    }
}

/// One run's parameters for [`Scripts::run_in`].
pub(crate) struct Run<'a> {
    pub vm: &'a Vm,
    pub lua: &'a Lua,
    pub kind: RunKind,
    /// What errors name: the script's SHA-1 or the function's name.
    pub name: &'a str,
    /// Writes refused (`*_RO`, a `no-writes` function).
    pub read_only: bool,
    /// Commands that may grow memory run over `maxmemory` (`allow-oom`).
    pub allow_oom: bool,
}

/// `BUSY` while a script from EVAL runs long.
const BUSY_SCRIPT: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
/// `BUSY` while a function runs long.
const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

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
fn script_error(
    e: mlua::Error,
    chunk: &str,
    fail: &dyn Fn(String, usize) -> CommandError,
) -> CommandError {
    if let mlua::Error::ExternalError(inner) = &e {
        if let Some(c) = inner.downcast_ref::<CallFailed>() {
            return fail(c.line.clone(), c.at);
        }
    }
    if let mlua::Error::CallbackError { cause, .. } = &e {
        return script_error((**cause).clone(), chunk, fail);
    }
    let msg = match e {
        mlua::Error::RuntimeError(m) => m,
        mlua::Error::ExternalError(inner) => inner.to_string(),
        other => other.to_string(),
    };
    let msg = msg.lines().next().unwrap_or_default().to_string();
    let at = msg
        .strip_prefix(chunk)
        .and_then(|r| r.strip_prefix(':'))
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    fail(format!("ERR {msg}"), at)
}

/// What [`run_entry`] runs: registry slots of the VM, and KEYS and ARGV.
struct RunParams<'a> {
    on_error: c_int,
    globals: c_int,
    function: c_int,
    /// An EVAL script (KEYS and ARGV globals), else a function (arguments).
    script: bool,
    keys: &'a [Bytes],
    argv: &'a [Bytes],
}

/// The body of [`Vm::call`], as a C function of one argument, a light
/// userdata pointing at its [`RunParams`]: pushes the handler and the
/// function, sets or pushes KEYS and ARGV, calls the function under the
/// handler, and returns whether it ran and its first value (or the
/// handler's), as `xpcall` would. A memory error raised on the way is its
/// caller's (mlua's protected call).
unsafe extern "C-unwind" fn run_entry(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: `Vm::call` passes a pointer to its `RunParams`, alive for the call.
    let p = &*(ffi::lua_touserdata(state, 1) as *const RunParams<'_>);
    ffi::lua_settop(state, 0);
    ffi::luaL_checkstack_(state, 6, std::ptr::null());
    ffi::lua_rawgeti_(state, ffi::LUA_REGISTRYINDEX, p.on_error);
    ffi::lua_rawgeti_(state, ffi::LUA_REGISTRYINDEX, p.function);
    let nargs = if p.script {
        ffi::lua_rawgeti_(state, ffi::LUA_REGISTRYINDEX, p.globals);
        ffi::lua_pushlstring_(state, c"KEYS".as_ptr(), 4);
        push_array(state, p.keys);
        ffi::lua_rawset(state, -3);
        ffi::lua_pushlstring_(state, c"ARGV".as_ptr(), 4);
        push_array(state, p.argv);
        ffi::lua_rawset(state, -3);
        ffi::lua_settop(state, -2);
        0
    } else {
        push_array(state, p.keys);
        push_array(state, p.argv);
        2
    };
    let status = ffi::lua_pcall(state, nargs, 1, 1);
    ffi::lua_pushboolean(state, c_int::from(status == 0));
    ffi::lua_replace(state, 1);
    2
}

/// Pushes KEYS or ARGV, a new Lua array of the strings, as Redis's
/// `luaCreateArray` builds it: a fresh table for each run (a function that
/// keeps its KEYS keeps what it was called with). Straight onto the stack: no
/// handle or reference slot per item. Raises Lua's memory error on failure.
///
/// # Safety
/// `state` has a free stack slot beyond the table's; called inside a
/// protected call ([`run_entry`]'s caller), which catches the error it may
/// raise.
unsafe fn push_array(state: *mut ffi::lua_State, items: &[Bytes]) {
    // More items than a C int counts cannot arrive (a request's arguments are
    // bounded far below), and would not fit a Lua array.
    let items = &items[..items.len().min(c_int::MAX as usize - 1)];
    ffi::lua_createtable(state, items.len() as c_int, 0);
    for (i, item) in items.iter().enumerate() {
        if item.is_empty() {
            ffi::lua_pushlstring_(state, c"".as_ptr(), 0);
        } else {
            ffi::lua_pushlstring_(state, item.as_ptr().cast::<c_char>(), item.len());
        }
        ffi::lua_rawseti_(state, -2, i as c_int + 1);
    }
}

/// A script in EVAL's cache: its compiled function, and the flags of its
/// shebang (`None` for a script without one).
struct Cached {
    key: mlua::RegistryKey,
    flags: Option<u8>,
}

/// EVAL's shebang line (`#!lua flags=no-writes,allow-oom`, Redis 7): the
/// flags it names (bits of [`functions::FLAG_NAMES`]) and the line's length,
/// or `None` for a script that does not start with `#!`. Redis's errors
/// (`evalExtractShebangFlags`).
fn script_shebang(body: &[u8]) -> Result<Option<(u8, usize)>, CommandError> {
    if !body.starts_with(b"#!") {
        return Ok(None);
    }
    let (parts, end) = functions::shebang_words(body).map_err(|bad| {
        CommandError::err(match bad {
            functions::BadShebang::Unterminated => "Invalid script shebang",
            functions::BadShebang::NoWords => "Invalid engine in script shebang",
        })
    })?;
    if parts[0] != b"#!lua" {
        return Err(CommandError::err(format!(
            "Unexpected engine in script shebang: {}",
            String::from_utf8_lossy(&parts[0])
        )));
    }
    let mut flags = 0u8;
    for part in &parts[1..] {
        let Some(names) = part.strip_prefix(b"flags=") else {
            return Err(CommandError::err(format!(
                "Unknown lua shebang option: {}",
                String::from_utf8_lossy(part)
            )));
        };
        // `flags=` alone names none.
        for name in names.split(|c| *c == b',').filter(|_| !names.is_empty()) {
            match functions::FLAG_NAMES
                .iter()
                .position(|f| f.as_bytes() == name)
            {
                Some(bit) => flags |= 1 << bit,
                None => {
                    return Err(CommandError::err(format!(
                        "Unexpected flag in script shebang: {}",
                        String::from_utf8_lossy(name)
                    )))
                }
            }
        }
    }
    Ok(Some((flags, end)))
}

/// Compiles `body` as text (never bytecode) under the chunk name `name`
/// (EVAL's `@user_script`, a library's `@user_function`); the error is Lua's
/// message.
pub(crate) fn compile_chunk(lua: &Lua, body: &[u8], name: &str) -> Result<Function, String> {
    lua.load(body)
        .set_name(name)
        .set_mode(mlua::ChunkMode::Text)
        .into_function()
        .map_err(|e| match e {
            mlua::Error::SyntaxError { message, .. } => message,
            other => other.to_string(),
        })
}

/// The words of a `redis.call`-like call: strings, and numbers as C's
/// `%.17g` writes them (Redis 7.0 formats them so, not with Lua's own
/// `%.14g`: `0.1+0.2` is `0.30000000000000004`, `2^53` is
/// `9007199254740992`).
fn call_words(args: MultiValue) -> Result<Vec<Bytes>, CommandError> {
    let mut words = Vec::with_capacity(args.len());
    for v in args {
        match v {
            Value::String(s) => words.push(Bytes::copy_from_slice(&s.as_bytes())),
            // Lua 5.1's numbers are all doubles.
            Value::Integer(i) => words.push(crate::reply::format_double(i as f64).into()),
            Value::Number(n) => words.push(crate::reply::format_double(n).into()),
            _ => {
                return Err(CommandError::err(
                    "Lua redis lib command arguments must be strings or integers",
                ))
            }
        }
    }
    if words.is_empty() {
        return Err(CommandError::err(
            "Please specify at least one argument for this redis lib call",
        ));
    }
    Ok(words)
}

/// `redis.acl_check_cmd(command, args...)`: whether the script's caller may
/// run that command with those arguments.
fn acl_check_cmd(lua: &Lua, args: MultiValue) -> mlua::Result<bool> {
    let (shared, session) = match running(lua) {
        Some(r) => (r.shared, r.session),
        None => {
            return Err(script_raise_plain(
                lua,
                "redis.acl_check_cmd can only be called inside a script invocation",
            ))
        }
    };
    // SAFETY: see `Running`.
    let (shared, session) = unsafe { (&*shared, &*session) };
    let words = call_words(args).map_err(|e| {
        let line = e.to_string();
        script_raise_plain(lua, line.strip_prefix("ERR ").unwrap_or(&line))
    })?;
    let Some(cmd) = shared.commands.lookup(&words) else {
        return Err(script_raise_plain(
            lua,
            "Invalid command passed to redis.acl_check_cmd()",
        ));
    };
    Ok(session.user.rules().check(cmd, &words).is_ok())
}

/// Runs one command for `redis.call`/`redis.pcall`; errors are replies.
fn redis_call(
    shared: &Shared,
    session: &mut Session,
    args: MultiValue,
    read_only: bool,
    allow_oom: bool,
) -> Reply {
    match call_words(args) {
        Ok(words) => run_words(shared, session, words, read_only, allow_oom),
        Err(e) => Reply::Error(e),
    }
}

/// Runs the command `words` for `redis.call`/`redis.pcall`; errors are replies.
fn run_words(
    shared: &Shared,
    session: &mut Session,
    words: Vec<Bytes>,
    read_only: bool,
    allow_oom: bool,
) -> Reply {
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
    if !session.user.is_unrestricted() {
        if let Err(e) = commands::acl::check_script(shared, session, cmd, &words) {
            return Reply::Error(e);
        }
    }
    if cmd.spec.has(flag::WRITE) {
        if read_only {
            return Reply::Error(CommandError::err(
                "Write commands are not allowed from read-only scripts.",
            ));
        }
        if shared.persist.writes_denied() {
            return Reply::Error(CommandError::Misconf);
        }
        // A script killed before its first write does not get to write.
        let state = &shared.scripts.watch.state;
        if state.compare_exchange(CLEAN, WROTE, Ordering::AcqRel, Ordering::Acquire) == Err(KILLED)
        {
            return Reply::Error(CommandError::raw(KILLED_REPLY));
        }
    }
    if cmd.spec.has(flag::DENYOOM) && !allow_oom {
        let max = shared.memory.maxmemory();
        if max > 0 && shared.memory.used_now() > max {
            // A script's call that may grow memory, as Redis's scriptVerifyOOM.
            return Reply::Error(commands::oom_error());
        }
    }
    commands::call(shared, session, cmd, &words, CallMode::Script)
}

/// A reply as a Lua value, with Redis's RESP2 conversions or, after
/// `redis.setresp(3)`, its RESP3 ones (nil, booleans, and `{double=}`, `{map=}`,
/// `{set=}`, `{verbatim_string=}` tables).
///
/// Replies a command builds nest a few levels at most; the walk still refuses to
/// go deeper than [`MAX_REPLY_DEPTH`], so no reply can exhaust the stack or the
/// VM's reference slots.
fn reply_to_lua(lua: &Lua, reply: &Reply, resp3: bool) -> mlua::Result<Value> {
    reply_to_lua_at(lua, reply, resp3, 0)
}

/// How deep [`reply_to_lua`] follows a reply: command replies nest a few levels,
/// and 128 recursive steps stay far inside a 2 MiB stack even in a debug build
/// (1,000 did not).
const MAX_REPLY_DEPTH: usize = 128;

fn too_deep() -> mlua::Error {
    mlua::Error::runtime("reached lua stack limit")
}

fn reply_to_lua_at(lua: &Lua, reply: &Reply, resp3: bool, depth: usize) -> mlua::Result<Value> {
    if depth > MAX_REPLY_DEPTH {
        return Err(too_deep());
    }
    let inner = |item: &Reply| reply_to_lua_at(lua, item, resp3, depth + 1);
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
        Reply::HumanDouble(d) if resp3 => wrapped("double", Value::Number(*d))?,
        Reply::HumanDouble(d) => {
            Value::String(lua.create_string(crate::reply::format_human_double(*d))?)
        }
        Reply::Error(e) => error_table(lua, e.to_string().as_bytes())?,
        Reply::Set(items) if resp3 => {
            let members = lua.create_table()?;
            for item in items {
                members.raw_set(inner(item)?, true)?;
            }
            wrapped("set", Value::Table(members))?
        }
        // Frames never reach a script (SUBSCRIBE is noscript); as an array if so.
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) | Reply::Frames(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, inner(item)?)?;
            }
            Value::Table(t)
        }
        Reply::Map(pairs) if resp3 => {
            let map = lua.create_table()?;
            for (k, v) in pairs {
                map.raw_set(inner(k)?, inner(v)?)?;
            }
            wrapped("map", Value::Table(map))?
        }
        Reply::Map(pairs) => {
            let t = lua.create_table_with_capacity(pairs.len() * 2, 0)?;
            for (i, (k, v)) in pairs.iter().enumerate() {
                t.raw_set(2 * i + 1, inner(k)?)?;
                t.raw_set(2 * i + 2, inner(v)?)?;
            }
            Value::Table(t)
        }
        Reply::Nested(n) => nested_to_lua(lua, n, resp3, depth)?,
        Reply::Written(w) => reply_to_lua_at(lua, &w.to_reply(), resp3, depth)?,
    })
}

/// A [`Nested`] reply as a Lua value, without recursion: a stack of the tables
/// being filled. (Only scripts build nested replies, and a script's reply never
/// comes back to a script; this keeps the conversion total all the same.)
fn nested_to_lua(lua: &Lua, nested: &Nested, resp3: bool, depth: usize) -> mlua::Result<Value> {
    /// A table being filled: what it becomes, its elements still to come, the
    /// next array index, and a map key waiting for its value.
    struct Filling {
        table: Table,
        kind: Part,
        left: usize,
        index: usize,
        key: Option<Value>,
    }
    let mut open: Vec<Filling> = Vec::new();
    let mut parts = nested.0.iter();
    loop {
        let Some(part) = parts.next() else {
            return Ok(Value::Nil);
        };
        let mut value = match part {
            Part::Array(n) | Part::Map(n) | Part::Set(n) => {
                if depth + open.len() >= MAX_REPLY_DEPTH {
                    return Err(too_deep());
                }
                let table = lua.create_table()?;
                let left = if matches!(part, Part::Map(_)) {
                    n.saturating_mul(2)
                } else {
                    *n
                };
                open.push(Filling {
                    table,
                    kind: part.clone(),
                    left,
                    index: 0,
                    key: None,
                });
                None
            }
            Part::Int(i) => Some(Value::Integer(*i)),
            Part::Bulk(b) | Part::BigNumber(b) | Part::Verbatim(_, b) => {
                Some(Value::String(lua.create_string(b)?))
            }
            Part::Status(b) => Some(status_table(lua, b)?),
            Part::Error(b) => Some(error_table(lua, b)?),
            Part::Null if resp3 => Some(Value::Nil),
            Part::Null => Some(Value::Boolean(false)),
            Part::Bool(b) if resp3 => Some(Value::Boolean(*b)),
            Part::Bool(b) => Some(Value::Integer(i64::from(*b))),
            Part::Double(d) => Some(reply_to_lua_at(lua, &Reply::Double(*d), resp3, depth)?),
        };
        // Close every container this value (or an empty container) completes.
        loop {
            let Some(top) = open.last_mut() else {
                return Ok(value.unwrap_or(Value::Nil));
            };
            if let Some(v) = value.take() {
                top.left -= 1;
                match (&top.kind, resp3) {
                    (Part::Set(_), true) => top.table.raw_set(v, true)?,
                    (Part::Map(_), true) => match top.key.take() {
                        None => top.key = Some(v),
                        Some(k) => top.table.raw_set(k, v)?,
                    },
                    _ => {
                        top.index += 1;
                        top.table.raw_set(top.index, v)?;
                    }
                }
            }
            if top.left > 0 {
                break;
            }
            let Some(done) = open.pop() else { break };
            let table = Value::Table(done.table);
            value = Some(match (&done.kind, resp3) {
                (Part::Set(_), true) => {
                    let t = lua.create_table()?;
                    t.raw_set("set", table)?;
                    Value::Table(t)
                }
                (Part::Map(_), true) => {
                    let t = lua.create_table()?;
                    t.raw_set("map", table)?;
                    Value::Table(t)
                }
                _ => table,
            });
        }
    }
}

fn error_table(lua: &Lua, line: &[u8]) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("err", lua.create_string(line)?)?;
    Ok(Value::Table(t))
}

fn status_table(lua: &Lua, s: &[u8]) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("ok", lua.create_string(s)?)?;
    Ok(Value::Table(t))
}

/// A Lua value as a reply, converted as Redis 7's `luaReplyToRedisReply` does:
/// numbers truncate to integers (out of range and NaN give the integer x86-64
/// gives, `i64::MIN`), `true` is 1 and `false` nil (RESP3 booleans after
/// `redis.setresp(3)`), `{err=}`/`{ok=}` are error/status replies (cut at a NUL, CR
/// and LF made spaces), `{double=}`, `{big_number=}`, `{verbatim_string=}`,
/// `{map=}` and `{set=}` the RESP3 types, other tables arrays up to their first
/// nil, and anything else nil.
///
/// The walk runs on the Lua stack itself, iteratively, and like Redis's it checks
/// before each value that the stack has room for 4 more slots within Lua's limit
/// (`LUAI_MAXCSTACK`, 8000), giving `ERR reached lua stack limit` in its place
/// otherwise: the value's depth costs no Rust stack, and a script's reply is cut
/// at the same depth as in Redis (an array nested 7,995 deep). The result is a flat
/// [`Nested`] unless it is one plain scalar.
fn lua_to_reply(lua: &Lua, value: Value, resp3: bool) -> Reply {
    // A scalar result (the usual one: a lock script's integer or nil) needs no
    // walk: the stack check cannot fail at the top.
    match value {
        Value::Table(_) => {}
        Value::Integer(i) => return Reply::Int(i),
        Value::Number(n) => return Reply::Int(truncate_like_x86(n)),
        Value::String(s) => return Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) if resp3 => return Reply::Bool(b),
        Value::Boolean(true) => return Reply::Int(1),
        _ => return Reply::Nil,
    }
    let mut walk = Walk {
        resp3,
        parts: Vec::new(),
        open: Vec::new(),
    };
    // The walk starts with the value above one other slot, as in Redis (the
    // error handler below the script's result), so the depth limit is the same.
    // SAFETY: `walk_lua_value` only calls the Lua API on values of the types it
    // checked, keeps its stack balanced, and holds nothing that needs dropping in
    // its own frame: whatever it builds lives in `walk`, out here, so a Lua error
    // (out of memory) that unwinds by longjmp past it loses nothing.
    let walked = unsafe {
        lua.exec_raw::<()>((Value::Nil, value), |state| {
            walk_lua_value(state, &mut walk);
        })
    };
    match walked {
        Ok(()) => Nested(walk.parts).into_reply(),
        Err(e) => Reply::Error(CommandError::err(e.to_string())),
    }
}

/// The state of [`lua_to_reply`]'s walk, owned outside the Lua call.
struct Walk {
    resp3: bool,
    parts: Vec<Part>,
    /// The containers being filled, innermost last.
    open: Vec<Open>,
}

/// A container whose elements are being converted: where its header is in
/// `parts`, and how many elements it has so far.
struct Open {
    at: usize,
    count: usize,
    kind: OpenKind,
}

enum OpenKind {
    /// Elements `1..`: the next index to read.
    Array(i32),
    /// A `{map=}`: whether the value of the key just converted is on the stack.
    Map {
        value_next: bool,
    },
    Set,
}

/// Walks the value on top of `state`'s stack into `walk.parts`, popping it; see
/// [`lua_to_reply`]. The Lua stack holds what Redis's recursion would hold (each
/// open container's table and its iteration key), the Rust side only `walk`.
///
/// # Safety
///
/// `state` must have the value on top, inside a protected call.
unsafe fn walk_lua_value(state: *mut ffi::lua_State, walk: &mut Walk) {
    use ffi::*;
    'convert: loop {
        convert_top(state, walk);
        // Find the next value to convert: the next element of the innermost open
        // container, closing the ones that are done.
        loop {
            let Some(open) = walk.open.last_mut() else {
                break 'convert;
            };
            match &mut open.kind {
                OpenKind::Array(next) => {
                    let index = *next;
                    *next = next.saturating_add(1);
                    lua_rawgeti_(state, -1, index);
                    if lua_type(state, -1) != LUA_TNIL {
                        open.count += 1;
                        continue 'convert;
                    }
                    lua_pop(state, 2); // the nil and the table
                }
                OpenKind::Map { value_next } => {
                    if *value_next {
                        *value_next = false;
                        continue 'convert;
                    }
                    if lua_next(state, -2) != 0 {
                        // Stack: table, map, key, value; the key is converted
                        // from a copy, then the value.
                        lua_pushvalue(state, -2);
                        *value_next = true;
                        open.count += 1;
                        continue 'convert;
                    }
                    lua_pop(state, 2); // the map and the table
                }
                OpenKind::Set => {
                    if lua_next(state, -2) != 0 {
                        lua_pop(state, 1); // the member's value
                        lua_pushvalue(state, -1);
                        open.count += 1;
                        continue 'convert;
                    }
                    lua_pop(state, 2); // the set and the table
                }
            }
            let (at, count) = (open.at, open.count);
            walk.open.pop();
            walk.parts[at] = match walk.parts[at] {
                Part::Map(_) => Part::Map(count),
                Part::Set(_) => Part::Set(count),
                _ => Part::Array(count),
            };
        }
    }
}

/// Converts the value on top of the stack: a scalar is written and popped; a
/// container's header is written and it is opened, its table left on the stack.
///
/// # Safety
///
/// As [`walk_lua_value`].
unsafe fn convert_top(state: *mut ffi::lua_State, walk: &mut Walk) {
    use ffi::*;
    if lua_checkstack(state, 4) == 0 {
        walk.parts.push(Part::Error(Bytes::from_static(
            b"ERR reached lua stack limit",
        )));
        lua_pop(state, 1);
        return;
    }
    let part = match lua_type(state, -1) {
        LUA_TSTRING => Part::Bulk(Bytes::copy_from_slice(lua_bytes(state, -1))),
        LUA_TBOOLEAN => match (walk.resp3, lua_toboolean(state, -1) != 0) {
            (true, b) => Part::Bool(b),
            (false, true) => Part::Int(1),
            (false, false) => Part::Null,
        },
        LUA_TNUMBER => Part::Int(truncate_like_x86(lua_tonumber(state, -1))),
        LUA_TTABLE => {
            if let Some(part) = table_scalar(state) {
                part
            } else {
                // `table_scalar` left the container to open on the stack: the
                // table, then the map or set (a map's or set's iteration starts at
                // nil), or just the table for an array.
                let kind = if field_is(state, b"map", LUA_TTABLE) {
                    walk.parts.push(Part::Map(0));
                    OpenKind::Map { value_next: false }
                } else if field_is(state, b"set", LUA_TTABLE) {
                    walk.parts.push(Part::Set(0));
                    OpenKind::Set
                } else {
                    walk.parts.push(Part::Array(0));
                    OpenKind::Array(1)
                };
                if !matches!(kind, OpenKind::Array(_)) {
                    lua_pushnil(state);
                }
                walk.open.push(Open {
                    at: walk.parts.len() - 1,
                    count: 0,
                    kind,
                });
                return;
            }
        }
        _ => Part::Null,
    };
    walk.parts.push(part);
    lua_pop(state, 1);
}

/// The scalar a table on top of the stack stands for (`{err=}`, `{ok=}`,
/// `{double=}`, `{big_number=}`, `{verbatim_string=}`, checked in Redis's order),
/// or `None` with the stack as it was.
///
/// # Safety
///
/// As [`walk_lua_value`], with a table on top.
unsafe fn table_scalar(state: *mut ffi::lua_State) -> Option<Part> {
    use ffi::*;
    let mut found = None;
    if field_is(state, b"err", LUA_TSTRING) {
        let mut text = c_string(lua_bytes(state, -1)).to_vec();
        while text.last().is_some_and(|c| *c == b'\r' || *c == b'\n') {
            text.pop();
        }
        found = Some(Part::Error(Bytes::from(spaces_for_newlines(text))));
    } else if field_is(state, b"ok", LUA_TSTRING) {
        let text = c_string(lua_bytes(state, -1)).to_vec();
        found = Some(Part::Status(Bytes::from(spaces_for_newlines(text))));
    } else if field_is(state, b"double", LUA_TNUMBER) {
        found = Some(Part::Double(lua_tonumber(state, -1)));
    } else if field_is(state, b"big_number", LUA_TSTRING) {
        let text = lua_bytes(state, -1).to_vec();
        found = Some(Part::BigNumber(Bytes::from(spaces_for_newlines(text))));
    } else if field_is(state, b"verbatim_string", LUA_TTABLE) {
        if field_is(state, b"format", LUA_TSTRING) {
            let mut format = [b' '; 3];
            for (slot, c) in format.iter_mut().zip(c_string(lua_bytes(state, -1))) {
                *slot = *c;
            }
            lua_pop(state, 1);
            if field_is(state, b"string", LUA_TSTRING) {
                let text = Bytes::copy_from_slice(lua_bytes(state, -1));
                found = Some(Part::Verbatim(format, text));
            }
        }
        lua_pop(state, 1);
    }
    if found.is_some() {
        lua_pop(state, 1);
    }
    found
}

/// Pushes field `name` of the table on top; if it has type `want` it stays on the
/// stack and this returns true, else it is popped.
///
/// # Safety
///
/// As [`walk_lua_value`], with a table on top.
unsafe fn field_is(state: *mut ffi::lua_State, name: &[u8], want: std::ffi::c_int) -> bool {
    ffi::lua_pushlstring(state, name.as_ptr().cast(), name.len());
    ffi::lua_rawget_(state, -2);
    if ffi::lua_type(state, -1) == want {
        return true;
    }
    ffi::lua_pop(state, 1);
    false
}

/// The bytes of the string at `index`, valid while it stays on the stack.
///
/// # Safety
///
/// The value at `index` must be a string (not a number, which this would convert
/// in place).
unsafe fn lua_bytes<'a>(state: *mut ffi::lua_State, index: std::ffi::c_int) -> &'a [u8] {
    let mut len = 0usize;
    let ptr = ffi::lua_tolstring(state, index, &mut len);
    if ptr.is_null() {
        return &[];
    }
    std::slice::from_raw_parts(ptr.cast(), len)
}

/// The text up to the first NUL, as Redis reads a Lua string as a C string.
fn c_string(text: &[u8]) -> &[u8] {
    text.split(|c| *c == 0).next().unwrap_or_default()
}

/// CR and LF made spaces, so a status or error line cannot end early.
fn spaces_for_newlines(mut text: Vec<u8>) -> Vec<u8> {
    for c in &mut text {
        if *c == b'\r' || *c == b'\n' {
            *c = b' ';
        }
    }
    text
}

/// `(long long)d` as x86-64 computes it: truncation toward zero, and
/// `i64::MIN` for NaN and anything out of range.
fn truncate_like_x86(d: f64) -> i64 {
    // 2^63: the first double above i64's range. NaN is in no range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if !(-LIMIT..LIMIT).contains(&d) {
        i64::MIN
    } else {
        d as i64
    }
}

impl Nested {
    /// One scalar as the plain reply it is (so an `{err=}` result counts as a
    /// failed call); anything else stays nested.
    fn into_reply(self) -> Reply {
        let mut parts = self.0;
        if parts.len() != 1 {
            return Reply::Nested(Nested(parts));
        }
        match parts.pop() {
            Some(Part::Int(i)) => Reply::Int(i),
            Some(Part::Bulk(b)) => Reply::Bulk(b),
            Some(Part::Null) => Reply::Nil,
            Some(Part::Status(b)) => Reply::Status(b),
            Some(Part::Bool(b)) => Reply::Bool(b),
            Some(Part::Double(d)) => Reply::Double(d),
            Some(Part::Error(b)) => match String::from_utf8(b.to_vec()) {
                Ok(line) => Reply::Error(CommandError::raw(line)),
                Err(_) => Reply::Nested(Nested(vec![Part::Error(b)])),
            },
            Some(part) => Reply::Nested(Nested(vec![part])),
            None => Reply::Nested(Nested(parts)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lua() -> Lua {
        Lua::new()
    }

    #[test]
    fn a_nested_reply_becomes_lua_tables_in_resp2_and_resp3() {
        let lua = lua();
        let nested = Reply::Nested(Nested(vec![
            Part::Array(3),
            Part::Map(1),
            Part::Bulk(Bytes::from_static(b"k")),
            Part::Set(1),
            Part::Int(7),
            Part::Array(0),
            Part::Null,
        ]));
        let check = |resp3: bool, code: &str| {
            let v = reply_to_lua(&lua, &nested, resp3).expect("converts");
            lua.globals().raw_set("v", v).unwrap();
            let ok: bool = lua.load(code).eval().expect("runs");
            assert!(ok, "resp3={resp3}: {code}");
        };
        check(
            false,
            "return v[1][1] == 'k' and v[1][2][1] == 7 and #v[2] == 0 and v[3] == false",
        );
        check(
            true,
            "return v[1].map.k.set[7] == true and #v[2] == 0 and v[3] == nil",
        );
    }

    #[test]
    fn each_vm_is_built_on_its_first_use_and_not_by_a_flush() {
        let scripts = Scripts::new();
        assert_eq!(scripts.vms_built(), (false, false));
        // Nothing of these needs a VM: none is built.
        scripts.flush();
        scripts.functions.flush();
        assert!(!scripts.exists("e0e1f9fabfc9d4800c877a703b823ac0578ff8db"));
        let gone = scripts.functions.delete(b"lib").expect_err("no library");
        assert_eq!(gone.to_string(), "ERR Library not found");
        assert_eq!(scripts.vms_built(), (false, false));
        // A script builds EVAL's VM only.
        let sha = scripts.load(b"return 1").expect("compiles");
        assert_eq!(sha, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
        assert_eq!(scripts.vms_built(), (true, false));
        // A library builds the functions' VM.
        let lib = b"#!lua name=lib\nredis.register_function('f', function() return 1 end)";
        assert_eq!(
            scripts.functions.load(lib, false, true).expect("loads"),
            "lib"
        );
        assert_eq!(scripts.vms_built(), (true, true));
        // A flush empties them and keeps them.
        scripts.flush();
        scripts.functions.flush();
        assert!(!scripts.exists(&sha));
        assert_eq!(scripts.functions.codes().len(), 0);
        assert_eq!(scripts.vms_built(), (true, true));
        assert_eq!(scripts.load(b"return 1").expect("compiles"), sha);
    }

    #[test]
    fn a_reply_deeper_than_the_bound_is_refused_not_followed() {
        let lua = lua();
        let mut parts = vec![Part::Array(1); MAX_REPLY_DEPTH + 5];
        parts.push(Part::Int(1));
        let deep = Reply::Nested(Nested(parts));
        let err = reply_to_lua(&lua, &deep, false).expect_err("too deep");
        assert!(err.to_string().contains("reached lua stack limit"), "{err}");
        let mut tree = Reply::Int(1);
        for _ in 0..MAX_REPLY_DEPTH + 5 {
            tree = Reply::Array(vec![tree]);
        }
        assert!(reply_to_lua(&lua, &tree, true).is_err());
    }

    #[test]
    fn a_lua_value_converts_as_redis_converts_it() {
        let lua = lua();
        let convert = |code: &str, resp3: bool| {
            let v: Value = lua.load(code).eval().expect("runs");
            let mut out = bytes::BytesMut::new();
            lua_to_reply(&lua, v, resp3).encode(true, &mut out);
            String::from_utf8_lossy(&out).into_owned()
        };
        assert_eq!(
            convert("return {1, 'a', {ok='s\\r\\n'}}", false),
            "*3\r\n:1\r\n$1\r\na\r\n+s  \r\n"
        );
        assert_eq!(convert("return {true, false}", true), "*2\r\n#t\r\n#f\r\n");
        assert_eq!(convert("return {true, false}", false), "*2\r\n:1\r\n_\r\n");
        assert_eq!(convert("return 0/0", false), ":-9223372036854775808\r\n");
        assert_eq!(convert("return print", false), "_\r\n");
        let deep = convert("local t={} for i=1,100000 do t={t} end return t", false);
        assert!(deep.ends_with("*1\r\n-ERR reached lua stack limit\r\n"));
        assert_eq!(deep.matches("*1\r\n").count(), 7995);
    }
}
