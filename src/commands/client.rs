//! CLIENT: ID, SETNAME, GETNAME, SETINFO, LIST, INFO, KILL, NO-EVICT, NO-TOUCH,
//! PAUSE, UNPAUSE, REPLY, UNBLOCK, HELP.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::CommandResult;
use super::{container, flag, int_arg, is, CommandSpec, Ctx};
use crate::error::CommandError;
use crate::reply::Reply;
use crate::server::Shared;
use crate::session::{argv_mem, ClientInfo};
use crate::tracking::flag as tflag;

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
        CommandSpec::new("no-evict", 3, CONN | flag::ADMIN, no_evict)
            .acl(&["@admin", "@slow", "@dangerous", "@connection"])
            .doc(
                "connection",
                "7.0.0",
                "Sets the client eviction mode of the connection.",
            ),
        CommandSpec::new("no-touch", 3, CONN, no_touch)
            .acl(&["@slow", "@connection"])
            .doc(
                "connection",
                "7.2.0",
                "Controls whether commands sent by the client affect the LRU/LFU of accessed keys.",
            ),
        CommandSpec::new("tracking", -3, CONN, tracking)
            .acl(&["@slow", "@connection"])
            .doc(
                "connection",
                "6.0.0",
                "Controls server-assisted client-side caching for the connection.",
            ),
        CommandSpec::new("caching", 3, CONN, caching)
            .acl(&["@slow", "@connection"])
            .doc(
                "connection",
                "6.0.0",
                "Instructs the server whether to track the keys in the next request.",
            ),
        CommandSpec::new("getredir", 2, CONN, getredir)
            .acl(&["@slow", "@connection"])
            .doc(
                "connection",
                "6.0.0",
                "Returns the client ID to which the connection's tracking notifications are redirected.",
            ),
        CommandSpec::new("trackinginfo", 2, CONN, trackinginfo)
            .acl(&["@slow", "@connection"])
            .doc(
                "connection",
                "6.2.0",
                "Returns information about server-assisted client-side caching for the connection.",
            ),
        CommandSpec::new("pause", -3, CONN | flag::ADMIN, pause)
            .acl(&["@admin", "@slow", "@dangerous", "@connection"])
            .doc(
                "connection",
                "3.0.0",
                "Suspends commands processing.",
            ),
        CommandSpec::new("unpause", 2, CONN | flag::ADMIN, unpause)
            .acl(&["@admin", "@slow", "@dangerous", "@connection"])
            .doc(
                "connection",
                "6.2.0",
                "Resumes processing commands from paused clients.",
            ),
        CommandSpec::new("reply", 3, CONN, reply)
            .acl(&["@slow", "@connection"])
            .doc(
                "connection",
                "3.2.0",
                "Instructs the server whether to reply to commands.",
            ),
        CommandSpec::new("unblock", -3, CONN | flag::ADMIN, unblock)
            .acl(&["@admin", "@slow", "@dangerous", "@connection"])
            .doc(
                "connection",
                "5.0.0",
                "Unblocks a client blocked by a blocking command from a different connection.",
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
    // Redis's letters, in its order.
    let tracking = c.tracking.load(Ordering::Relaxed);
    let mut flags = String::new();
    for (on, letter) in [
        (c.monitor.load(Ordering::Relaxed), 'O'),
        (c.is_subscriber(), 'P'),
        (multi >= 0, 'x'),
        (blocked, 'b'),
        (tracking & tflag::ON != 0, 't'),
        (tracking & tflag::BROKEN_REDIR != 0, 'R'),
        (tracking & tflag::BCAST != 0, 'B'),
        (c.no_evict.load(Ordering::Relaxed), 'e'),
        (c.no_touch.load(Ordering::Relaxed), 'T'),
    ] {
        if on {
            flags.push(letter);
        }
    }
    if flags.is_empty() {
        flags.push('N');
    }
    let redir = if tracking & tflag::ON != 0 {
        c.tracking_redirect.load(Ordering::Relaxed) as i64
    } else {
        -1
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
    let tot_mem = crate::session::client_memory(
        (qbuf + qbuf_free).saturating_add(rbs),
        b.queued.load(Ordering::Relaxed),
        argv_mem,
        multi_mem,
    );
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem={} multi-mem={} rbs={} rbp={} obl={} oll={} omem={} tot-mem={} events={} cmd={} user={} redir={} resp={} lib-name={} lib-ver={}",
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
        c.user
            .lock()
            .as_ref()
            .map_or_else(|| "default".into(), |u| String::from_utf8_lossy(&u.name).into_owned()),
        redir,
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
    let mut user = None;
    // A client's TYPE is normal or pubsub (no master or replica clients).
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
            user = Some(ctx.shared.acl.user(value).ok_or_else(|| {
                CommandError::err(format!("No such user '{}'", String::from_utf8_lossy(value)))
            })?);
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
            && user.as_ref().is_none_or(|u| {
                c.user
                    .lock()
                    .as_ref()
                    .is_some_and(|cu| std::sync::Arc::ptr_eq(cu, u))
            })
            && !(skipme && c.id == me);
        if matches {
            c.kill();
            killed += 1;
        }
    }
    Ok(Reply::Int(killed))
}

