//! COMMAND (COUNT, INFO, DOCS, LIST, GETKEYS, HELP) generated from the table, and
//! CLUSTER, which answers as a Redis with cluster support disabled.

use bytes::Bytes;

use super::CommandResult;
use super::{flag, Command, CommandSpec, Ctx};
use crate::error::CommandError;
use crate::reply::Reply;

const INTROSPECT: u32 = flag::LOADING | flag::STALE;

/// COMMAND and CLUSTER rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("command", -1, INTROSPECT, command)
        .doc(
            "server",
            "2.8.13",
            "Returns detailed information about all commands.",
        )
        .with_subcommands(&[
            CommandSpec::new("count", 2, INTROSPECT, count).doc(
                "server",
                "2.8.13",
                "Returns a count of commands.",
            ),
            CommandSpec::new("info", -2, INTROSPECT, info).doc(
                "server",
                "2.8.13",
                "Returns information about one, multiple or all commands.",
            ),
            CommandSpec::new("docs", -2, INTROSPECT, docs).doc(
                "server",
                "7.0.0",
                "Returns documentary information about one, multiple or all commands.",
            ),
            CommandSpec::new("list", -2, INTROSPECT, list).doc(
                "server",
                "7.0.0",
                "Returns a list of command names.",
            ),
            CommandSpec::new("getkeys", -4, INTROSPECT, getkeys).doc(
                "server",
                "2.8.13",
                "Extracts the key names from an arbitrary command.",
            ),
            CommandSpec::new("help", 2, INTROSPECT, help).doc(
                "server",
                "5.0.0",
                "Returns helpful text about the different subcommands.",
            ),
        ]),
    CommandSpec::new("cluster", -2, 0, cluster).doc(
        "cluster",
        "3.0.0",
        "A container for Redis Cluster commands.",
    ),
];

fn cluster(_: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Err(CommandError::err(
        "This instance has cluster support disabled",
    ))
}

/// ACL categories derived from flags and group, as COMMAND INFO lists them.
fn categories(spec: &CommandSpec) -> Vec<Reply> {
    let mut cats = Vec::new();
    if spec.has(flag::WRITE) {
        cats.push("@write");
    }
    if spec.has(flag::READONLY) {
        cats.push("@read");
    }
    cats.push(match spec.group {
        "string" => "@string",
        "generic" => "@keyspace",
        "connection" => "@connection",
        "transactions" => "@transaction",
        "lock" => "@lock",
        _ => "@admin",
    });
    cats.push(if spec.has(flag::FAST) {
        "@fast"
    } else {
        "@slow"
    });
    if spec.has(flag::BLOCKING) {
        cats.push("@blocking");
    }
    if spec.has(flag::ADMIN) && spec.group != "server" {
        cats.push("@admin");
    }
    cats.into_iter().map(Reply::Simple).collect()
}

/// One COMMAND INFO entry: `[name, arity, flags, first, last, step, categories,
/// tips, key specs, subcommands]`.
fn entry(ctx: &Ctx<'_>, cmd: &Command) -> Reply {
    let spec = cmd.spec;
    let flags = flag::NAMES
        .iter()
        .filter(|(bit, _)| spec.has(*bit))
        .map(|(_, name)| Reply::Simple(name))
        .collect();
    let prefix = format!("{}|", cmd.full_name);
    let subs = ctx
        .shared
        .commands
        .all()
        .iter()
        .filter(|c| c.full_name.starts_with(&prefix))
        .map(|c| entry(ctx, c))
        .collect();
    Reply::Array(vec![
        Reply::bulk_str(&cmd.full_name),
        Reply::Int(i64::from(spec.arity)),
        Reply::Set(flags),
        Reply::Int(i64::from(spec.first_key)),
        Reply::Int(i64::from(spec.last_key)),
        Reply::Int(i64::from(spec.step)),
        Reply::Set(categories(spec)),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(subs),
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

fn doc(ctx: &Ctx<'_>, cmd: &Command) -> Reply {
    let spec = cmd.spec;
    let mut fields = vec![
        (Reply::bulk_str("summary"), Reply::bulk_str(spec.summary)),
        (Reply::bulk_str("since"), Reply::bulk_str(spec.since)),
        (Reply::bulk_str("group"), Reply::bulk_str(spec.group)),
    ];
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

fn getkeys(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let inner = &args[2..];
    let cmd = ctx.shared.commands.resolve(inner).map_err(|e| match e {
        CommandError::WrongArity(_) => {
            CommandError::err("Invalid number of arguments specified for command")
        }
        _ => CommandError::err("Invalid command specified"),
    })?;
    let keys = cmd.spec.key_args(inner);
    if keys.is_empty() {
        return Err(CommandError::err("The command has no key arguments"));
    }
    Ok(Reply::Array(
        keys.into_iter().map(|k| Reply::Bulk(k.clone())).collect(),
    ))
}

fn help(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(super::client::help_lines(ctx, "command"))
}
