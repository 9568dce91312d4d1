//! COMMAND (COUNT, INFO, DOCS, LIST, GETKEYS, HELP) generated from the table, and
//! CLUSTER, whose subcommands answer as a Redis with cluster support disabled.

use bytes::Bytes;

use super::CommandResult;
use super::{container, flag, BeginSearch, Command, CommandSpec, Ctx, FindKeys, KeyRef, KeySpec};
use crate::error::CommandError;
use crate::reply::Reply;

const INTROSPECT: u32 = flag::LOADING | flag::STALE;

/// COMMAND and CLUSTER rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("command", -1, INTROSPECT, command)
        .acl(&["@slow", "@connection"])
        .tips(&["nondeterministic_output_order"])
        .doc(
            "server",
            "2.8.13",
            "Returns detailed information about all commands.",
        )
        .with_subcommands(&[
            CommandSpec::new("count", 2, INTROSPECT, count)
                .acl(&["@slow", "@connection"])
                .doc("server", "2.8.13", "Returns a count of commands."),
            CommandSpec::new("info", -2, INTROSPECT, info)
                .acl(&["@slow", "@connection"])
                .tips(&["nondeterministic_output_order"])
                .doc(
                    "server",
                    "2.8.13",
                    "Returns information about one, multiple or all commands.",
                ),
            CommandSpec::new("docs", -2, INTROSPECT, docs)
                .acl(&["@slow", "@connection"])
                .tips(&["nondeterministic_output_order"])
                .doc(
                    "server",
                    "7.0.0",
                    "Returns documentary information about one, multiple or all commands.",
                ),
            CommandSpec::new("list", -2, INTROSPECT, list)
                .acl(&["@slow", "@connection"])
                .tips(&["nondeterministic_output_order"])
                .doc("server", "7.0.0", "Returns a list of command names."),
            CommandSpec::new("getkeys", -4, INTROSPECT, getkeys)
                .acl(&["@slow", "@connection"])
                .doc(
                    "server",
                    "2.8.13",
                    "Extracts the key names from an arbitrary command.",
                ),
            CommandSpec::new("getkeysandflags", -4, INTROSPECT, getkeysandflags)
                .acl(&["@slow", "@connection"])
                .doc(
                    "server",
                    "7.0.0",
                    "Extracts the key names and access flags for an arbitrary command.",
                ),
            CommandSpec::new("help", 2, INTROSPECT, help)
                .acl(&["@slow", "@connection"])
                .doc(
                    "server",
                    "5.0.0",
                    "Returns helpful text about the different subcommands.",
                ),
        ]),
    // Every subcommand answers as a Redis with cluster support disabled, and
    // is described as Redis describes it.
    CommandSpec::new("cluster", -2, 0, container)
        .acl(&["@slow"])
        .doc(
            "cluster",
            "3.0.0",
            "A container for Redis Cluster commands.",
        )
        .with_subcommands(&[
            cluster_sub(
                "addslots",
                -3,
                flag::ADMIN | flag::STALE | flag::NO_ASYNC_LOADING,
                &["@admin", "@slow", "@dangerous"],
                "3.0.0",
                "Assigns new hash slots to a node.",
            ),
            cluster_sub(
                "addslotsrange",
                -4,
                flag::ADMIN | flag::STALE | flag::NO_ASYNC_LOADING,
                &["@admin", "@slow", "@dangerous"],
                "7.0.0",
                "Assigns new hash slot ranges to a node.",
            ),
            cluster_sub(
                "bumpepoch",
                2,
                flag::ADMIN | flag::STALE | flag::NO_ASYNC_LOADING,
                &["@admin", "@slow", "@dangerous"],
                "3.0.0",
                "Advances the cluster config epoch.",
            )
            .tips(&["nondeterministic_output"]),
            cluster_sub(
                "count-failure-reports",
                3,
                flag::ADMIN | flag::STALE,
                &["@admin", "@slow", "@dangerous"],
                "3.0.0",
                "Returns the number of active failure reports active for a node.",
            )
            .tips(&["nondeterministic_output"]),
            cluster_sub(
                "countkeysinslot",
                3,
                flag::STALE,
                &["@slow"],
                "3.0.0",
                "Returns the number of keys in a hash slot.",
            ),
            cluster_sub(
                "delslots",
                -3,
                flag::ADMIN | flag::STALE | flag::NO_ASYNC_LOADING,
                &["@admin", "@slow", "@dangerous"],
                "3.0.0",
                "Sets hash slots as unbound for a node.",
            ),
            cluster_sub(
                "delslotsrange",
                -4,
                flag::ADMIN | flag::STALE | flag::NO_ASYNC_LOADING,
                &["@admin", "@slow", "@dangerous"],
                "7.0.0",
                "Sets hash slot ranges as unbound for a node.",
            ),
            cluster_sub(
                "failover",
                -2,
                flag::ADMIN | flag::STALE | flag::NO_ASYNC_LOADING,
                &["@admin", "@slow", "@dangerous"],
                "3.0.0",
                "Forces a replica to perform a manual failover of its master.",
            ),
            cluster_sub(
                "flushslots",
                2,
                flag::ADMIN | flag::STALE | flag::NO_ASYNC_LOADING,
                &["@admin", "@slow", "@dangerous"],
                "3.0.0",
                "Deletes all slots information from a node.",
            ),
            cluster_sub(
                "forget",
                3,
                flag::ADMIN | flag::STALE | flag::NO_ASYNC_LOADING,
                &["@admin", "@slow", "@dangerous"],
                "3.0.0",
                "Removes a node from the nodes table.",
            ),
            cluster_sub(
                "getkeysinslot",
                4,
                flag::STALE,
                &["@slow"],
                "3.0.0",
                "Returns the key names in a hash slot.",
            )
            .tips(&["nondeterministic_output"]),
            cluster_sub(
                "help",
                2,
                flag::LOADING | flag::STALE,
                &["@slow"],
                "5.0.0",
                "Returns helpful text about the different subcommands.",
            ),
            cluster_sub(
                "info",
                2,
                flag::STALE,
                &["@slow"],
                "3.0.0",
                "Returns information about the state of a node.",
            )
            .tips(&["nondeterministic_output"]),
            cluster_sub(
                "keyslot",
                3,
                flag::STALE,
                &["@slow"],
                "3.0.0",
                "Returns the hash slot for a key.",
            ),
            cluster_sub(
                "links",
                2,
                flag::STALE,
                &["@slow"],
                "7.0.0",
                "Returns a list of all TCP links to and from peer nodes.",
            )
            .tips(&["nondeterministic_output"]),
            cluster_sub(
                "meet",
                -4,
                flag::ADMIN | flag::STALE | flag::NO_ASYNC_LOADING,
                &["@admin", "@slow", "@dangerous"],
                "3.0.0",
                "Forces a node to handshake with another node.",
            ),
            cluster_sub(
                "myid",
                2,
                flag::STALE,
                &["@slow"],
                "3.0.0",
                "Returns the ID of a node.",
            ),
            cluster_sub(
                "nodes",
                2,
                flag::STALE,
                &["@slow"],
                "3.0.0",
                "Returns the cluster configuration for a node.",
            )
            .tips(&["nondeterministic_output"]),
            cluster_sub(
                "replicas",
                3,
                flag::ADMIN | flag::STALE,
                &["@admin", "@slow", "@dangerous"],
                "5.0.0",
                "Lists the replica nodes of a master node.",
            )
            .tips(&["nondeterministic_output"]),
            cluster_sub(
                "replicate",
                3,
                flag::ADMIN | flag::STALE | flag::NO_ASYNC_LOADING,
                &["@admin", "@slow", "@dangerous"],
                "3.0.0",
                "Configure a node as replica of a master node.",
            ),
            cluster_sub(
                "reset",
                -2,
                flag::ADMIN | flag::NOSCRIPT | flag::STALE,
                &["@admin", "@slow", "@dangerous"],
                "3.0.0",
                "Resets a node.",
            ),
            cluster_sub(
                "saveconfig",
                2,
                flag::ADMIN | flag::STALE | flag::NO_ASYNC_LOADING,
                &["@admin", "@slow", "@dangerous"],
                "3.0.0",
                "Forces a node to save the cluster configuration to disk.",
            ),
            cluster_sub(
                "set-config-epoch",
                3,
                flag::ADMIN | flag::STALE | flag::NO_ASYNC_LOADING,
                &["@admin", "@slow", "@dangerous"],
                "3.0.0",
                "Sets the configuration epoch for a new node.",
            ),
            cluster_sub(
                "setslot",
                -4,
                flag::ADMIN | flag::STALE | flag::NO_ASYNC_LOADING,
                &["@admin", "@slow", "@dangerous"],
                "3.0.0",
                "Binds a hash slot to a node.",
            ),
            cluster_sub(
                "shards",
                2,
                flag::STALE,
                &["@slow"],
                "7.0.0",
                "Returns the mapping of cluster slots to shards.",
            )
            .tips(&["nondeterministic_output"]),
            cluster_sub(
                "slaves",
                3,
                flag::ADMIN | flag::STALE,
                &["@admin", "@slow", "@dangerous"],
                "3.0.0",
                "Lists the replica nodes of a master node.",
            )
            .tips(&["nondeterministic_output"]),
            cluster_sub(
                "slots",
                2,
                flag::STALE,
                &["@slow"],
                "3.0.0",
                "Returns the mapping of cluster slots to nodes.",
            )
            .tips(&["nondeterministic_output"]),
        ]),
];

