//! ACL: SETUSER, GETUSER, DELUSER, LIST, USERS, WHOAMI, CAT, GENPASS, DRYRUN,
//! LOG, LOAD, SAVE, HELP; and [`check`], the permission check the dispatcher,
//! EXEC and `redis.call` run for a restricted user.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;

use super::{container, flag, is, Command, CommandResult, CommandSpec, Ctx};
use crate::acl::rules::CATEGORIES;
use crate::acl::{AclUser, Denied, LogContext, LogEntry, LogReason, LogValue, UserRules};
use crate::error::CommandError;
use crate::pubsub::Kind;
use crate::reply::Reply;
use crate::server::Shared;
use crate::session::Session;

const ADMIN: u32 = flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE;
const PLAIN: u32 = flag::NOSCRIPT | flag::LOADING | flag::STALE;
const ADMIN_CATS: &[&str] = &["@admin", "@slow", "@dangerous"];

/// The ACL container and its subcommands.
pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new("acl", -2, 0, container)
    .acl(&["@slow"])
    .doc(
        "server",
        "6.0.0",
        "A container for Access List Control commands ",
    )
    .with_subcommands(&[
        CommandSpec::new("cat", -2, PLAIN, cat).acl(&["@slow"]).doc(
            "server",
            "6.0.0",
            "List the ACL categories or the commands inside a category",
        ),
        CommandSpec::new("deluser", -3, ADMIN, deluser)
            .acl(ADMIN_CATS)
            .doc(
                "server",
                "6.0.0",
                "Remove the specified ACL users and the associated rules",
            ),
        CommandSpec::new("dryrun", -4, ADMIN, dryrun)
            .acl(ADMIN_CATS)
            .doc(
                "server",
                "7.0.0",
                "Returns whether the user can execute the given command without executing the command.",
            ),
        CommandSpec::new("genpass", -2, PLAIN, genpass)
            .acl(&["@slow"])
            .doc(
                "server",
                "6.0.0",
                "Generate a pseudorandom secure password to use for ACL users",
            ),
        CommandSpec::new("getuser", 3, ADMIN, getuser)
            .acl(ADMIN_CATS)
            .doc("server", "6.0.0", "Get the rules for a specific ACL user"),
        CommandSpec::new("help", 2, flag::LOADING | flag::STALE, help)
            .acl(&["@slow"])
            .doc(
                "server",
                "6.0.0",
                "Show helpful text about the different subcommands",
            ),
        CommandSpec::new("list", 2, ADMIN, list).acl(ADMIN_CATS).doc(
            "server",
            "6.0.0",
            "List the current ACL rules in ACL config file format",
        ),
        CommandSpec::new("load", 2, ADMIN, load).acl(ADMIN_CATS).doc(
            "server",
            "6.0.0",
            "Reload the ACLs from the configured ACL file",
        ),
        CommandSpec::new("log", -2, ADMIN, log).acl(ADMIN_CATS).doc(
            "server",
            "6.0.0",
            "List latest events denied because of ACLs in place",
        ),
        CommandSpec::new("save", 2, ADMIN, save).acl(ADMIN_CATS).doc(
            "server",
            "6.0.0",
            "Save the current ACL rules in the configured ACL file",
        ),
        CommandSpec::new("setuser", -3, ADMIN, setuser)
            .acl(ADMIN_CATS)
            .doc(
                "server",
                "6.0.0",
                "Modify or create the rules for a specific ACL user",
            ),
        CommandSpec::new("users", 2, ADMIN, users).acl(ADMIN_CATS).doc(
            "server",
            "6.0.0",
            "List the username of all the configured ACL rules",
        ),
        CommandSpec::new("whoami", 2, PLAIN, whoami)
            .acl(&["@slow"])
            .doc(
                "server",
                "6.0.0",
                "Return the name of the user associated to the current connection",
            ),
    ])];

