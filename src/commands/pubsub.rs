//! Pub/sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE,
//! SSUBSCRIBE, SUNSUBSCRIBE, PUBLISH, SPUBLISH and PUBSUB's introspection.
//!
//! The registry and delivery are `crate::pubsub`; a (un)subscription's
//! confirmations are push frames (RESP2 arrays) the handler returns as its
//! reply, one per channel. A PUBLISH from a client sends at once; from a
//! transaction or a script its messages wait in the session until the whole
//! EXEC or EVAL has run ([`flush_pending`]), then leave in order.

use bytes::Bytes;

use super::{container, flag, CallMode, CommandResult, CommandSpec, Ctx, KeySpec};
use crate::error::CommandError;
use crate::pubsub::{Delivery, Kind, Subscriber};
use crate::reply::Reply;
use crate::server::Shared;
use crate::session::Session;

const SUB: u32 = flag::PUBSUB | flag::NOSCRIPT | flag::LOADING | flag::STALE;
const PUB: u32 = flag::PUBSUB | flag::LOADING | flag::STALE | flag::FAST;
const INTRO: u32 = flag::PUBSUB | flag::LOADING | flag::STALE;
const SHARD_CHANNELS: &[KeySpec] = &[KeySpec::range(1, -1, 1, &["not_key"])];
const SHARD_CHANNEL: &[KeySpec] = &[KeySpec::one(1, &["not_key"])];

/// The pub/sub family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("subscribe", -2, SUB, subscribe)
        .acl(&["@pubsub", "@slow"])
        .doc(
            "pubsub",
            "2.0.0",
            "Listens for messages published to channels.",
        ),
    CommandSpec::new("unsubscribe", -1, SUB, unsubscribe)
        .acl(&["@pubsub", "@slow"])
        .doc(
            "pubsub",
            "2.0.0",
            "Stops listening to messages posted to channels.",
        ),
    CommandSpec::new("psubscribe", -2, SUB, psubscribe)
        .acl(&["@pubsub", "@slow"])
        .doc(
            "pubsub",
            "2.0.0",
            "Listens for messages published to channels that match one or more patterns.",
        ),
    CommandSpec::new("punsubscribe", -1, SUB, punsubscribe)
        .acl(&["@pubsub", "@slow"])
        .doc(
            "pubsub",
            "2.0.0",
            "Stops listening to messages published to channels that match one or more patterns.",
        ),
    CommandSpec::new("ssubscribe", -2, SUB, ssubscribe)
        .keys(1, -1, 1)
        .key_specs(SHARD_CHANNELS)
        .acl(&["@pubsub", "@slow"])
        .doc(
            "pubsub",
            "7.0.0",
            "Listens for messages published to shard channels.",
        ),
    CommandSpec::new("sunsubscribe", -1, SUB, sunsubscribe)
        .keys(1, -1, 1)
        .key_specs(SHARD_CHANNELS)
        .acl(&["@pubsub", "@slow"])
        .doc(
            "pubsub",
            "7.0.0",
            "Stops listening to messages posted to shard channels.",
        ),
    CommandSpec::new("publish", 3, PUB, publish)
        .acl(&["@pubsub", "@fast"])
        .doc("pubsub", "2.0.0", "Posts a message to a channel."),
    CommandSpec::new("spublish", 3, PUB, spublish)
        .keys(1, 1, 1)
        .key_specs(SHARD_CHANNEL)
        .acl(&["@pubsub", "@fast"])
        .doc("pubsub", "7.0.0", "Post a message to a shard channel"),
    CommandSpec::new("pubsub", -2, 0, container)
        .acl(&["@slow"])
        .doc("pubsub", "2.8.0", "A container for Pub/Sub commands.")
        .with_subcommands(&[
            CommandSpec::new("channels", -2, INTRO, channels)
                .acl(&["@pubsub", "@slow"])
                .doc("pubsub", "2.8.0", "Returns the active channels."),
            CommandSpec::new("help", 2, flag::LOADING | flag::STALE, help)
                .acl(&["@slow"])
                .doc(
                    "pubsub",
                    "6.2.0",
                    "Returns helpful text about the different subcommands.",
                ),
            CommandSpec::new("numpat", 2, INTRO, numpat)
                .acl(&["@pubsub", "@slow"])
                .doc(
                    "pubsub",
                    "2.8.0",
                    "Returns a count of unique pattern subscriptions.",
                ),
            CommandSpec::new("numsub", -2, INTRO, numsub)
                .acl(&["@pubsub", "@slow"])
                .doc(
                    "pubsub",
                    "2.8.0",
                    "Returns a count of subscribers to channels.",
                ),
            CommandSpec::new("shardchannels", -2, INTRO, shardchannels)
                .acl(&["@pubsub", "@slow"])
                .doc("pubsub", "7.0.0", "Returns the active shard channels."),
            CommandSpec::new("shardnumsub", -2, INTRO, shardnumsub)
                .acl(&["@pubsub", "@slow"])
                .doc(
                    "pubsub",
                    "7.0.0",
                    "Returns the count of subscribers of shard channels.",
                ),
        ]),
];