/// A CLUSTER subcommand row: every one answers as a Redis with cluster support
/// disabled, and is described as Redis describes it.
const fn cluster_sub(
    name: &'static str,
    arity: i32,
    flags: u32,
    acl: &'static [&'static str],
    since: &'static str,
    summary: &'static str,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, cluster)
        .acl(acl)
        .doc("cluster", since, summary)
}

fn cluster(_: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Err(CommandError::err(
        "This instance has cluster support disabled",
    ))
}

/// Names as RESP3 simple strings in a set (flags, ACL categories).
fn simple_set(names: impl IntoIterator<Item = &'static str>) -> Reply {
    Reply::Set(names.into_iter().map(Reply::Simple).collect())
}

/// A `{type, spec}` map of a key spec's begin search or find keys.
fn typed(kind: &str, fields: Vec<(&str, Reply)>) -> Reply {
    Reply::Map(vec![
        (Reply::bulk_str("type"), Reply::bulk_str(kind)),
        (
            Reply::bulk_str("spec"),
            Reply::Map(
                fields
                    .into_iter()
                    .map(|(k, v)| (Reply::bulk_str(k), v))
                    .collect(),
            ),
        ),
    ])
}

/// One key spec as COMMAND INFO shows it: `notes` (only when there is one),
/// `flags`, `begin_search`, `find_keys`.
fn key_spec(spec: &KeySpec) -> Reply {
    let mut fields = Vec::with_capacity(4);
    if !spec.notes.is_empty() {
        fields.push((Reply::bulk_str("notes"), Reply::bulk_str(spec.notes)));
    }
    fields.push((
        Reply::bulk_str("flags"),
        simple_set(spec.flags.iter().copied()),
    ));
    let begin = match spec.begin {
        BeginSearch::Unknown => typed("unknown", Vec::new()),
        BeginSearch::Index(i) => typed("index", vec![("index", Reply::Int(i64::from(i)))]),
        BeginSearch::Keyword { keyword, startfrom } => typed(
            "keyword",
            vec![
                ("keyword", Reply::bulk_str(keyword)),
                ("startfrom", Reply::Int(i64::from(startfrom))),
            ],
        ),
    };
    fields.push((Reply::bulk_str("begin_search"), begin));
    let find = match spec.find {
        FindKeys::Range {
            lastkey,
            keystep,
            limit,
        } => typed(
            "range",
            vec![
                ("lastkey", Reply::Int(i64::from(lastkey))),
                ("keystep", Reply::Int(i64::from(keystep))),
                ("limit", Reply::Int(i64::from(limit))),
            ],
        ),
        FindKeys::Unknown => typed("unknown", Vec::new()),
        FindKeys::Keynum {
            keynumidx,
            firstkey,
            keystep,
        } => typed(
            "keynum",
            vec![
                ("keynumidx", Reply::Int(i64::from(keynumidx))),
                ("firstkey", Reply::Int(i64::from(firstkey))),
                ("keystep", Reply::Int(i64::from(keystep))),
            ],
        ),
    };
    fields.push((Reply::bulk_str("find_keys"), find));
    Reply::Map(fields)
}