/// Checks the session's user may run `cmd` with `args`; a refusal is logged
/// and answered with Redis's NOPERM text (EXEC's own text when `at_exec`).
pub fn check(
    shared: &Shared,
    session: &Session,
    cmd: &Command,
    args: &[Bytes],
    at_exec: bool,
) -> Result<(), CommandError> {
    let denied = match session.user.rules().check(cmd, args) {
        Ok(()) => return Ok(()),
        Err(d) => d,
    };
    let context = if at_exec || session.in_multi() {
        LogContext::Multi
    } else {
        LogContext::Toplevel
    };
    log_denied(shared, session, cmd, args, denied, context);
    Err(if at_exec {
        let reason = match denied {
            Denied::Command => "no permission to execute the command or subcommand",
            Denied::Key(_) => "no permission to touch the specified keys",
            Denied::Channel(_) => "no permission to access one of the channels used as arguments",
        };
        CommandError::raw(format!(
            "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {reason}"
        ))
    } else {
        match denied {
            Denied::Command => CommandError::raw(format!(
                "NOPERM this user has no permissions to run the '{}' command",
                cmd.full_name
            )),
            Denied::Key(_) => CommandError::raw(
                "NOPERM this user has no permissions to access one of the keys used as arguments",
            ),
            Denied::Channel(_) => CommandError::raw(
                "NOPERM this user has no permissions to access one of the channels used as arguments",
            ),
        }
    })
}

/// The check for `redis.call`: the script's error text.
pub fn check_script(
    shared: &Shared,
    session: &Session,
    cmd: &Command,
    args: &[Bytes],
) -> Result<(), CommandError> {
    let denied = match session.user.rules().check(cmd, args) {
        Ok(()) => return Ok(()),
        Err(d) => d,
    };
    log_denied(shared, session, cmd, args, denied, LogContext::Lua);
    let what = match denied {
        Denied::Command => "can't run this command or subcommand",
        Denied::Key(_) => {
            "can't access at least one of the keys mentioned in the command arguments"
        }
        Denied::Channel(_) => "can't publish to the channel mentioned in the command",
    };
    Err(CommandError::err(format!(
        "The user executing the script {what}"
    )))
}

fn log_denied(
    shared: &Shared,
    session: &Session,
    cmd: &Command,
    args: &[Bytes],
    denied: Denied,
    context: LogContext,
) {
    let (reason, object) = match denied {
        Denied::Command => (LogReason::Command, Bytes::from(cmd.full_name.clone())),
        Denied::Key(p) => (LogReason::Key, args.get(p).cloned().unwrap_or_default()),
        Denied::Channel(p) => (LogReason::Channel, args.get(p).cloned().unwrap_or_default()),
    };
    add_log(
        shared,
        session,
        reason,
        context,
        object,
        session.user.name.clone(),
    );
}

fn add_log(
    shared: &Shared,
    session: &Session,
    reason: LogReason,
    context: LogContext,
    object: Bytes,
    username: Bytes,
) {
    let max = shared.config.read().acllog_max_len as usize;
    let entry = LogEntry {
        count: 1,
        reason,
        context,
        object,
        username,
        ms: shared.clock.now_ms(),
        client_info: super::client::client_line(shared, &session.info, None),
    };
    shared.acl.log(entry, max);
}

/// Authenticates the session as `user` with `pass` (AUTH, HELLO AUTH); a
/// failure is logged and answered with WRONGPASS.
pub fn authenticate(
    ctx: &mut Ctx<'_>,
    command: &Bytes,
    user: &[u8],
    pass: &[u8],
) -> Result<(), CommandError> {
    match ctx.shared.acl.authenticate(user, pass) {
        Some(u) => {
            ctx.session.set_user(u);
            ctx.session.authenticated = true;
            Ok(())
        }
        None => {
            let context = if ctx.session.in_multi() {
                LogContext::Multi
            } else {
                LogContext::Toplevel
            };
            add_log(
                ctx.shared,
                ctx.session,
                LogReason::Auth,
                context,
                command.clone(),
                Bytes::copy_from_slice(user),
            );
            Err(CommandError::WrongPass)
        }
    }
}