/// CLIENT PAUSE timeout [WRITE|ALL]: the mode is checked before the timeout,
/// as Redis does; a pause already on is extended (the later end, the more
/// restrictive mode).
fn pause(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    if args.len() > 4 {
        return Err(CommandError::subcommand_syntax("client", &args[1]));
    }
    let mode = match args.get(3) {
        None => crate::pause::ALL,
        Some(m) if is(m, "write") => crate::pause::WRITE,
        Some(m) if is(m, "all") => crate::pause::ALL,
        Some(_) => return Err(CommandError::err("CLIENT PAUSE mode must be WRITE or ALL")),
    };
    let ms = int_arg(&args[2])
        .map_err(|_| CommandError::err("timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(CommandError::err("timeout is negative"));
    }
    let now = ctx.shared.clock.now_ms();
    // 0 is a pause that is already over, as in Redis.
    let end = if ms > 0 {
        now.saturating_add(ms as u64)
    } else {
        0
    };
    ctx.shared.pause.pause(end, mode, now);
    Ok(Reply::OK)
}

/// CLIENT UNPAUSE: ends the pause; postponed clients run their commands in
/// the order they were postponed.
fn unpause(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    ctx.shared.pause.unpause();
    Ok(Reply::OK)
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: 1 if the client was blocked in a
/// command (BLPOP and the other blocking commands on keys, XREAD BLOCK,
/// LOCK.ACQUIRE ... WAIT), which then ends with its timeout's reply or
/// `-UNBLOCKED`; 0 otherwise (a client CLIENT PAUSE postponed included:
/// its command has not started).
fn unblock(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    if args.len() > 4 {
        return Err(CommandError::subcommand_syntax("client", &args[1]));
    }
    let error = match args.get(3) {
        None => false,
        Some(r) if is(r, "timeout") => false,
        Some(r) if is(r, "error") => true,
        Some(_) => {
            return Err(CommandError::err(
                "CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ))
        }
    };
    let id = int_arg(&args[2])?;
    let Some(target) = u64::try_from(id)
        .ok()
        .and_then(|id| ctx.shared.clients.get(&id).map(|c| c.value().clone()))
    else {
        return Ok(Reply::Int(0));
    };
    if !target.blocked.load(Ordering::Acquire) || target.postponed.load(Ordering::Relaxed) {
        return Ok(Reply::Int(0));
    }
    let seq = target.wait_seq.load(Ordering::Relaxed);
    let sent = target.outbox.get().is_some_and(|outbox| {
        outbox
            .send(crate::blocking::Message::Unblock { seq, error })
            .is_ok()
    });
    Ok(Reply::Int(i64::from(sent)))
}

/// CLIENT REPLY ON|OFF|SKIP: ON answers OK (and ends a SKIP); OFF and SKIP
/// have no reply (`Session::end_reply` silences them); SKIP while OFF does
/// nothing.
fn reply(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let s = &mut *ctx.session;
    if is(&args[2], "on") {
        s.reply_off = false;
        s.reply_skip = false;
        Ok(Reply::OK)
    } else if is(&args[2], "off") {
        s.reply_off = true;
        Ok(Reply::Silent)
    } else if is(&args[2], "skip") {
        if !s.reply_off {
            s.reply_skip_next = true;
            // This command's own reply (none) is skipped too.
            s.reply_skip = true;
        }
        Ok(Reply::Silent)
    } else {
        Err(CommandError::Syntax)
    }
}

/// CLIENT NO-EVICT ON|OFF: whether `maxmemory-clients` may close this client.
fn no_evict(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let on = on_off(&args[2])?;
    ctx.session.info.no_evict.store(on, Ordering::Relaxed);
    Ok(Reply::OK)
}

/// CLIENT NO-TOUCH ON|OFF: whether this client's commands count as accesses
/// for LRU and LFU (TOUCH always does).
fn no_touch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let on = on_off(&args[2])?;
    ctx.session.info.no_touch.store(on, Ordering::Relaxed);
    Ok(Reply::OK)
}

fn on_off(arg: &[u8]) -> Result<bool, CommandError> {
    if is(arg, "on") {
        Ok(true)
    } else if is(arg, "off") {
        Ok(false)
    } else {
        Err(CommandError::Syntax)
    }
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN]
/// [OPTOUT] [NOLOOP], with Redis's checks in Redis's order.
fn tracking(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut redirect: i64 = 0;
    let mut options = 0u32;
    let mut prefixes: Vec<Bytes> = Vec::new();
    let mut j = 3;
    while j < args.len() {
        let more = j + 1 < args.len();
        let a = &args[j];
        if is(a, "redirect") && more {
            j += 1;
            if redirect != 0 {
                return Err(CommandError::err(
                    "A client can only redirect to a single other client",
                ));
            }
            redirect = int_arg(&args[j])?;
            let exists = u64::try_from(redirect)
                .ok()
                .is_some_and(|id| ctx.shared.clients.contains_key(&id));
            if !exists {
                return Err(CommandError::err(
                    "The client ID you want redirect to does not exist",
                ));
            }
        } else if is(a, "bcast") {
            options |= tflag::BCAST;
        } else if is(a, "optin") {
            options |= tflag::OPTIN;
        } else if is(a, "optout") {
            options |= tflag::OPTOUT;
        } else if is(a, "noloop") {
            options |= tflag::NOLOOP;
        } else if is(a, "prefix") && more {
            j += 1;
            prefixes.push(Bytes::copy_from_slice(&args[j]));
        } else {
            return Err(CommandError::Syntax);
        }
        j += 1;
    }
    if is(&args[2], "off") {
        tracking_off(ctx);
        return Ok(Reply::OK);
    }
    if !is(&args[2], "on") {
        return Err(CommandError::Syntax);
    }
    let current = ctx.session.tracking;
    if options & tflag::BCAST == 0 && !prefixes.is_empty() {
        return Err(CommandError::err(
            "PREFIX option requires BCAST mode to be enabled",
        ));
    }
    if current & tflag::ON != 0 && (current & tflag::BCAST) != (options & tflag::BCAST) {
        return Err(CommandError::err(
            "You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.",
        ));
    }
    if options & tflag::BCAST != 0 && options & (tflag::OPTIN | tflag::OPTOUT) != 0 {
        return Err(CommandError::err(
            "OPTIN and OPTOUT are not compatible with BCAST",
        ));
    }
    if options & tflag::OPTIN != 0 && options & tflag::OPTOUT != 0 {
        return Err(CommandError::err(
            "You can't specify both OPTIN mode and OPTOUT mode",
        ));
    }
    if (options & tflag::OPTIN != 0 && current & tflag::OPTOUT != 0)
        || (options & tflag::OPTOUT != 0 && current & tflag::OPTIN != 0)
    {
        return Err(CommandError::err(
            "You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.",
        ));
    }
    let mut late_error = None;
    if options & tflag::BCAST != 0 {
        match ctx
            .shared
            .tracking
            .check_prefixes(ctx.session.info.id, &prefixes)
        {
            Ok(late) => late_error = late,
            Err(e) => return Err(CommandError::err(e)),
        }
    }
    let redirect = u64::try_from(redirect).unwrap_or(0);
    // Enabling again keeps CLIENT CACHING, and clears the broken redirection.
    let flags = tflag::ON | options;
    ctx.shared
        .tracking
        .enable(&ctx.session.info, flags, redirect, &prefixes);
    ctx.session.tracking = flags;
    Ok(match late_error {
        // Redis replies this collision (found against a later prefix than
        // the first) and then enables tracking all the same: two replies.
        Some(e) => Reply::Frames(vec![Reply::Error(CommandError::err(e)), Reply::OK]),
        None => Reply::OK,
    })
}

/// Turns tracking off for this client (CLIENT TRACKING OFF, RESET).
pub fn tracking_off(ctx: &mut Ctx<'_>) {
    if ctx.session.tracking != 0 || ctx.session.info.tracking.load(Ordering::Relaxed) != 0 {
        ctx.shared.tracking.disable(&ctx.session.info);
    }
    ctx.session.tracking = 0;
    ctx.session.caching = false;
}

fn caching(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let f = ctx.session.tracking;
    if f & tflag::ON == 0 {
        return Err(CommandError::err(
            "CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        ));
    }
    if is(&args[2], "yes") {
        if f & tflag::OPTIN == 0 {
            return Err(CommandError::err(
                "CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            ));
        }
    } else if is(&args[2], "no") {
        if f & tflag::OPTOUT == 0 {
            return Err(CommandError::err(
                "CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            ));
        }
    } else {
        return Err(CommandError::Syntax);
    }
    ctx.session.caching = true;
    Ok(Reply::OK)
}

fn redirect_of(c: &ClientInfo) -> i64 {
    if c.tracking.load(Ordering::Relaxed) & tflag::ON != 0 {
        c.tracking_redirect.load(Ordering::Relaxed) as i64
    } else {
        -1
    }
}

fn getredir(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(Reply::Int(redirect_of(&ctx.session.info)))
}

fn trackinginfo(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    let info = &ctx.session.info;
    let f = info.tracking.load(Ordering::Relaxed);
    let word = |w: &'static str| Reply::Bulk(Bytes::from_static(w.as_bytes()));
    let mut flags = vec![word(if f & tflag::ON != 0 { "on" } else { "off" })];
    if f & tflag::BCAST != 0 {
        flags.push(word("bcast"));
    }
    if f & tflag::OPTIN != 0 {
        flags.push(word("optin"));
        if ctx.session.caching {
            flags.push(word("caching-yes"));
        }
    }
    if f & tflag::OPTOUT != 0 {
        flags.push(word("optout"));
        if ctx.session.caching {
            flags.push(word("caching-no"));
        }
    }
    if f & tflag::NOLOOP != 0 {
        flags.push(word("noloop"));
    }
    if f & tflag::BROKEN_REDIR != 0 {
        flags.push(word("broken_redirect"));
    }
    let prefixes = ctx
        .shared
        .tracking
        .prefixes_of(info.id)
        .into_iter()
        .map(Reply::Bulk)
        .collect();
    Ok(Reply::Map(vec![
        (word("flags"), Reply::Set(flags)),
        (word("redirect"), Reply::Int(redirect_of(info))),
        (word("prefixes"), Reply::Array(prefixes)),
    ]))
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