/// One COMMAND INFO entry: `[name, arity, flags, first, last, step, categories,
/// tips, key specs, subcommands]`. The subcommands are an empty set for a plain
/// command and an array for a container, as Redis 7 replies.
fn entry(ctx: &Ctx<'_>, cmd: &Command) -> Reply {
    let spec = cmd.spec;
    let mut bits = spec.flags;
    if spec.movable_keys() {
        bits |= flag::MOVABLEKEYS;
    }
    let flags = simple_set(
        flag::NAMES
            .iter()
            .filter(|(bit, _)| bits & bit != 0)
            .map(|(_, name)| *name),
    );
    let subs = if spec.subcommands.is_empty() {
        Reply::Set(Vec::new())
    } else {
        let prefix = format!("{}|", cmd.full_name);
        Reply::Array(
            ctx.shared
                .commands
                .all()
                .iter()
                .filter(|c| c.full_name.starts_with(&prefix))
                .map(|c| entry(ctx, c))
                .collect(),
        )
    };
    Reply::Array(vec![
        Reply::bulk_str(&cmd.full_name),
        Reply::Int(i64::from(spec.arity)),
        flags,
        Reply::Int(i64::from(spec.first_key)),
        Reply::Int(i64::from(spec.last_key)),
        Reply::Int(i64::from(spec.step)),
        simple_set(spec.acl.iter().copied()),
        Reply::Set(spec.tips.iter().map(|t| Reply::bulk_str(t)).collect()),
        Reply::Set(spec.key_specs.iter().map(key_spec).collect()),
        subs,
    ])
}

