//! CLIENT: ID, SETNAME, GETNAME, SETINFO, LIST, INFO, KILL, NO-EVICT, NO-TOUCH,
//! HELP.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::CommandResult;
use super::{container, flag, int_arg, is, CommandSpec, Ctx};
use crate::error::CommandError;
use crate::reply::Reply;
use crate::server::Shared;
use crate::session::{argv_mem, ClientInfo};

const CONN: u32 = flag::NOSCRIPT | flag::LOADING | flag::STALE;

/// The CLIENT container and its subcommands.
pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new("client", -2, 0, container)
    .acl(&["@slow"])
    .doc(
        "connection",
        "2.4.0",
        "A container for client connection commands.",
    )
    .with_subcommands(&[
        CommandSpec::new("id", 2, CONN, id)
            .acl(&["@slow", "@connection"])
            .doc(
                "connection",
                "5.0.0",
                "Returns the unique client ID of the connection.",
            ),
        CommandSpec::new("setname", 3, CONN, setname)
            .acl(&["@slow", "@connection"])
            .doc("connection", "2.6.9", "Sets the connection name."),
        CommandSpec::new("getname", 2, CONN, getname)
            .acl(&["@slow", "@connection"])
            .doc("connection", "2.6.9", "Returns the name of the connection."),
        // Redis 7.2's, newer than the recorded server: tests/command_info.rs
        // checks these two rows against 7.2's command files.
        CommandSpec::new("setinfo", 4, CONN, setinfo)
            .acl(&["@slow", "@connection"])
            .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"])
            .doc(
                "connection",
                "7.2.0",
                "Sets information specific to the client or connection.",
            ),
        CommandSpec::new("list", -2, CONN | flag::ADMIN, list)
            .acl(&["@admin", "@slow", "@dangerous", "@connection"])
            .tips(&["nondeterministic_output"])
            .doc("connection", "2.4.0", "Lists open connections."),
        CommandSpec::new("info", 2, CONN, info)
            .acl(&["@slow", "@connection"])
            .tips(&["nondeterministic_output"])
            .doc(
                "connection",
                "6.2.0",
                "Returns information about the connection.",
            ),
        CommandSpec::new("kill", -3, CONN | flag::ADMIN, kill)
            .acl(&["@admin", "@slow", "@dangerous", "@connection"])
            .doc("connection", "2.4.0", "Terminates open connections."),
        CommandSpec::new("no-evict", 3, CONN | flag::ADMIN, on_off)
            .acl(&["@admin", "@slow", "@dangerous", "@connection"])
            .doc(
                "connection",
                "7.0.0",
                "Sets the client eviction mode of the connection.",
            ),
        CommandSpec::new("no-touch", 3, CONN, on_off)
            .acl(&["@slow", "@connection"])
            .doc(
                "connection",
                "7.2.0",
                "Controls whether commands sent by the client affect the LRU/LFU of accessed keys.",
            ),
        CommandSpec::new("help", 2, flag::LOADING | flag::STALE, help)
            .acl(&["@slow", "@connection"])
            .doc(
                "connection",
                "5.0.0",
                "Returns helpful text about the different subcommands.",
            ),
    ])];

fn id(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(Reply::Int(ctx.session.info.id as i64))
}

fn setname(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    super::server::validate_client_name(&args[2])?;
    *ctx.session.info.name.lock() = (!args[2].is_empty()).then(|| args[2].clone());
    Ok(Reply::OK)
}

fn getname(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(Reply::bulk_or_nil(ctx.session.info.name.lock().clone()))
}

fn setinfo(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let slot = if is(&args[2], "lib-name") {
        &ctx.session.info.lib_name
    } else if is(&args[2], "lib-ver") {
        &ctx.session.info.lib_ver
    } else {
        return Err(CommandError::err(format!(
            "Unrecognized option '{}'",
            String::from_utf8_lossy(&args[2])
        )));
    };
    if args[3].iter().any(|c| *c < b'!' || *c > b'~') {
        return Err(CommandError::err(format!(
            "{} cannot contain spaces, newlines or special characters.",
            String::from_utf8_lossy(&args[2]).to_ascii_lowercase()
        )));
    }
    *slot.lock() = (!args[3].is_empty()).then(|| args[3].clone());
    Ok(Reply::OK)
}

fn text(b: &Option<Bytes>) -> String {
    b.as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default()
        .into_owned()
}