/// Closes the clients running as any of `users` (ACL DELUSER, ACL LOAD); the
/// calling client closes after its reply.
fn close_clients_of(ctx: &mut Ctx<'_>, users: &[Arc<AclUser>]) {
    if users.is_empty() {
        return;
    }
    let runs_as = |u: &Option<Arc<AclUser>>| {
        u.as_ref()
            .is_some_and(|u| users.iter().any(|d| Arc::ptr_eq(d, u)))
    };
    for client in ctx.shared.clients.iter() {
        if client.id == ctx.session.info.id {
            continue;
        }
        if runs_as(&client.user.lock()) {
            client.kill();
        }
    }
    if users.iter().any(|d| Arc::ptr_eq(d, &ctx.session.user)) {
        ctx.session.set_user(ctx.shared.acl.default_user());
        ctx.session.authenticated = false;
        ctx.session.close_after_reply = true;
    }
}

fn setuser(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let name = &args[2];
    if crate::acl::rules::has_spaces(name) {
        return Err(CommandError::err(
            "Usernames can't contain spaces or null characters",
        ));
    }
    let allchannels = ctx.shared.config.read().acl_pubsub_allchannels;
    let before = ctx
        .shared
        .acl
        .set_user(&ctx.shared.commands, name, &args[3..], allchannels)
        .map_err(|e| CommandError::err(e.0))?;
    if let Some(before) = before {
        close_subscribers_out_of_reach(ctx, name, &before);
    }
    Ok(Reply::OK)
}

/// After a user's channel rules changed, closes its subscribed clients that
/// listen on a channel or pattern no longer allowed, as Redis 7.0 does
/// (nothing to do when the new rules allow every channel or keep every
/// pattern the old ones had).
fn close_subscribers_out_of_reach(ctx: &mut Ctx<'_>, name: &[u8], before: &UserRules) {
    let Some(user) = ctx.shared.acl.user(name) else {
        return;
    };
    let now = user.rules();
    let Some(upcoming) = now.channel_patterns() else {
        return;
    };
    let kept = before
        .channel_patterns()
        .is_some_and(|old| old.iter().all(|p| upcoming.contains(p)));
    if kept {
        return;
    }
    let allowed = |kind: Kind, name: &[u8]| {
        upcoming.iter().any(|p| {
            if kind == Kind::Pattern {
                *p == name
            } else {
                super::keys::glob_match(p, name)
            }
        })
    };
    let mut to_close = Vec::new();
    for client in ctx.shared.clients.iter() {
        let same = client
            .user
            .lock()
            .as_ref()
            .is_some_and(|u| Arc::ptr_eq(u, &user));
        if same && client.is_subscriber() {
            to_close.push(client.value().clone());
        }
    }
    for client in to_close {
        let lost = ctx
            .shared
            .pubsub
            .subscriptions_of(client.id)
            .iter()
            .any(|(kind, name)| !allowed(*kind, name));
        if !lost {
            continue;
        }
        if client.id == ctx.session.info.id {
            ctx.session.close_after_reply = true;
        } else {
            client.kill();
        }
    }
}

fn deluser(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    if args[2..].iter().any(|n| n.as_ref() == b"default") {
        return Err(CommandError::err("The 'default' user cannot be removed"));
    }
    let removed: Vec<Arc<AclUser>> = args[2..]
        .iter()
        .filter_map(|n| ctx.shared.acl.remove(n))
        .collect();
    close_clients_of(ctx, &removed);
    Ok(Reply::Int(removed.len() as i64))
}

fn text(b: Vec<u8>) -> Reply {
    Reply::Bulk(Bytes::from(b))
}

fn selector_fields(ctx: &Ctx<'_>, s: &crate::acl::rules::Selector) -> Vec<(Reply, Reply)> {
    vec![
        (
            Reply::bulk_str("commands"),
            Reply::bulk_string(s.describe_commands(&ctx.shared.commands)),
        ),
        (Reply::bulk_str("keys"), text(s.describe_keys())),
        (Reply::bulk_str("channels"), text(s.describe_channels())),
    ]
}

