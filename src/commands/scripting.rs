//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT (LOAD, EXISTS, FLUSH, KILL, HELP).
//! The engine is in `crate::scripting`; this file parses arguments and makes the
//! script atomic by holding the execution gate exclusively while it runs.

use bytes::Bytes;

use super::CommandResult;
use super::{container, flag, int_arg, is, CallMode, CommandSpec, Ctx, KeyRef, KeySpec};
use crate::error::CommandError;
use crate::reply::Reply;

pub(super) const EVAL_FLAGS: u32 =
    flag::NOSCRIPT | flag::STALE | flag::SKIP_MONITOR | flag::NO_MANDATORY_KEYS | flag::OWN_GATE;

/// The scripting family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("eval", -3, EVAL_FLAGS, eval)
        .getkeys(script_keys)
        .acl(&["@slow", "@scripting"])
        .key_specs(&[KeySpec::keynum(2, &["RW", "access", "update"]).notes(
            "We cannot tell how the keys will be used so we assume the worst, RW and UPDATE",
        )])
        .doc("scripting", "2.6.0", "Executes a server-side Lua script."),
    CommandSpec::new("evalsha", -3, EVAL_FLAGS, evalsha)
        .getkeys(script_keys)
        .acl(&["@slow", "@scripting"])
        .key_specs(&[KeySpec::keynum(2, &["RW", "access", "update"])])
        .doc(
            "scripting",
            "2.6.0",
            "Executes a server-side Lua script by SHA1 digest.",
        ),
    CommandSpec::new("eval_ro", -3, EVAL_FLAGS | flag::READONLY, eval_ro)
        .getkeys(script_keys)
        .acl(&["@slow", "@scripting"])
        .key_specs(&[KeySpec::keynum(2, &["RO", "access"]).notes(
            "We cannot tell how the keys will be used so we assume the worst, RO and ACCESS",
        )])
        .doc(
            "scripting",
            "7.0.0",
            "Executes a read-only server-side Lua script.",
        ),
    CommandSpec::new("evalsha_ro", -3, EVAL_FLAGS | flag::READONLY, evalsha_ro)
        .getkeys(script_keys)
        .acl(&["@slow", "@scripting"])
        .key_specs(&[KeySpec::keynum(2, &["RO", "access"])])
        .doc(
            "scripting",
            "7.0.0",
            "Executes a read-only server-side Lua script by SHA1 digest.",
        ),
    CommandSpec::new("script", -2, 0, container)
        .acl(&["@slow"])
        .doc(
            "scripting",
            "2.6.0",
            "A container for Lua scripts management commands.",
        )
        .with_subcommands(&[
            CommandSpec::new("load", 3, flag::NOSCRIPT | flag::STALE, load)
                .acl(&["@slow", "@scripting"])
                .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"])
                .doc(
                    "scripting",
                    "2.6.0",
                    "Loads a server-side Lua script to the script cache.",
                ),
            CommandSpec::new("exists", -3, flag::NOSCRIPT, exists)
                .acl(&["@slow", "@scripting"])
                .tips(&[
                    "request_policy:all_shards",
                    "response_policy:agg_logical_and",
                ])
                .doc(
                    "scripting",
                    "2.6.0",
                    "Determines whether server-side Lua scripts exist in the script cache.",
                ),
            CommandSpec::new("flush", -2, flag::NOSCRIPT, flush)
                .acl(&["@slow", "@scripting"])
                .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"])
                .doc(
                    "scripting",
                    "2.6.0",
                    "Removes all server-side Lua scripts from the script cache.",
                ),
            CommandSpec::new("kill", 2, flag::NOSCRIPT | flag::ALLOW_BUSY, kill)
                .acl(&["@slow", "@scripting"])
                .tips(&["request_policy:all_shards", "response_policy:one_succeeded"])
                .doc(
                    "scripting",
                    "2.6.0",
                    "Terminates a server-side Lua script during execution.",
                ),
            CommandSpec::new("help", 2, flag::LOADING | flag::STALE, help)
                .acl(&["@slow", "@scripting"])
                .doc(
                    "scripting",
                    "5.0.0",
                    "Returns helpful text about the different subcommands.",
                ),
        ]),
];