/// Redis's static reply buffer: `obl=` counts pending reply bytes up to this, the
/// rest is reported as `oll=` blocks and `omem=` bytes, as Redis's reply list.
const REPLY_CHUNK: usize = 16 * 1024;

/// One `CLIENT LIST` line, with Redis 7.2's fields. `own_argv` is the argument
/// bytes of the command being run, for the client running it (`argv-mem=`).
pub fn client_line(shared: &Shared, c: &ClientInfo, own_argv: Option<usize>) -> String {
    let now = shared.clock.now_ms();
    let multi = c.multi.load(Ordering::Relaxed);
    let blocked = c.blocked.load(Ordering::Relaxed);
    let flags = if blocked {
        "b"
    } else if c.is_subscriber() {
        "P"
    } else if multi >= 0 {
        "x"
    } else {
        "N"
    };
    let cmd = shared
        .commands
        .all()
        .get(c.last_cmd.load(Ordering::Relaxed))
        .map_or("NULL", |cmd| cmd.full_name.as_str());
    let b = &c.buffers;
    let qbuf = b.qbuf.load(Ordering::Relaxed);
    let qbuf_free = b.qbuf_free.load(Ordering::Relaxed);
    let argv_mem = match own_argv {
        Some(n) => n,
        None if blocked => b.argv_mem.load(Ordering::Relaxed),
        None => 0,
    };
    let multi_mem = if multi > 0 {
        b.multi_mem.load(Ordering::Relaxed)
    } else {
        0
    };
    // Reply bytes not yet written and published messages not yet taken.
    let pending = b.output();
    let obl = pending.min(REPLY_CHUNK);
    let omem = pending - obl;
    let oll = omem.div_ceil(REPLY_CHUNK);
    let rbs = b.out_capacity.load(Ordering::Relaxed);
    let tot_mem = (qbuf + qbuf_free)
        .saturating_add(rbs)
        .saturating_add(b.queued.load(Ordering::Relaxed))
        .saturating_add(argv_mem)
        .saturating_add(multi_mem)
        .saturating_add(std::mem::size_of::<crate::session::Session>())
        .saturating_add(std::mem::size_of::<ClientInfo>());
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem={} multi-mem={} rbs={} rbp={} obl={} oll={} omem={} tot-mem={} events={} cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
        c.id,
        c.addr,
        c.laddr,
        c.fd,
        text(&c.name.lock()),
        now.saturating_sub(c.created_ms) / 1000,
        now.saturating_sub(c.last_interaction_ms.load(Ordering::Relaxed)) / 1000,
        flags,
        c.db.load(Ordering::Relaxed),
        c.subscriptions[0].load(Ordering::Relaxed),
        c.subscriptions[1].load(Ordering::Relaxed),
        c.subscriptions[2].load(Ordering::Relaxed),
        multi,
        qbuf,
        qbuf_free,
        argv_mem,
        multi_mem,
        rbs,
        b.out_peak.load(Ordering::Relaxed),
        obl,
        oll,
        omem,
        tot_mem,
        if pending > 0 { "rw" } else { "r" },
        cmd,
        c.resp.load(Ordering::Relaxed),
        text(&c.lib_name.lock()),
        text(&c.lib_ver.lock()),
    )
}

/// A client's class for `TYPE` filters and output limits: `pubsub` once it
/// subscribes to anything, else `normal` (latchkey has no replicas).
pub fn client_class(c: &ClientInfo) -> &'static str {
    if c.is_subscriber() {
        "pubsub"
    } else {
        "normal"
    }
}

/// Whether a `TYPE` filter (lower case; `None`: no filter) keeps client `c`.
fn class_matches(class: Option<&str>, c: &ClientInfo) -> bool {
    class.is_none_or(|t| t == client_class(c))
}