fn getuser(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let Some(user) = ctx.shared.acl.user(&args[2]) else {
        return Ok(Reply::Nil);
    };
    let rules = user.rules();
    let mut fields = vec![
        (
            Reply::bulk_str("flags"),
            Reply::Set(rules.flags().into_iter().map(Reply::bulk_str).collect()),
        ),
        (
            Reply::bulk_str("passwords"),
            Reply::Array(
                rules
                    .passwords
                    .iter()
                    .map(|p| Reply::bulk_string(p.clone()))
                    .collect(),
            ),
        ),
    ];
    fields.extend(selector_fields(ctx, &rules.selectors[0]));
    let selectors = rules.selectors[1..]
        .iter()
        .map(|s| Reply::Map(selector_fields(ctx, s)))
        .collect();
    fields.push((Reply::bulk_str("selectors"), Reply::Array(selectors)));
    Ok(Reply::Map(fields))
}

fn list(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    let lines = ctx
        .shared
        .acl
        .file_text(&ctx.shared.commands)
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| Reply::Bulk(Bytes::copy_from_slice(l)))
        .collect();
    Ok(Reply::Array(lines))
}

fn users(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(Reply::Array(
        ctx.shared
            .acl
            .users()
            .iter()
            .map(|u| Reply::Bulk(u.name.clone()))
            .collect(),
    ))
}

fn whoami(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(Reply::Bulk(ctx.session.user.name.clone()))
}

fn cat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    match args.len() {
        2 => Ok(Reply::Array(
            CATEGORIES.iter().map(|c| Reply::bulk_str(c)).collect(),
        )),
        3 => {
            let bit = crate::acl::rules::category_bit(&args[2]).ok_or_else(|| {
                let name = &args[2][..args[2].len().min(128)];
                CommandError::err(format!(
                    "Unknown category '{}'",
                    String::from_utf8_lossy(name)
                ))
            })?;
            Ok(Reply::Array(
                ctx.shared
                    .commands
                    .all()
                    .iter()
                    .filter(|c| c.categories & bit != 0)
                    .map(|c| Reply::bulk_string(c.full_name.clone()))
                    .collect(),
            ))
        }
        _ => Err(subcommand_syntax(args)),
    }
}

/// Redis's reply to a known subcommand with the wrong arguments.
fn subcommand_syntax(args: &[Bytes]) -> CommandError {
    let sub = &args[1][..args[1].len().min(128)];
    CommandError::err(format!(
        "unknown subcommand or wrong number of arguments for '{}'. Try ACL HELP.",
        String::from_utf8_lossy(sub)
    ))
}

fn genpass(_: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    const MAX_BITS: i64 = 4096;
    let bits = match args.len() {
        2 => 256,
        3 => super::int_arg(&args[2])?,
        _ => return Err(subcommand_syntax(args)),
    };
    if bits <= 0 || bits > MAX_BITS {
        return Err(CommandError::err(format!(
            "ACL GENPASS argument must be the number of bits for the output password, a positive number up to {MAX_BITS}"
        )));
    }
    let chars = ((bits + 3) / 4) as usize;
    let mut random = vec![0u8; chars.div_ceil(2)];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .map_err(|e| CommandError::err(format!("cannot read random bytes: {e}")))?;
    let hex: String = random
        .iter()
        .flat_map(|b| [b >> 4, b & 15])
        .take(chars)
        .map(|n| char::from(b"0123456789abcdef"[usize::from(n)]))
        .collect();
    Ok(Reply::bulk_string(hex))
}

fn log(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let count = match args.len() {
        2 => 10,
        3 if is(&args[2], "reset") => {
            ctx.shared.acl.reset_log();
            return Ok(Reply::OK);
        }
        3 => super::int_arg(&args[2])?.max(0),
        _ => return Err(subcommand_syntax(args)),
    };
    let now = ctx.shared.clock.now_ms();
    let entries = ctx
        .shared
        .acl
        .log_entries(usize::try_from(count).unwrap_or(usize::MAX));
    Ok(Reply::Array(
        entries
            .iter()
            .map(|e| {
                Reply::Map(
                    e.fields(now)
                        .into_iter()
                        .map(|(k, v)| {
                            let v = match v {
                                LogValue::Int(n) => Reply::Int(n),
                                LogValue::Double(d) => Reply::Double(d),
                                LogValue::Text(t) => Reply::Bulk(Bytes::copy_from_slice(t)),
                            };
                            (Reply::bulk_str(k), v)
                        })
                        .collect(),
                )
            })
            .collect(),
    ))
}

