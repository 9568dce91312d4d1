//! FCALL, FCALL_RO and FUNCTION (LOAD, DELETE, FLUSH, LIST, DUMP, RESTORE,
//! STATS, KILL, HELP). The libraries live in `crate::scripting::functions`;
//! FCALL runs a function through the same path as EVAL (`scripting::run`:
//! the gate held exclusively, the busy-script handling, the AOF unit).

use bytes::Bytes;

use super::scripting::{keys_and_args_with, run, script_keys, Script, EVAL_FLAGS};
use super::{container, flag, is, CommandResult, CommandSpec, Ctx, KeySpec};
use crate::error::CommandError;
use crate::reply::Reply;
use crate::scripting::functions::{RestorePolicy, FLAG_NAMES, NO_WRITES};

const ADMIN_TIPS: &[&str] = &["request_policy:all_shards", "response_policy:all_succeeded"];

/// The functions family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("fcall", -3, EVAL_FLAGS, fcall)
        .getkeys(script_keys)
        .acl(&["@slow", "@scripting"])
        .key_specs(&[KeySpec::keynum(2, &["RW", "access", "update"]).notes(
            "We cannot tell how the keys will be used so we assume the worst, RW and UPDATE",
        )])
        .doc("scripting", "7.0.0", "Invokes a function."),
    CommandSpec::new("fcall_ro", -3, EVAL_FLAGS | flag::READONLY, fcall_ro)
        .getkeys(script_keys)
        .acl(&["@slow", "@scripting"])
        .key_specs(&[KeySpec::keynum(2, &["RO", "access"]).notes(
            "We cannot tell how the keys will be used so we assume the worst, RO and ACCESS",
        )])
        .doc("scripting", "7.0.0", "Invokes a read-only function."),
    CommandSpec::new("function", -2, 0, container)
        .acl(&["@slow"])
        .doc("scripting", "7.0.0", "A container for function commands.")
        .with_subcommands(&[
            CommandSpec::new("delete", 3, flag::WRITE | flag::NOSCRIPT, delete)
                .acl(&["@write", "@slow", "@scripting"])
                .tips(ADMIN_TIPS)
                .doc("scripting", "7.0.0", "Deletes a library and its functions."),
            CommandSpec::new("dump", 2, flag::NOSCRIPT, dump)
                .acl(&["@slow", "@scripting"])
                .doc(
                    "scripting",
                    "7.0.0",
                    "Dumps all libraries into a serialized binary payload.",
                ),
            CommandSpec::new("flush", -2, flag::WRITE | flag::NOSCRIPT, flush)
                .acl(&["@write", "@slow", "@scripting"])
                .tips(ADMIN_TIPS)
                .doc("scripting", "7.0.0", "Deletes all libraries and functions."),
            CommandSpec::new("help", 2, flag::LOADING | flag::STALE, help)
                .acl(&["@slow", "@scripting"])
                .doc(
                    "scripting",
                    "7.0.0",
                    "Returns helpful text about the different subcommands.",
                ),
            CommandSpec::new("kill", 2, flag::NOSCRIPT | flag::ALLOW_BUSY, kill)
                .acl(&["@slow", "@scripting"])
                .tips(&["request_policy:all_shards", "response_policy:one_succeeded"])
                .doc(
                    "scripting",
                    "7.0.0",
                    "Terminates a function during execution.",
                ),
            CommandSpec::new("list", -2, flag::NOSCRIPT, list)
                .acl(&["@slow", "@scripting"])
                .tips(&["nondeterministic_output_order"])
                .doc(
                    "scripting",
                    "7.0.0",
                    "Returns information about all libraries.",
                ),
            CommandSpec::new(
                "load",
                -3,
                flag::WRITE | flag::DENYOOM | flag::NOSCRIPT,
                load,
            )
            .acl(&["@write", "@slow", "@scripting"])
            .tips(ADMIN_TIPS)
            .doc("scripting", "7.0.0", "Creates a library."),
            CommandSpec::new(
                "restore",
                -3,
                flag::WRITE | flag::DENYOOM | flag::NOSCRIPT,
                restore,
            )
            .acl(&["@write", "@slow", "@scripting"])
            .tips(ADMIN_TIPS)
            .doc(
                "scripting",
                "7.0.0",
                "Restores all libraries from a payload.",
            ),
            CommandSpec::new("stats", 2, flag::NOSCRIPT | flag::ALLOW_BUSY, stats)
                .acl(&["@slow", "@scripting"])
                .tips(&[
                    "nondeterministic_output",
                    "request_policy:all_shards",
                    "response_policy:special",
                ])
                .doc(
                    "scripting",
                    "7.0.0",
                    "Returns information about a function during execution.",
                ),
        ]),
];