/// The confirmation frame names of a kind: (subscribe, unsubscribe).
fn frame_names(kind: Kind) -> (&'static [u8], &'static [u8]) {
    match kind {
        Kind::Channel => (b"subscribe", b"unsubscribe"),
        Kind::Pattern => (b"psubscribe", b"punsubscribe"),
        Kind::Shard => (b"ssubscribe", b"sunsubscribe"),
    }
}

/// The count a confirmation carries: channels and patterns together, shard
/// channels on their own, as Redis counts them.
fn confirm_count(session: &Session, kind: Kind) -> i64 {
    let n = match kind {
        Kind::Shard => session.subs.count(Kind::Shard),
        _ => session.subs.plain(),
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn confirmation(name: &'static [u8], channel: Reply, count: i64) -> Reply {
    Reply::Push(vec![
        Reply::Bulk(Bytes::from_static(name)),
        channel,
        Reply::Int(count),
    ])
}

fn subscribe_to(ctx: &mut Ctx<'_>, kind: Kind, names: &[Bytes]) -> CommandResult {
    let mut frames = Vec::with_capacity(names.len());
    for name in names {
        let sub = Subscriber {
            info: ctx.session.info.clone(),
        };
        let name = Bytes::copy_from_slice(name);
        ctx.shared
            .pubsub
            .subscribe(&mut ctx.session.subs, kind, &name, sub);
        let count = confirm_count(ctx.session, kind);
        frames.push(confirmation(frame_names(kind).0, Reply::Bulk(name), count));
    }
    Ok(Reply::Frames(frames))
}

fn unsubscribe_from(ctx: &mut Ctx<'_>, kind: Kind, names: &[Bytes]) -> CommandResult {
    let names = if names.is_empty() {
        ctx.session.subs.names(kind)
    } else {
        names.iter().map(|n| Bytes::copy_from_slice(n)).collect()
    };
    let info = ctx.session.info.clone();
    let mut frames = Vec::with_capacity(names.len().max(1));
    for name in names {
        ctx.shared
            .pubsub
            .unsubscribe(&mut ctx.session.subs, &info, kind, &name);
        let count = confirm_count(ctx.session, kind);
        frames.push(confirmation(frame_names(kind).1, Reply::Bulk(name), count));
    }
    if frames.is_empty() {
        // Nothing to leave: one frame with a nil channel.
        let count = confirm_count(ctx.session, kind);
        frames.push(confirmation(frame_names(kind).1, Reply::Nil, count));
    }
    Ok(Reply::Frames(frames))
}

fn subscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    subscribe_to(ctx, Kind::Channel, &args[1..])
}

fn psubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    subscribe_to(ctx, Kind::Pattern, &args[1..])
}

fn ssubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    // As Redis 7.0: EXEC runs its commands as a "deny blocking" client,
    // which SUBSCRIBE and PSUBSCRIBE allow for backward compatibility (one
    // confirmation per channel inside EXEC's array, redis-server's own
    // shape) but SSUBSCRIBE refuses.
    if ctx.mode == CallMode::Transaction {
        return Err(CommandError::err(
            "SSUBSCRIBE isn't allowed for a DENY BLOCKING client",
        ));
    }
    subscribe_to(ctx, Kind::Shard, &args[1..])
}

fn unsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    unsubscribe_from(ctx, Kind::Channel, &args[1..])
}

fn punsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    unsubscribe_from(ctx, Kind::Pattern, &args[1..])
}

fn sunsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    unsubscribe_from(ctx, Kind::Shard, &args[1..])
}

fn publish_on(ctx: &mut Ctx<'_>, kind: Kind, args: &[Bytes]) -> CommandResult {
    let (channel, message) = (&args[1], &args[2]);
    if ctx.mode != CallMode::Client {
        // Sent when the transaction or script ends.
        let deliveries = ctx.shared.pubsub.deliveries(kind, channel, message);
        let receivers = i64::try_from(deliveries.len()).unwrap_or(i64::MAX);
        deliver(ctx, deliveries);
        return Ok(Reply::Int(receivers));
    }
    // Sent at once, each subscriber's message a reference to one shared frame.
    let limit = ctx.shared.config.read().output_limits.pubsub;
    let me = ctx.session.info.id;
    let session = &mut *ctx.session;
    let (now, held, others, deferred) = (
        ctx.now,
        &mut session.held_pushes,
        &mut session.delivered_to_others,
        &mut session.deferred_pushes,
    );
    let mut receivers = 0i64;
    ctx.shared
        .pubsub
        .publish(kind, channel, message, |to, frame, size| {
            receivers = receivers.saturating_add(1);
            if to.info.id == me {
                // A RESP3 client publishing to itself gets the message before
                // PUBLISH's reply, as from Redis.
                held.push(frame.clone());
            } else {
                // A woken subscriber's task writes it: the batch lets it.
                *others |= crate::pubsub::send_deferred(to, frame, size, &limit, now, deferred);
            }
        });
    Ok(Reply::Int(receivers))
}

