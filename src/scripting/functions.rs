//! Redis 7 functions: the libraries FUNCTION LOAD compiles, in a Lua VM of
//! their own (built by the same code as EVAL's, with the same sandbox), and
//! the functions they register, which FCALL runs through the same path as
//! EVAL's scripts ([`Scripts::run_in`]).
//!
//! A library's code runs once when it loads, with only the load-time API as
//! its globals (`redis.register_function`, `redis.log`); what it registers is
//! kept in the VM's registry. The registry of libraries publishes their code
//! to the keyspace ([`FunctionCodes`]) at every change, under its own lock,
//! so a snapshot takes the libraries of its instant.
//!
//! Lock order: the VM, then the libraries. FUNCTION STATS and LIST take only
//! the libraries, so they answer beside a busy function.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mlua::{Function, Lua, MultiValue, RegistryKey, Table, Value};
use parking_lot::Mutex;

use super::{CallFailed, LazyVm, Vm, Watch};
use crate::error::CommandError;
use crate::keyspace::FunctionCodes;

/// Function flags, in Redis's order (FUNCTION LIST shows them so).
pub const FLAG_NAMES: [&str; 5] = [
    "no-writes",
    "allow-oom",
    "allow-stale",
    "no-cluster",
    "allow-cross-slot-keys",
];
/// `no-writes`: the function may not write (FCALL_RO may run it).
pub const NO_WRITES: u8 = 1;
/// `allow-oom`: runs, and its calls may grow memory, over `maxmemory`.
pub const ALLOW_OOM: u8 = 2;

/// How long a library's code may run while it loads (Redis's 500 ms).
const LOAD_TIMEOUT: Duration = Duration::from_millis(500);

/// What Redis says of a bad library or function name.
const BAD_NAME: &str = "Library names can only contain letters, numbers, or underscores(_) \
                        and must be at least one character long";

/// An error raised while a library loads: the reply's message after
/// `Error registering functions: `.
#[derive(Debug)]
pub(crate) struct LoadFailed(pub String);

impl std::fmt::Display for LoadFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadFailed {}

/// One registered function.
pub struct FunctionInfo {
    /// Its name (functions are found whatever the case, as in Redis;
    /// libraries by their exact name). Shared: each FCALL takes a copy.
    pub name: Arc<str>,
    /// The `description` it was registered with.
    pub description: Option<Bytes>,
    /// Bits of the flags ([`FLAG_NAMES`] order).
    pub flags: u8,
    key: Arc<RegistryKey>,
}

/// One library: its name, code (shebang included) and functions.
pub struct Library {
    /// Its name.
    pub name: String,
    /// What FUNCTION LOAD was given.
    pub code: Bytes,
    /// Its functions, in registration order.
    pub functions: Vec<FunctionInfo>,
}

impl Library {
    /// Refuses a function of this library whose name (any case) one of
    /// `others` has already: Redis's `Function ... already exists`.
    fn check_names_free<'a>(
        &self,
        others: impl Iterator<Item = &'a Library>,
    ) -> Result<(), CommandError> {
        let taken = |f: &FunctionInfo, l: &Library| {
            l.functions
                .iter()
                .any(|g| g.name.eq_ignore_ascii_case(&f.name))
        };
        let others: Vec<&Library> = others.collect();
        match self
            .functions
            .iter()
            .find(|f| others.iter().any(|l| taken(f, l)))
        {
            Some(f) => Err(CommandError::err(format!(
                "Function {} already exists",
                f.name
            ))),
            None => Ok(()),
        }
    }
}

/// Functions registered by the library being loaded (the VM's app data
/// while it loads).
#[derive(Default)]
struct Loading {
    functions: Vec<FunctionInfo>,
}

/// The libraries and their VM.
pub struct Functions {
    /// Built by the first library loaded (FUNCTION LOAD or RESTORE, a load
    /// from a file); until then there are no libraries.
    vm: LazyVm,
    libs: Mutex<Vec<Library>>,
    /// Where every change is published for snapshots.
    codes: Mutex<Option<FunctionCodes>>,
}