fn list(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut ids: Option<Vec<u64>> = None;
    let mut class: Option<String> = None;
    let mut i = 2;
    while i < args.len() {
        if is(&args[i], "type") && i + 1 < args.len() {
            let t = &args[i + 1];
            if !["normal", "master", "replica", "slave", "pubsub"]
                .iter()
                .any(|n| is(t, n))
            {
                return Err(CommandError::err(format!(
                    "Unknown client type '{}'",
                    String::from_utf8_lossy(t)
                )));
            }
            class = Some(String::from_utf8_lossy(t).to_ascii_lowercase());
            i += 2;
        } else if is(&args[i], "id") && i + 1 < args.len() {
            let mut wanted = Vec::new();
            for a in &args[i + 1..] {
                let n = int_arg(a)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| CommandError::err("Invalid client ID"))?;
                wanted.push(n as u64);
            }
            ids = Some(wanted);
            i = args.len();
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let mut clients: Vec<_> = ctx
        .shared
        .clients
        .iter()
        .map(|c| c.value().clone())
        .collect();
    clients.sort_by_key(|c| c.id);
    let mut out = String::new();
    for c in clients
        .iter()
        .filter(|c| ids.as_ref().is_none_or(|ids| ids.contains(&c.id)))
        .filter(|c| class_matches(class.as_deref(), c))
    {
        let own = (c.id == ctx.session.info.id).then(|| argv_mem(args));
        out.push_str(&client_line(ctx.shared, c, own));
        out.push('\n');
    }
    Ok(Reply::Verbatim(Bytes::from(out)))
}

fn info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let line = client_line(ctx.shared, &ctx.session.info, Some(argv_mem(args)));
    Ok(Reply::Verbatim(Bytes::from(line + "\n")))
}

fn kill(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    if args.len() == 3 {
        // The old form: CLIENT KILL addr:port.
        let addr = String::from_utf8_lossy(&args[2]);
        let target = ctx
            .shared
            .clients
            .iter()
            .find(|c| c.addr == addr)
            .map(|c| c.value().clone());
        return match target {
            Some(c) => {
                c.kill();
                Ok(Reply::OK)
            }
            None => Err(CommandError::err("No such client")),
        };
    }
    if !args.len().is_multiple_of(2) {
        return Err(CommandError::Syntax);
    }
    let mut id = None;
    let (mut addr, mut laddr) = (None, None);
    let mut skipme = true;
    // Every client here is of the default user; its TYPE is normal or pubsub
    // (no master or replica clients).
    let mut class: Option<String> = None;
    for pair in args[2..].chunks_exact(2) {
        let (name, value) = (&pair[0], &pair[1]);
        if is(name, "id") {
            let n = int_arg(value)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| CommandError::err("client-id should be greater than 0"))?;
            id = Some(n as u64);
        } else if is(name, "addr") {
            addr = Some(String::from_utf8_lossy(value).into_owned());
        } else if is(name, "laddr") {
            laddr = Some(String::from_utf8_lossy(value).into_owned());
        } else if is(name, "skipme") {
            skipme = if is(value, "yes") {
                true
            } else if is(value, "no") {
                false
            } else {
                return Err(CommandError::Syntax);
            };
        } else if is(name, "type") {
            if !["normal", "master", "replica", "slave", "pubsub"]
                .iter()
                .any(|t| is(value, t))
            {
                return Err(CommandError::err(format!(
                    "Unknown client type '{}'",
                    String::from_utf8_lossy(value)
                )));
            }
            class = Some(String::from_utf8_lossy(value).to_ascii_lowercase());
        } else if is(name, "user") {
            if value.as_ref() != b"default" {
                return Err(CommandError::err(format!(
                    "No such user '{}'",
                    String::from_utf8_lossy(value)
                )));
            }
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let me = ctx.session.info.id;
    let mut killed = 0;
    for c in ctx.shared.clients.iter() {
        let matches = class_matches(class.as_deref(), c.value())
            && id.is_none_or(|id| c.id == id)
            && addr.as_deref().is_none_or(|a| c.addr == a)
            && laddr.as_deref().is_none_or(|a| c.laddr == a)
            && !(skipme && c.id == me);
        if matches {
            c.kill();
            killed += 1;
        }
    }
    Ok(Reply::Int(killed))
}

fn on_off(_: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    if is(&args[2], "on") || is(&args[2], "off") {
        Ok(Reply::OK)
    } else {
        Err(CommandError::Syntax)
    }
}

/// HELP text for a container: one line per subcommand, from the table.
pub fn help_lines(ctx: &Ctx<'_>, container: &str) -> Reply {
    let mut lines = vec![Reply::Status(Bytes::from(format!(
        "{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        container.to_ascii_uppercase()
    )))];
    let prefix = format!("{container}|");
    for c in ctx.shared.commands.all() {
        if let Some(sub) = c.full_name.strip_prefix(&prefix) {
            lines.push(Reply::Status(Bytes::from(sub.to_ascii_uppercase())));
            lines.push(Reply::Status(Bytes::from(format!(
                "    {}",
                c.spec.summary
            ))));
        }
    }
    Reply::Array(lines)
}

fn help(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(help_lines(ctx, "client"))
}