/// Sends what a command published: at once from a client's own command, when
/// the transaction or script ends from inside one.
fn deliver(ctx: &mut Ctx<'_>, deliveries: Vec<Delivery>) {
    if deliveries.is_empty() {
        return;
    }
    if ctx.mode == CallMode::Client {
        let limit = ctx.shared.config.read().output_limits.pubsub;
        let me = ctx.session.info.id;
        for d in deliveries {
            match d.into_own(me) {
                // A RESP3 client publishing to itself gets the message before
                // its command's reply, as from Redis.
                Ok(frame) => ctx.session.held_pushes.push(frame),
                Err(d) => {
                    d.send(&limit, ctx.now);
                    ctx.session.delivered_to_others = true;
                }
            }
        }
    } else {
        // Sent when the transaction or script ends; counted against each
        // subscriber's output limit now, so a script that publishes without
        // end holds at most the limit for each.
        let limit = ctx.shared.config.read().output_limits.pubsub;
        let now = ctx.now;
        ctx.session
            .pending_messages
            .extend(deliveries.into_iter().filter_map(|d| d.hold(&limit, now)));
    }
}

/// The deliveries of keyspace event `name` on `key` of database `db`.
fn event_deliveries(shared: &Shared, name: &str, db: usize, key: &[u8]) -> Vec<Delivery> {
    let mut out = Vec::new();
    for (channel, message) in shared.keyspace.notifier().channels(name, db, key) {
        out.extend(shared.pubsub.deliveries(Kind::Channel, &channel, &message));
    }
    out
}

/// The deliveries of an event the keyspace logged: on the keyspace channels
/// if its class is (still) on, then the loss notice of the holder it took a
/// lock from, if any (`__lock_lost__:<owner>`).
fn logged_deliveries(shared: &Shared, event: &crate::notify::Event) -> Vec<Delivery> {
    let mut out = if shared.keyspace.notifier().wants(event.class) {
        event_deliveries(shared, event.name, event.db, &event.key)
    } else {
        Vec::new()
    };
    if let Some(lost) = &event.lost {
        let (channel, message) =
            crate::notify::loss_message(lost, event.name, event.db, &event.key);
        out.extend(shared.pubsub.deliveries(Kind::Channel, &channel, &message));
    }
    out
}

impl Ctx<'_> {
    /// Raises keyspace event `name` of class `class` (`crate::notify`) on
    /// `key` of this client's database, as Redis's `notifyKeyspaceEvent`:
    /// published on `__keyspace@<db>__:<key>` and `__keyevent@<db>__:<name>`
    /// as `notify-keyspace-events` asks. Events the keyspace logged during
    /// this command (a key it found expired) go first.
    pub fn notify(&mut self, class: u32, name: &'static str, key: &[u8]) {
        self.notify_in(self.session.db, class, name, key);
    }

    /// [`Ctx::notify`] for a key of database `db` (MOVE's and COPY's
    /// destination).
    pub fn notify_in(&mut self, db: usize, class: u32, name: &'static str, key: &[u8]) {
        if !self.shared.keyspace.notifier().wants(class) {
            return;
        }
        self.publish_logged();
        let deliveries = event_deliveries(self.shared, name, db, key);
        deliver(self, deliveries);
    }

    /// Publishes the events the keyspace has logged (keys found expired, lock
    /// leases run out) from this command's context.
    #[inline]
    pub fn publish_logged(&mut self) {
        if self.shared.keyspace.notifier().any_logged() {
            self.publish_logged_slow();
        }
    }

    #[inline(never)]
    fn publish_logged_slow(&mut self) {
        for event in self.shared.keyspace.notifier().take_logged() {
            let deliveries = logged_deliveries(self.shared, &event);
            deliver(self, deliveries);
        }
    }
}