/// How FUNCTION RESTORE treats the libraries already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePolicy {
    /// Delete them all first.
    Flush,
    /// Add; a library of the same name is an error.
    Append,
    /// Add; a library of the same name is replaced.
    Replace,
}

impl Functions {
    /// No libraries, and their VM (sharing `watch` with EVAL's), built on
    /// first use.
    pub(crate) fn new(watch: &Arc<Watch>) -> Self {
        Functions {
            vm: LazyVm::new("user_function", watch, Some(register_function)),
            libs: Mutex::new(Vec::new()),
            codes: Mutex::new(None),
        }
    }

    /// What the VM held when it was built (0 before).
    pub(crate) fn vm_built_bytes(&self) -> u64 {
        self.vm.built_bytes()
    }

    /// Whether the VM has been built.
    pub(crate) fn vm_built(&self) -> bool {
        self.vm.built().is_some()
    }

    /// Publishes every change to `codes` from now on (the keyspace's).
    pub fn publish_to(&self, codes: FunctionCodes) {
        let libs = self.libs.lock();
        *codes.lock() = libs.iter().map(|l| l.code.clone()).collect();
        *self.codes.lock() = Some(codes);
    }

    fn publish(&self, libs: &[Library]) {
        if let Some(codes) = &*self.codes.lock() {
            *codes.lock() = libs.iter().map(|l| l.code.clone()).collect();
        }
    }

    /// FUNCTION LOAD: compiles `code` and adds its library (replacing one of
    /// the same name if `replace`); returns the library's name. `timeout`
    /// off for a load from a file, as Redis's for its own clients.
    pub fn load(&self, code: &[u8], replace: bool, timeout: bool) -> Result<String, CommandError> {
        let vm = self.vm.get()?;
        let lua = vm.lua.lock();
        let loaded = self.load_locked(vm, &lua, code, replace, timeout);
        // What a failed load registered (or a replaced library held) lets go
        // of its registry slots now.
        lua.expire_registry_values();
        loaded
    }

    fn load_locked(
        &self,
        vm: &Vm,
        lua: &Lua,
        code: &[u8],
        replace: bool,
        timeout: bool,
    ) -> Result<String, CommandError> {
        let lib = self.compile(vm, lua, code, timeout)?;
        let mut libs = self.libs.lock();
        let name = lib.name.clone();
        let old = libs.iter().position(|l| l.name == name);
        if old.is_some() && !replace {
            return Err(CommandError::err(format!(
                "Library '{name}' already exists"
            )));
        }
        lib.check_names_free(libs.iter().filter(|l| l.name != name))?;
        match old {
            Some(i) => libs[i] = lib,
            None => libs.push(lib),
        }
        self.publish(&libs);
        Ok(name)
    }