fn dryrun(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let Some(user) = ctx.shared.acl.user(&args[2]) else {
        return Err(CommandError::err(format!(
            "User '{}' not found",
            String::from_utf8_lossy(&args[2])
        )));
    };
    let words = &args[3..];
    let Some(cmd) = ctx.shared.commands.lookup(words) else {
        return Err(CommandError::err(format!(
            "Command '{}' not found",
            String::from_utf8_lossy(&args[3])
        )));
    };
    let arity = i64::from(cmd.spec.arity);
    let argc = words.len() as i64;
    if (arity > 0 && arity != argc) || argc < -arity {
        return Err(CommandError::WrongArity(cmd.full_name.clone()));
    }
    let reply = match user.rules().check(cmd, words) {
        Ok(()) => return Ok(Reply::OK),
        Err(Denied::Command) => format!(
            "This user has no permissions to run the '{}' command",
            cmd.full_name
        ),
        Err(Denied::Key(p)) => format!(
            "This user has no permissions to access the '{}' key",
            String::from_utf8_lossy(&words[p])
        ),
        Err(Denied::Channel(p)) => format!(
            "This user has no permissions to access the '{}' channel",
            String::from_utf8_lossy(&words[p])
        ),
    };
    Ok(Reply::bulk_string(reply))
}

fn no_file() -> CommandError {
    CommandError::err("This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.")
}

/// Reads and checks the ACL file `path`: its users, or Redis's one-line
/// description of every error.
pub fn read_acl_file(shared: &Shared, path: &str) -> Result<Vec<(Bytes, UserRules)>, String> {
    let text = std::fs::read(path).map_err(|e| {
        format!(
            "Error loading ACLs, opening file '{path}': {}",
            strerror(&e)
        )
    })?;
    let allchannels = shared.config.read().acl_pubsub_allchannels;
    crate::acl::parse_file(&shared.commands, &text, path, allchannels)
}

fn load(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    let path = ctx.shared.config.read().aclfile.clone();
    if path.is_empty() {
        return Err(no_file());
    }
    let users = read_acl_file(ctx.shared, &path).map_err(CommandError::err)?;
    let replaced = ctx.shared.acl.replace_all(&ctx.shared.commands, users);
    close_clients_of(ctx, &replaced);
    Ok(Reply::OK)
}

fn save(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    let path = ctx.shared.config.read().aclfile.clone();
    if path.is_empty() {
        return Err(no_file());
    }
    let text = ctx.shared.acl.file_text(&ctx.shared.commands);
    let tmp = format!(
        "{path}.tmp-{}-{}",
        std::process::id(),
        ctx.shared.clock.now_ms()
    );
    let written = std::fs::write(&tmp, &text).and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!("Writing ACL file for ACL SAVE: {e}");
        return Err(CommandError::err("There was an error trying to save the ACLs. Please check the server logs for more information"));
    }
    Ok(Reply::OK)
}

fn help(_: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(super::help_reply(
        "ACL",
        &[
            "CAT [<category>]",
            "    List all commands that belong to <category>, or all command categories",
            "    when no category is specified.",
            "DELUSER <username> [<username> ...]",
            "    Delete a list of users.",
            "DRYRUN <username> <command> [<arg> ...]",
            "    Returns whether the user can execute the given command without executing the command.",
            "GETUSER <username>",
            "    Get the user's details.",
            "GENPASS [<bits>]",
            "    Generate a secure 256-bit user password. The optional `bits` argument can",
            "    be used to specify a different size.",
            "LIST",
            "    Show users details in config file format.",
            "LOAD",
            "    Reload users from the ACL file.",
            "LOG [<count> | RESET]",
            "    Show the ACL log entries.",
            "SAVE",
            "    Save the current config to the ACL file.",
            "SETUSER <username> <attribute> [<attribute> ...]",
            "    Create or modify a user with the specified attributes.",
            "USERS",
            "    List all the registered usernames.",
            "WHOAMI",
            "    Return the current connection username.",
        ],
    ))
}

/// An I/O error as C's `strerror` words it (`No such file or directory`).
fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    // Rust appends " (os error N)".
    match text.rfind(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}