/// Queues the events the keyspace has logged (what serving blocked clients
/// popped at the end of an EXEC or a script) behind the transaction's or
/// script's own, to be sent when it ends.
pub fn queue_logged(shared: &Shared, session: &mut Session) {
    let logged = shared.keyspace.notifier().take_logged();
    if logged.is_empty() {
        return;
    }
    let limit = shared.config.read().output_limits.pubsub;
    let now = shared.clock.now_ms();
    for event in logged {
        let deliveries = logged_deliveries(shared, &event);
        session
            .pending_messages
            .extend(deliveries.into_iter().filter_map(|d| d.hold(&limit, now)));
    }
}

/// Publishes the events the keyspace has logged from outside any command (the
/// expiry task, a client's clean-up); one relaxed load when there are none.
#[inline]
pub fn publish_logged(shared: &Shared) {
    if shared.keyspace.notifier().any_logged() {
        publish_logged_slow(shared);
    }
}

#[inline(never)]
fn publish_logged_slow(shared: &Shared) {
    let logged = shared.keyspace.notifier().take_logged();
    if logged.is_empty() {
        return;
    }
    let limit = shared.config.read().output_limits.pubsub;
    let now = shared.clock.now_ms();
    for event in logged {
        for d in logged_deliveries(shared, &event) {
            d.send(&limit, now);
        }
    }
}

fn publish(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    publish_on(ctx, Kind::Channel, args)
}

fn spublish(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    publish_on(ctx, Kind::Shard, args)
}

/// Sends the messages a transaction or script published, in order, once it has
/// ended.
pub fn flush_pending(session: &mut Session) {
    if session.pending_messages.is_empty() {
        return;
    }
    for d in session.pending_messages.drain(..) {
        d.send_held();
    }
    session.delivered_to_others = true;
}

/// Leaves every subscription without confirmations (RESET).
pub fn leave_all(shared: &Shared, session: &mut Session) {
    let info = session.info.clone();
    shared.pubsub.leave(&mut session.subs, &info);
}

/// The optional pattern of CHANNELS / SHARDCHANNELS; more arguments are
/// Redis's subcommand syntax error.
fn pattern_arg(args: &[Bytes]) -> Result<Option<&[u8]>, CommandError> {
    match args {
        [_, _] => Ok(None),
        [_, _, p] => Ok(Some(p)),
        [_, sub, ..] => Err(CommandError::subcommand_syntax("pubsub", sub)),
        _ => Ok(None),
    }
}

fn list_channels(ctx: &mut Ctx<'_>, kind: Kind, args: &[Bytes]) -> CommandResult {
    let pattern = pattern_arg(args)?;
    Ok(Reply::Array(
        ctx.shared
            .pubsub
            .channels(kind, pattern)
            .into_iter()
            .map(Reply::Bulk)
            .collect(),
    ))
}

fn count_listeners(ctx: &mut Ctx<'_>, kind: Kind, args: &[Bytes]) -> CommandResult {
    let mut out = Vec::with_capacity(args.len().saturating_sub(2).saturating_mul(2));
    for name in &args[2..] {
        let n = ctx.shared.pubsub.listeners(kind, name);
        out.push(Reply::Bulk(Bytes::copy_from_slice(name)));
        out.push(Reply::Int(i64::try_from(n).unwrap_or(i64::MAX)));
    }
    Ok(Reply::Array(out))
}

fn channels(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    list_channels(ctx, Kind::Channel, args)
}

fn shardchannels(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    list_channels(ctx, Kind::Shard, args)
}

fn numsub(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    count_listeners(ctx, Kind::Channel, args)
}

fn shardnumsub(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    count_listeners(ctx, Kind::Shard, args)
}

fn numpat(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    let n = ctx.shared.pubsub.count(Kind::Pattern);
    Ok(Reply::Int(i64::try_from(n).unwrap_or(i64::MAX)))
}

fn help(_: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(super::help_reply(
        "PUBSUB",
        &[
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
        ],
    ))
}

/// Commands a RESP2 client may run while subscribed.
pub fn allowed_while_subscribed(name: &str) -> bool {
    matches!(
        name,
        "subscribe"
            | "unsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "ssubscribe"
            | "sunsubscribe"
            | "ping"
            | "quit"
            | "reset"
    )
}

/// PING's reply while a RESP2 client is subscribed: a `pong` message.
pub fn subscribed_pong(args: &[Bytes]) -> Reply {
    let payload = args
        .get(1)
        .map_or_else(Bytes::new, |a| Bytes::copy_from_slice(a));
    Reply::Push(vec![
        Reply::Bulk(Bytes::from_static(b"pong")),
        Reply::Bulk(payload),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pubsub_commands_ping_quit_and_reset_run_while_subscribed() {
        for name in ["subscribe", "sunsubscribe", "ping", "quit", "reset"] {
            assert!(allowed_while_subscribed(name));
        }
        for name in ["get", "publish", "multi", "hello"] {
            assert!(!allowed_while_subscribed(name));
        }
    }
}
