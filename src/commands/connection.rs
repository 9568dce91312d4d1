//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::CommandResult;
use super::{flag, int_arg, is, CommandSpec, Ctx};
use crate::error::CommandError;
use crate::reply::Reply;
use crate::server::REDIS_VERSION;

/// The connection family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("ping", -1, flag::FAST, ping)
        .acl(&["@fast", "@connection"])
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"])
        .doc(
            "connection",
            "1.0.0",
            "Returns the server's liveliness response.",
        ),
    CommandSpec::new("echo", 2, flag::LOADING | flag::STALE | flag::FAST, echo)
        .acl(&["@fast", "@connection"])
        .doc("connection", "1.0.0", "Returns the given string."),
    CommandSpec::new(
        "hello",
        -1,
        flag::NOSCRIPT
            | flag::LOADING
            | flag::STALE
            | flag::FAST
            | flag::NO_AUTH
            | flag::ALLOW_BUSY,
        hello,
    )
    .acl(&["@fast", "@connection"])
    .doc("connection", "6.0.0", "Handshakes with the Redis server."),
    CommandSpec::new(
        "auth",
        -2,
        flag::NOSCRIPT
            | flag::LOADING
            | flag::STALE
            | flag::FAST
            | flag::NO_AUTH
            | flag::ALLOW_BUSY,
        auth,
    )
    .acl(&["@fast", "@connection"])
    .doc("connection", "1.0.0", "Authenticates the connection."),
    CommandSpec::new(
        "select",
        2,
        flag::LOADING | flag::STALE | flag::FAST,
        select,
    )
    .acl(&["@fast", "@connection"])
    .doc("connection", "1.0.0", "Changes the selected database."),
    CommandSpec::new(
        "quit",
        -1,
        flag::NOSCRIPT
            | flag::LOADING
            | flag::STALE
            | flag::FAST
            | flag::NO_AUTH
            | flag::ALLOW_BUSY
            | flag::IMMEDIATE,
        quit,
    )
    .acl(&["@fast", "@connection"])
    .doc("connection", "1.0.0", "Closes the connection."),
    CommandSpec::new(
        "reset",
        1,
        flag::NOSCRIPT
            | flag::LOADING
            | flag::STALE
            | flag::FAST
            | flag::NO_AUTH
            | flag::ALLOW_BUSY
            | flag::IMMEDIATE,
        reset,
    )
    .acl(&["@fast", "@connection"])
    .doc("connection", "6.2.0", "Resets the connection."),
];

fn ping(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    if args.len() <= 2 && !ctx.session.resp3 && ctx.session.subs.any() {
        return Ok(super::pubsub::subscribed_pong(args));
    }
    match args.len() {
        1 => Ok(Reply::Simple("PONG")),
        2 => Ok(Reply::Bulk(args[1].clone())),
        _ => Err(CommandError::WrongArity("ping".into())),
    }
}

fn echo(_: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    Ok(Reply::Bulk(args[1].clone()))
}

fn auth(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let (user, pass) = match args.len() {
        2 => {
            if ctx.shared.acl.default_user().rules().nopass {
                return Err(CommandError::err(
                    "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                ));
            }
            (&b"default"[..], &args[1])
        }
        3 => (&args[1][..], &args[2]),
        _ => return Err(CommandError::Syntax),
    };
    super::acl::authenticate(ctx, &args[0], user, pass)?;
    Ok(Reply::OK)
}

fn hello(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut proto = None;
    let mut i = 1;
    if let Some(v) = args.get(1) {
        let v = int_arg(v)
            .map_err(|_| CommandError::err("Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&v) {
            return Err(CommandError::raw("NOPROTO unsupported protocol version"));
        }
        proto = Some(v);
        i = 2;
    }
    let mut name = None;
    while i < args.len() {
        let more = args.len() - i - 1;
        if is(&args[i], "auth") && more >= 2 {
            super::acl::authenticate(ctx, &args[0], &args[i + 1], &args[i + 2])?;
            i += 3;
        } else if is(&args[i], "setname") && more >= 1 {
            super::server::validate_client_name(&args[i + 1])?;
            name = Some(args[i + 1].clone());
            i += 2;
        } else {
            return Err(CommandError::err(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&args[i])
            )));
        }
    }
    if !ctx.session.authenticated {
        return Err(CommandError::raw(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        ));
    }
    if let Some(name) = name {
        *ctx.session.info.name.lock() = (!name.is_empty()).then_some(name);
    }
    if let Some(p) = proto {
        ctx.session.resp3 = p == 3;
        ctx.session.info.resp.store(p as u8, Ordering::Relaxed);
    }
    let proto = if ctx.session.resp3 { 3 } else { 2 };
    Ok(Reply::Map(vec![
        (Reply::bulk_str("server"), Reply::bulk_str("redis")),
        (Reply::bulk_str("version"), Reply::bulk_str(REDIS_VERSION)),
        (Reply::bulk_str("proto"), Reply::Int(proto)),
        (
            Reply::bulk_str("id"),
            Reply::Int(ctx.session.info.id as i64),
        ),
        (Reply::bulk_str("mode"), Reply::bulk_str("standalone")),
        (Reply::bulk_str("role"), Reply::bulk_str("master")),
        (Reply::bulk_str("modules"), Reply::Array(Vec::new())),
    ]))
}

fn select(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let index = super::keys::db_index(ctx, &args[1])?;
    ctx.session.select(index);
    Ok(Reply::OK)
}

fn quit(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    ctx.session.close_after_reply = true;
    Ok(Reply::OK)
}

fn reset(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    super::transaction::discard_state(ctx);
    super::pubsub::leave_all(ctx.shared, ctx.session);
    super::client::tracking_off(ctx);
    ctx.session.select(0);
    ctx.session.resp3 = false;
    ctx.session.info.resp.store(2, Ordering::Relaxed);
    *ctx.session.info.name.lock() = None;
    ctx.session.set_user(ctx.shared.acl.default_user());
    ctx.session.authenticated = ctx.shared.acl.default_needs_no_auth();
    // CLIENT REPLY OFF and a pending SKIP end (a SKIP before RESET still
    // skips RESET's own reply, as in Redis).
    super::monitor::leave(ctx.shared, ctx.session);
    ctx.session.reply_off = false;
    ctx.session.reply_skip_next = false;
    Ok(Reply::Status(Bytes::from_static(b"RESET")))
}