    /// Parses the shebang, runs the code with the load-time API and collects
    /// what it registers: the library, not yet added.
    fn compile(
        &self,
        vm: &Vm,
        lua: &Lua,
        code: &[u8],
        timeout: bool,
    ) -> Result<Library, CommandError> {
        let (name, body) = metadata(code)?;
        let body = &code[body..];
        let fail = |msg: String| CommandError::err(msg);
        // The code starts with the shebang's newline, so it is never taken
        // for bytecode (an ESC after it is a syntax error, as in Redis); text
        // mode all the same.
        let function = super::compile_chunk(lua, body, "@user_function")
            .map_err(|msg| fail(format!("Error compiling function: {msg}")))?;
        lua.set_app_data(Loading::default());
        let watch = self.watch();
        if timeout {
            *watch.load_deadline.lock() = Some(quanta::Instant::now() + LOAD_TIMEOUT);
        }
        let ran = vm
            .set_globals_index(vm.library_api.as_ref())
            .and_then(|()| function.call::<()>(()));
        let restored = vm.set_globals_index(None);
        *watch.load_deadline.lock() = None;
        if watch.every_line.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = super::install_hook(lua, watch, false);
        }
        let loading = lua.remove_app_data::<Loading>().unwrap_or_default();
        restored.map_err(|e| fail(e.to_string()))?;
        if let Err(e) = ran {
            return Err(fail(format!(
                "Error registering functions: {}",
                load_error(e)
            )));
        }
        if loading.functions.is_empty() {
            return Err(fail("No functions registered".to_string()));
        }
        Ok(Library {
            name,
            code: Bytes::copy_from_slice(code),
            functions: loading.functions,
        })
    }

    fn watch(&self) -> &Arc<Watch> {
        self.vm.watch()
    }

    /// FUNCTION DELETE.
    pub fn delete(&self, name: &[u8]) -> Result<(), CommandError> {
        // No VM yet, no library: nothing to find.
        let Some(vm) = self.vm.built() else {
            return Err(CommandError::err("Library not found"));
        };
        let lua = vm.lua.lock();
        let mut libs = self.libs.lock();
        let Some(i) = libs.iter().position(|l| l.name.as_bytes() == name) else {
            return Err(CommandError::err("Library not found"));
        };
        libs.remove(i);
        self.publish(&libs);
        drop(libs);
        lua.expire_registry_values();
        Ok(())
    }

    /// FUNCTION FLUSH.
    pub fn flush(&self) {
        // No VM yet, no library: nothing to flush.
        let Some(vm) = self.vm.built() else {
            return;
        };
        let lua = vm.lua.lock();
        let mut libs = self.libs.lock();
        libs.clear();
        self.publish(&libs);
        drop(libs);
        lua.expire_registry_values();
    }

    /// Reads the libraries (FUNCTION LIST, STATS, DUMP).
    pub fn with_libraries<R>(&self, f: impl FnOnce(&[Library]) -> R) -> R {
        f(&self.libs.lock())
    }

    /// The code of every library, in order.
    pub fn codes(&self) -> Vec<Bytes> {
        self.libs.lock().iter().map(|l| l.code.clone()).collect()
    }

    /// FUNCTION RESTORE (and a load from a file, `Replace`): compiles every
    /// library of `codes` (each name once), then adds them by `policy`. All
    /// or nothing.
    pub fn restore(&self, codes: &[Vec<u8>], policy: RestorePolicy) -> Result<(), CommandError> {
        // Nothing to compile (an empty dump, a file without functions): no
        // VM is built for it.
        if codes.is_empty() {
            if matches!(policy, RestorePolicy::Flush) {
                self.flush();
            }
            return Ok(());
        }
        let vm = self.vm.get()?;
        let lua = vm.lua.lock();
        let restored = self.restore_locked(vm, &lua, codes, policy);
        lua.expire_registry_values();
        restored
    }

    fn restore_locked(
        &self,
        vm: &Vm,
        lua: &Lua,
        codes: &[Vec<u8>],
        policy: RestorePolicy,
    ) -> Result<(), CommandError> {
        let mut new: Vec<Library> = Vec::new();
        for code in codes {
            let lib = self.compile(vm, lua, code, false)?;
            if new.iter().any(|l| l.name == lib.name) {
                return Err(CommandError::err(format!(
                    "Library '{}' already exists",
                    lib.name
                )));
            }
            lib.check_names_free(new.iter())?;
            new.push(lib);
        }
        let mut libs = self.libs.lock();
        if policy == RestorePolicy::Flush {
            *libs = new;
        } else {
            if policy == RestorePolicy::Append {
                if let Some(l) = new.iter().find(|l| libs.iter().any(|o| o.name == l.name)) {
                    return Err(CommandError::err(format!(
                        "Library {} already exists",
                        l.name
                    )));
                }
            }
            let kept = |o: &Library| !new.iter().any(|l| l.name == o.name);
            for l in &new {
                if let Some(f) = l.functions.iter().find(|f| {
                    libs.iter().filter(|o| kept(o)).any(|o| {
                        o.functions
                            .iter()
                            .any(|g| g.name.eq_ignore_ascii_case(&f.name))
                    })
                }) {
                    return Err(CommandError::err(format!(
                        "Function {} already exists",
                        f.name
                    )));
                }
            }
            for l in new {
                match libs.iter().position(|o| o.name == l.name) {
                    Some(i) => libs[i] = l,
                    None => libs.push(l),
                }
            }
        }
        self.publish(&libs);
        Ok(())
    }

    /// Runs function `name` for FCALL (`ro`: FCALL_RO) with Redis's checks
    /// before the run (`scriptPrepareForRun`). The caller holds the gate
    /// exclusively.
    pub fn call(
        &self,
        shared: &crate::server::Shared,
        session: &mut crate::session::Session,
        args: &[Bytes],
        keys: &[Bytes],
        argv: &[Bytes],
        ro: bool,
    ) -> Result<crate::reply::Reply, CommandError> {
        // No VM yet, no library: no function to find.
        let Some(vm) = self.vm.built() else {
            return Err(CommandError::err("Function not found"));
        };
        let lua = vm.lua.lock();
        let (name, flags, key) = {
            let libs = self.libs.lock();
            let found = libs
                .iter()
                .flat_map(|l| l.functions.iter())
                .find(|f| f.name.as_bytes().eq_ignore_ascii_case(&args[1]));
            match found {
                Some(f) => (f.name.clone(), f.flags, f.key.clone()),
                None => return Err(CommandError::err("Function not found")),
            }
        };
        let (read_only, allow_oom) = check_flags(shared, flags, ro)?;
        super::CallRef::lend(self.watch(), &name, args);
        let run = super::Run {
            vm,
            lua: &lua,
            kind: super::RunKind::Function,
            name: &name,
            read_only,
            allow_oom,
        };
        shared
            .scripts
            .run_in(run, shared, session, &key, keys, argv)
    }

    /// The running function's name, FCALL and how long it has run, for
    /// FUNCTION STATS.
    pub fn running(&self) -> Option<(String, Vec<Bytes>, u64)> {
        let watch = self.watch();
        let started = (*watch.started.lock())?;
        let (name, command) = watch.current.lock().clone()?;
        Some((name, command, started.elapsed().as_millis() as u64))
    }
}