fn command(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    if args.len() > 1 {
        return Err(CommandError::unknown_subcommand("command", &args[1]));
    }
    Ok(Reply::Array(
        ctx.shared
            .commands
            .top_level()
            .map(|c| entry(ctx, c))
            .collect(),
    ))
}

fn count(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(Reply::Int(ctx.shared.commands.top_level().count() as i64))
}

fn info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    if args.len() == 2 {
        return command(ctx, &args[..1]);
    }
    Ok(Reply::Array(
        args[2..]
            .iter()
            .map(|name| {
                ctx.shared
                    .commands
                    .get(name)
                    .map_or(Reply::Nil, |c| entry(ctx, c))
            })
            .collect(),
    ))
}

/// A command's COMMAND DOCS entry: Redis's, as recorded, for a command
/// Redis has (with its argument list); the table's summary, since and group
/// for latchkey's own. Subcommands are those latchkey has.
fn doc(ctx: &Ctx<'_>, cmd: &Command) -> Reply {
    let spec = cmd.spec;
    let mut fields = match super::docs::recorded(&cmd.full_name) {
        Some(recorded) => recorded.clone(),
        None => vec![
            (Reply::bulk_str("summary"), Reply::bulk_str(spec.summary)),
            (Reply::bulk_str("since"), Reply::bulk_str(spec.since)),
            (Reply::bulk_str("group"), Reply::bulk_str(spec.group)),
        ],
    };
    let prefix = format!("{}|", cmd.full_name);
    let subs: Vec<(Reply, Reply)> = ctx
        .shared
        .commands
        .all()
        .iter()
        .filter(|c| c.full_name.starts_with(&prefix))
        .map(|c| (Reply::bulk_str(&c.full_name), doc(ctx, c)))
        .collect();
    if !subs.is_empty() {
        fields.push((Reply::bulk_str("subcommands"), Reply::Map(subs)));
    }
    Reply::Map(fields)
}

fn docs(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let table = &ctx.shared.commands;
    let chosen: Vec<&Command> = if args.len() == 2 {
        table.top_level().collect()
    } else {
        args[2..].iter().filter_map(|n| table.get(n)).collect()
    };
    Ok(Reply::Map(
        chosen
            .into_iter()
            .map(|c| (Reply::bulk_str(&c.full_name), doc(ctx, c)))
            .collect(),
    ))
}

fn list(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    if args.len() > 2 {
        // FILTERBY is not supported: say so in Redis's words for a bad option.
        return Err(CommandError::Syntax);
    }
    Ok(Reply::Array(
        ctx.shared
            .commands
            .all()
            .iter()
            .map(|c| Reply::bulk_str(&c.full_name))
            .collect(),
    ))
}

/// COMMAND GETKEYS and GETKEYSANDFLAGS: the command is looked up as Redis
/// does (a subcommand when it is a container), then checked for keys, then for
/// its arity, and its keys are found from its key specs.
fn find_keys<'a>(
    ctx: &Ctx<'_>,
    inner: &'a [Bytes],
) -> Result<Vec<(&'a Bytes, KeyRef)>, CommandError> {
    let cmd = ctx
        .shared
        .commands
        .lookup(inner)
        .ok_or_else(|| CommandError::err("Invalid command specified"))?;
    let spec = cmd.spec;
    if !spec.has_keys() {
        return Err(CommandError::err("The command has no key arguments"));
    }
    if !spec.arity_ok(inner.len()) {
        return Err(CommandError::err(
            "Invalid number of arguments specified for command",
        ));
    }
    let keys = spec.keys_of(inner);
    if keys.is_empty() && !spec.has(flag::NO_MANDATORY_KEYS) {
        return Err(CommandError::err("Invalid arguments specified for command"));
    }
    Ok(keys
        .into_iter()
        .filter_map(|k| inner.get(k.pos).map(|arg| (arg, k)))
        .collect())
}

fn getkeys(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let keys = find_keys(ctx, &args[2..])?;
    Ok(Reply::Array(
        keys.into_iter()
            .map(|(k, _)| Reply::Bulk(k.clone()))
            .collect(),
    ))
}

fn getkeysandflags(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let keys = find_keys(ctx, &args[2..])?;
    Ok(Reply::Array(
        keys.into_iter()
            .map(|(k, r)| {
                Reply::Array(vec![
                    Reply::Bulk(k.clone()),
                    simple_set(r.flags.iter().copied()),
                ])
            })
            .collect(),
    ))
}

fn help(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(super::client::help_lines(ctx, "command"))
}