/// FCALL and FCALL_RO: Redis's checks in its order (the function, then
/// numkeys), then the run.
fn fcall_generic(ctx: &mut Ctx<'_>, args: &[Bytes], ro: bool) -> CommandResult {
    // Shown before the function's own calls, as Redis does.
    if ctx.shared.monitors.any() {
        super::monitor::feed(ctx.shared, ctx.session, ctx.session.db, args, false);
    }
    let exists = ctx.shared.scripts.functions.with_libraries(|libs| {
        libs.iter()
            .flat_map(|l| l.functions.iter())
            .any(|f| f.name.as_bytes().eq_ignore_ascii_case(&args[1]))
    });
    if !exists {
        return Err(CommandError::err("Function not found"));
    }
    keys_and_args_with(args, || CommandError::err("Bad number of keys provided"))?;
    run(ctx, args, Script::Function, ro)
}

/// For FCALL and FCALL_RO (`name`), whether the call counts as a write
/// command, as Redis's `fcallGetCommandFlags` makes it: a function that may
/// write does (FCALL_RO's too: it is refused only when it runs), a
/// `no-writes` one does not, and with no such function the command's own
/// flags stand (FCALL may replicate, FCALL_RO only reads). `None` for any
/// other command. CLIENT PAUSE WRITE postpones the calls that write.
pub fn call_may_write(shared: &crate::server::Shared, name: &str, args: &[Bytes]) -> Option<bool> {
    let ro = match name {
        "fcall" => false,
        "fcall_ro" => true,
        _ => return None,
    };
    let function = args.get(1)?;
    let flags = shared.scripts.functions.with_libraries(|libs| {
        libs.iter()
            .flat_map(|l| l.functions.iter())
            .find(|f| f.name.as_bytes().eq_ignore_ascii_case(function))
            .map(|f| f.flags)
    });
    Some(match flags {
        Some(flags) => flags & NO_WRITES == 0,
        None => !ro,
    })
}

fn fcall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    fcall_generic(ctx, args, false)
}

fn fcall_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    fcall_generic(ctx, args, true)
}

/// FUNCTION LOAD [REPLACE] code.
fn load(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut replace = false;
    let mut pos = 2;
    while pos < args.len() - 1 {
        if is(&args[pos], "replace") {
            replace = true;
            pos += 1;
            continue;
        }
        return Err(CommandError::err(format!(
            "Unknown option given: {}",
            String::from_utf8_lossy(&args[pos])
        )));
    }
    // The AOF's own replay has no time limit, as Redis's for its own clients.
    let timeout = !ctx.session.replaying;
    let name = ctx
        .shared
        .scripts
        .functions
        .load(&args[pos], replace, timeout)?;
    crate::propagate::count_write();
    ctx.shared.keyspace.note_function_change();
    Ok(Reply::bulk_string(name))
}

/// FUNCTION DELETE library.
fn delete(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    ctx.shared.scripts.functions.delete(&args[2])?;
    crate::propagate::count_write();
    ctx.shared.keyspace.note_function_change();
    Ok(Reply::OK)
}

/// FUNCTION FLUSH [ASYNC|SYNC].
fn flush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    match &args[2..] {
        [] => {}
        [mode] if is(mode, "async") || is(mode, "sync") => {}
        [_] => {
            return Err(CommandError::err(
                "FUNCTION FLUSH only supports SYNC|ASYNC option",
            ))
        }
        _ => return Err(CommandError::subcommand_syntax("function", &args[1])),
    }
    ctx.shared.scripts.functions.flush();
    crate::propagate::count_write();
    ctx.shared.keyspace.note_function_change();
    Ok(Reply::OK)
}

/// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE].
fn list(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut with_code = false;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 2;
    while i < args.len() {
        let arg = &args[i];
        if !with_code && is(arg, "withcode") {
            with_code = true;
        } else if pattern.is_none() && is(arg, "libraryname") {
            let Some(p) = args.get(i + 1) else {
                return Err(CommandError::err("library name argument was not given"));
            };
            pattern = Some(p);
            i += 1;
        } else {
            return Err(CommandError::err(format!(
                "Unknown argument {}",
                String::from_utf8_lossy(arg)
            )));
        }
        i += 1;
    }
    let bulk = |s: &str| Reply::bulk_str(s);
    // Redis matches the pattern without regard to case: both lowered.
    let pattern = pattern.map(|p| p.to_ascii_lowercase());
    let reply = ctx.shared.scripts.functions.with_libraries(|libs| {
        libs.iter()
            .filter(|l| {
                pattern.as_ref().is_none_or(|p| {
                    super::keys::glob_match(p, l.name.to_ascii_lowercase().as_bytes())
                })
            })
            .map(|l| {
                let functions = l
                    .functions
                    .iter()
                    .map(|f| {
                        let flags = FLAG_NAMES
                            .iter()
                            .enumerate()
                            .filter(|(bit, _)| f.flags & (1 << bit) != 0)
                            .map(|(_, name)| Reply::Simple(name))
                            .collect();
                        Reply::Map(vec![
                            (bulk("name"), bulk(&f.name)),
                            (
                                bulk("description"),
                                Reply::bulk_or_nil(f.description.clone()),
                            ),
                            (bulk("flags"), Reply::Set(flags)),
                        ])
                    })
                    .collect();
                let mut fields = vec![
                    (bulk("library_name"), bulk(&l.name)),
                    (bulk("engine"), bulk("LUA")),
                    (bulk("functions"), Reply::Array(functions)),
                ];
                if with_code {
                    fields.push((bulk("library_code"), Reply::Bulk(l.code.clone())));
                }
                Reply::Map(fields)
            })
            .collect()
    });
    Ok(Reply::Array(reply))
}

/// FUNCTION DUMP: every library as Redis's payload.
fn dump(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    let codes = ctx.shared.scripts.functions.codes();
    let compress = ctx.shared.config.read().rdbcompression;
    Ok(Reply::Bulk(Bytes::from(crate::rdb::dump_functions(
        &codes, compress,
    ))))
}

/// FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE].
fn restore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    if args.len() > 4 {
        return Err(CommandError::subcommand_syntax("function", &args[1]));
    }
    let policy = match args.get(3) {
        None => RestorePolicy::Append,
        Some(p) if is(p, "append") => RestorePolicy::Append,
        Some(p) if is(p, "replace") => RestorePolicy::Replace,
        Some(p) if is(p, "flush") => RestorePolicy::Flush,
        Some(_) => {
            return Err(CommandError::err(
                "Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            ))
        }
    };
    let codes = crate::rdb::undump_functions(&args[2]).map_err(CommandError::err)?;
    ctx.shared.scripts.functions.restore(&codes, policy)?;
    crate::propagate::count_write();
    ctx.shared.keyspace.note_function_change();
    Ok(Reply::OK)
}

/// FUNCTION STATS: the running function, and the engine's counts.
fn stats(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    let scripts = &ctx.shared.scripts;
    let running = scripts.functions.running();
    if running.is_none() && scripts.is_running() {
        // EVAL's script is running: Redis answers as to any command.
        return Err(scripts.busy_error());
    }
    let bulk = |s: &str| Reply::bulk_str(s);
    let running = match running {
        None => Reply::Nil,
        Some((name, command, ms)) => Reply::Map(vec![
            (bulk("name"), bulk(&name)),
            (
                bulk("command"),
                Reply::Array(command.into_iter().map(Reply::Bulk).collect()),
            ),
            (bulk("duration_ms"), Reply::Int(ms as i64)),
        ]),
    };
    let (libraries, functions) = scripts.functions.with_libraries(|libs| {
        (
            libs.len(),
            libs.iter().map(|l| l.functions.len()).sum::<usize>(),
        )
    });
    Ok(Reply::Map(vec![
        (bulk("running_script"), running),
        (
            bulk("engines"),
            Reply::Map(vec![(
                bulk("LUA"),
                Reply::Map(vec![
                    (bulk("libraries_count"), Reply::Int(libraries as i64)),
                    (bulk("functions_count"), Reply::Int(functions as i64)),
                ]),
            )]),
        ),
    ]))
}

/// FUNCTION KILL.
fn kill(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    ctx.shared.scripts.kill(false)?;
    Ok(Reply::OK)
}

/// Redis's FUNCTION HELP.
const HELP: &[&str] = &[
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
];

fn help(_: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(super::help_reply("FUNCTION", HELP))
}

/// Installs the libraries a file held (an RDB at start-up, an AOF's base,
/// DEBUG RELOAD), each replacing one of the same name, as Redis's load;
/// `only` (DEBUG RELOAD without NOFLUSH, which empties the libraries as the
/// data first) leaves the file's alone.
pub fn load_from_file(
    shared: &crate::server::Shared,
    codes: &[Vec<u8>],
    only: bool,
) -> Result<(), String> {
    if codes.is_empty() && !only {
        return Ok(());
    }
    let policy = if only {
        RestorePolicy::Flush
    } else {
        RestorePolicy::Replace
    };
    shared
        .scripts
        .functions
        .restore(codes, policy)
        .map_err(|e| format!("Failed loading library, {e}"))
}