/// What a function's flags, or an EVAL script's shebang flags, refuse before
/// it runs (`ro`: FCALL_RO, EVAL_RO, EVALSHA_RO), and what they let it do:
/// (read only, allowed over `maxmemory`).
pub(crate) fn check_flags(
    shared: &crate::server::Shared,
    flags: u8,
    ro: bool,
) -> Result<(bool, bool), CommandError> {
    // Redis takes a writing function's FCALL (a writing script's EVAL) for a
    // write command (`fcallGetCommandFlags`, `evalGetCommandFlags`): its
    // dispatcher's MISCONF errors.
    if flags & NO_WRITES == 0 {
        if shared.persist.writes_denied() {
            return Err(CommandError::Misconf);
        }
        if let Some(e) = shared.aof.write_error() {
            return Err(CommandError::raw(format!(
                "MISCONF Errors writing to the AOF file: {e}"
            )));
        }
        if ro {
            return Err(CommandError::err(
                "Can not execute a script with write flag using *_ro command.",
            ));
        }
    }
    // And for a `denyoom` command: its dispatcher's OOM error, still over
    // the limit after the eviction the dispatcher ran before this command.
    let max = shared.memory.maxmemory();
    if flags & (ALLOW_OOM | NO_WRITES) == 0 && max > 0 && shared.memory.used_now() > max {
        return Err(crate::commands::oom_error());
    }
    Ok((ro || flags & NO_WRITES != 0, flags & ALLOW_OOM != 0))
}