/// Splits `script numkeys key... arg...` into keys and arguments, with Redis's
/// errors for a bad numkeys.
fn keys_and_args(args: &[Bytes]) -> Result<(&[Bytes], &[Bytes]), CommandError> {
    keys_and_args_with(args, || CommandError::NotInteger)
}

/// [`keys_and_args`] with `not_integer`'s error for a numkeys that is not an
/// integer (FCALL's differs from EVAL's).
pub(super) fn keys_and_args_with(
    args: &[Bytes],
    not_integer: impl FnOnce() -> CommandError,
) -> Result<(&[Bytes], &[Bytes]), CommandError> {
    let numkeys = int_arg(&args[2]).map_err(|_| not_integer())?;
    if numkeys < 0 {
        return Err(CommandError::err("Number of keys can't be negative"));
    }
    let rest = &args[3..];
    if numkeys as u64 > rest.len() as u64 {
        return Err(CommandError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    Ok(rest.split_at(numkeys as usize))
}

/// The script an EVAL-family command names, or FCALL's function.
pub(super) enum Script<'a> {
    /// EVAL's body, compiled and cached on first use.
    Body(&'a [u8]),
    /// EVALSHA's lower-case SHA-1.
    Sha(&'a str),
    /// The function FCALL names (`args[1]`).
    Function,
}

/// Runs a script, holding the gate exclusively unless the caller (EXEC) already
/// does. The gate comes first: compiling needs the VM, which a running script
/// holds, and only a wait on the gate notices that a script has turned busy.
pub(super) fn run(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    script: Script<'_>,
    read_only: bool,
) -> CommandResult {
    let (keys, argv) = keys_and_args(args)?;
    let shared = ctx.shared;
    let _gate = match ctx.mode {
        CallMode::Client => Some(
            shared
                .gate
                .write_unless(|| shared.scripts.is_busy() || shared.is_shutting_down())
                .ok_or_else(|| shared.scripts.busy_error())?,
        ),
        _ => None,
    };
    if _gate.is_some() && shared.is_stopping() {
        ctx.session.close_after_reply = true;
        return Ok(Reply::Silent);
    }
    // Held until the script's writes are appended (a client's own EVAL): a
    // client it serves or grants settles its reply's AOF offset after that.
    let _order = _gate.as_ref().and_then(|_| shared.aof.order());
    let loaded;
    let sha = match script {
        Script::Sha(sha) => Some(sha),
        Script::Body(body) => {
            loaded = shared.scripts.load(body)?;
            Some(loaded.as_str())
        }
        Script::Function => None,
    };
    if ctx.mode == CallMode::Client {
        ctx.session.mark_time(&shared.clock);
    }
    // The script starts in the caller's database; a SELECT inside it moves only
    // the script (Redis runs it on its own client), so the caller's comes back.
    let db = ctx.session.db;
    let reply = match sha {
        Some(sha) => shared
            .scripts
            .run(shared, ctx.session, sha, keys, argv, read_only),
        None => shared
            .scripts
            .functions
            .call(shared, ctx.session, args, keys, argv, read_only),
    };
    if ctx.session.db != db {
        ctx.session.select(db);
    }
    if shared.is_shutting_down() {
        // SHUTDOWN NOSAVE stopped it: as in Redis, the caller gets no reply.
        ctx.session.close_after_reply = true;
        return Ok(Reply::Silent);
    }
    if ctx.mode == CallMode::Client {
        // Clients blocked on lists the script pushed to are served now that it
        // has ended, before the gate opens (inside EXEC, EXEC does this).
        super::serve_blocked(shared, ctx.session.now_ms);
        super::pubsub::queue_logged(shared, ctx.session);
        // The script's writes reach the AOF as one MULTI/EXEC (Redis's
        // effects replication), before the gate opens.
        ctx.session.aof_offset = crate::persist::aof::end_unit(shared);
    }
    reply
}

fn eval_generic(ctx: &mut Ctx<'_>, args: &[Bytes], read_only: bool) -> CommandResult {
    // Shown before the script's own calls, as Redis does.
    if ctx.shared.monitors.any() {
        super::monitor::feed(ctx.shared, ctx.session, ctx.session.db, args, false);
    }
    run(ctx, args, Script::Body(&args[1]), read_only)
}

/// The keys of EVAL and friends when their key spec does not fit the arguments:
/// the count read as C's `atoi` reads it (`2x` is 2), and no keys unless it is
/// between 1 and the number of arguments left, as Redis's `evalGetKeys`. Such
/// keys carry no flags.
pub(super) fn script_keys(args: &[Bytes]) -> Vec<KeyRef> {
    let count = args.get(2).map_or(0, |n| atoi(n));
    let available = args.len().saturating_sub(3);
    match usize::try_from(count) {
        Ok(n) if n >= 1 && n <= available => {
            (3..3 + n).map(|pos| KeyRef { pos, flags: &[] }).collect()
        }
        _ => Vec::new(),
    }
}

/// C's `atoi` as glibc has it: `strtol` (leading spaces, a sign, digits up to
/// the first other byte, saturating at the `long` range) cut to an `int`.
fn atoi(text: &[u8]) -> i32 {
    let mut rest = text;
    while let [c, tail @ ..] = rest {
        if !matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
            break;
        }
        rest = tail;
    }
    let negative = rest.first() == Some(&b'-');
    if matches!(rest.first(), Some(b'-' | b'+')) {
        rest = &rest[1..];
    }
    let mut value: i64 = 0;
    for c in rest.iter().take_while(|c| c.is_ascii_digit()) {
        let digit = i64::from(c - b'0');
        value = if negative {
            value.saturating_mul(10).saturating_sub(digit)
        } else {
            value.saturating_mul(10).saturating_add(digit)
        };
    }
    // The cut to `int` keeps the low 32 bits, as the C conversion does.
    value as i32
}

fn eval(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    eval_generic(ctx, args, false)
}

fn eval_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    eval_generic(ctx, args, true)
}

fn evalsha_generic(ctx: &mut Ctx<'_>, args: &[Bytes], read_only: bool) -> CommandResult {
    // Shown before the script's own calls, as Redis does.
    if ctx.shared.monitors.any() {
        super::monitor::feed(ctx.shared, ctx.session, ctx.session.db, args, false);
    }
    // Lower-cased on the stack: a SHA-1 in hex is 40 ASCII bytes; anything else
    // names no script.
    let mut buf = [0u8; 40];
    let sha = match buf.get_mut(..args[1].len()) {
        Some(lower) if args[1].len() == 40 => {
            lower.copy_from_slice(&args[1]);
            lower.make_ascii_lowercase();
            std::str::from_utf8(lower).unwrap_or_default()
        }
        _ => "",
    };
    run(ctx, args, Script::Sha(sha), read_only)
}

fn evalsha(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    evalsha_generic(ctx, args, false)
}

fn evalsha_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    evalsha_generic(ctx, args, true)
}

fn load(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    Ok(Reply::bulk_string(ctx.shared.scripts.load(&args[2])?))
}

fn exists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    Ok(Reply::Array(
        args[2..]
            .iter()
            .map(|sha| {
                Reply::Int(i64::from(
                    ctx.shared.scripts.exists(&String::from_utf8_lossy(sha)),
                ))
            })
            .collect(),
    ))
}

fn flush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    match &args[2..] {
        [] => {}
        [mode] if is(mode, "async") || is(mode, "sync") => {}
        _ => {
            return Err(CommandError::err(
                "SCRIPT FLUSH only support SYNC|ASYNC option",
            ))
        }
    }
    ctx.shared.scripts.flush();
    Ok(Reply::OK)
}

fn kill(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    ctx.shared.scripts.kill(true)?;
    Ok(Reply::OK)
}

fn help(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(super::client::help_lines(ctx, "script"))
}