/// The library name and where the code after the shebang line starts, with
/// Redis's errors.
fn metadata(code: &[u8]) -> Result<(String, usize), CommandError> {
    let err = |m: &str| Err(CommandError::err(m));
    if !code.starts_with(b"#!") {
        return err("Missing library metadata");
    }
    let Ok((parts, end)) = shebang_words(code) else {
        return err("Invalid library metadata");
    };
    let engine = &parts[0][2..];
    let mut name: Option<&[u8]> = None;
    for part in &parts[1..] {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return err("Invalid metadata value, name argument was given multiple times");
            }
            name = Some(&part[5..]);
            continue;
        }
        return Err(CommandError::err(format!(
            "Invalid metadata value given: {}",
            String::from_utf8_lossy(part)
        )));
    }
    let Some(name) = name else {
        return err("Library name was not given");
    };
    if !valid_name(name) {
        return err(BAD_NAME);
    }
    if !engine.eq_ignore_ascii_case(b"lua") {
        return Err(CommandError::err(format!(
            "Engine '{}' not found",
            String::from_utf8_lossy(engine)
        )));
    }
    // Valid names are ASCII. The code Lua gets starts at the shebang's end
    // (its newline, so lines keep their numbers).
    Ok((String::from_utf8_lossy(name).into_owned(), end))
}

/// Why a shebang line could not be read ([`shebang_words`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BadShebang {
    /// No newline ends it.
    Unterminated,
    /// Unbalanced quotes, or no word at all.
    NoWords,
}

/// The words of `code`'s first line (`#!lua name=lib`, `#!lua flags=...`),
/// split as `sdssplitargs` does, and where that line's newline is. Redis
/// reads the code as a C string: a NUL ends it.
pub(crate) fn shebang_words(code: &[u8]) -> Result<(Vec<Vec<u8>>, usize), BadShebang> {
    let text = code.split(|c| *c == 0).next().unwrap_or_default();
    let end = text
        .iter()
        .position(|c| *c == b'\n')
        .ok_or(BadShebang::Unterminated)?;
    match crate::protocol::split_args(&text[..end]) {
        Some(parts) if !parts.is_empty() => Ok((parts, end)),
        _ => Err(BadShebang::NoWords),
    }
}

/// `[a-zA-Z0-9_]+`, Redis's rule for library and function names.
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// The message of an error raised while a library's code ran, as Redis's
/// `luaExtractErrorInformation` has it.
fn load_error(e: mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => load_error((*cause).clone()),
        mlua::Error::ExternalError(inner) => match inner.downcast_ref::<LoadFailed>() {
            Some(l) => l.0.clone(),
            None => match inner.downcast_ref::<CallFailed>() {
                Some(c) => c.line.clone(),
                None => format!("ERR {inner}"),
            },
        },
        mlua::Error::RuntimeError(m) => {
            format!("ERR {}", m.lines().next().unwrap_or_default())
        }
        other => format!("ERR {other}"),
    }
}

/// A failed `redis.register_function`: during a load, the load's error;
/// otherwise an error of the running function.
fn refuse(lua: &Lua, msg: &str) -> mlua::Error {
    if lua.app_data_ref::<Loading>().is_some() {
        return mlua::Error::external(LoadFailed(format!("ERR {msg}")));
    }
    super::script_raise_plain(lua, msg)
}

/// Lua's `lua_isstring`: a string or a number, read as text.
fn string_of(lua: &Lua, v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(_) | Value::Number(_) => lua
            .coerce_string(v.clone())
            .ok()
            .flatten()
            .map(|s| s.as_bytes().to_vec()),
        _ => None,
    }
}

/// `redis.register_function(name, callback)` or
/// `redis.register_function{function_name=, callback=, flags=, description=}`.
fn register_function(lua: &Lua, args: MultiValue) -> mlua::Result<()> {
    if lua.app_data_ref::<Loading>().is_none() {
        return Err(refuse(
            lua,
            "redis.register_function can only be called on FUNCTION LOAD command",
        ));
    }
    let args: Vec<Value> = args.into_iter().collect();
    let (name, description, callback, flags) = match args.as_slice() {
        [named] => named_args(lua, named)?,
        [name, callback] => {
            let Some(name) = string_of(lua, name) else {
                return Err(refuse(
                    lua,
                    "first argument to redis.register_function must be a string",
                ));
            };
            let Value::Function(callback) = callback else {
                return Err(refuse(
                    lua,
                    "second argument to redis.register_function must be a function",
                ));
            };
            (name, None, callback.clone(), 0)
        }
        _ => {
            return Err(refuse(
                lua,
                "wrong number of arguments to redis.register_function",
            ))
        }
    };
    if !valid_name(&name) {
        return Err(refuse(lua, BAD_NAME));
    }
    let name = String::from_utf8_lossy(&name).into_owned();
    let key = Arc::new(lua.create_registry_value(callback)?);
    let Some(mut loading) = lua.app_data_mut::<Loading>() else {
        return Err(refuse(
            lua,
            "redis.register_function can only be called on FUNCTION LOAD command",
        ));
    };
    if loading
        .functions
        .iter()
        .any(|f| f.name.eq_ignore_ascii_case(&name))
    {
        drop(loading);
        return Err(refuse(lua, "Function already exists in the library"));
    }
    loading.functions.push(FunctionInfo {
        name: name.into(),
        description: description.map(Bytes::from),
        flags,
        key,
    });
    Ok(())
}

type Registered = (Vec<u8>, Option<Vec<u8>>, Function, u8);

/// The table form of `redis.register_function`, read in the table's order.
fn named_args(lua: &Lua, named: &Value) -> mlua::Result<Registered> {
    let Value::Table(table) = named else {
        return Err(refuse(
            lua,
            "calling redis.register_function with a single argument is only applicable to Lua \
             table (representing named arguments).",
        ));
    };
    let (mut name, mut description, mut callback, mut flags) = (None, None, None, 0u8);
    for pair in table.clone().pairs::<Value, Value>() {
        let (k, v) = pair?;
        let Some(key) = string_of(lua, &k) else {
            return Err(refuse(
                lua,
                "named argument key given to redis.register_function is not a string",
            ));
        };
        if key.eq_ignore_ascii_case(b"function_name") {
            name = Some(string_of(lua, &v).ok_or_else(|| {
                refuse(
                    lua,
                    "function_name argument given to redis.register_function must be a string",
                )
            })?);
        } else if key.eq_ignore_ascii_case(b"description") {
            description = Some(string_of(lua, &v).ok_or_else(|| {
                refuse(
                    lua,
                    "description argument given to redis.register_function must be a string",
                )
            })?);
        } else if key.eq_ignore_ascii_case(b"callback") {
            let Value::Function(f) = v else {
                return Err(refuse(
                    lua,
                    "callback argument given to redis.register_function must be a function",
                ));
            };
            callback = Some(f);
        } else if key.eq_ignore_ascii_case(b"flags") {
            let Value::Table(t) = v else {
                return Err(refuse(
                    lua,
                    "flags argument to redis.register_function must be a table representing \
                     function flags",
                ));
            };
            flags = read_flags(lua, &t)?;
        } else {
            return Err(refuse(
                lua,
                "unknown argument given to redis.register_function",
            ));
        }
    }
    let Some(name) = name else {
        return Err(refuse(
            lua,
            "redis.register_function must get a function name argument",
        ));
    };
    let Some(callback) = callback else {
        return Err(refuse(
            lua,
            "redis.register_function must get a callback argument",
        ));
    };
    Ok((name, description, callback, flags))
}

/// The flags array `t[1], t[2], ...` up to its first nil.
fn read_flags(lua: &Lua, t: &Table) -> mlua::Result<u8> {
    let mut flags = 0u8;
    for i in 1.. {
        let v: Value = t.get(i)?;
        if v.is_nil() {
            break;
        }
        let known = string_of(lua, &v).and_then(|s| {
            FLAG_NAMES
                .iter()
                .position(|f| f.as_bytes().eq_ignore_ascii_case(&s))
        });
        match known {
            Some(bit) => flags |= 1 << bit,
            None => return Err(refuse(lua, "unknown flag given")),
        }
    }
    Ok(flags)
}
