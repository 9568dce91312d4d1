//! The command table and the one place commands are looked up and run.
//!
//! Every command is a [`CommandSpec`]: name, arity, flags, key positions, the
//! documentation `COMMAND DOCS` shows, and its handler. Each family file
//! (`string.rs`, `keys.rs`, ...) exports its rows as `COMMANDS`; [`CommandTable`]
//! joins them. Arity errors, `NOAUTH`, `MULTI` queueing, `COMMAND`'s replies and
//! `INFO commandstats` are all derived from the table, never written per command.
//!
//! Handlers are plain functions `fn(&mut Ctx, &[Bytes]) -> CommandResult`: they
//! never touch the socket and never await; `args[0]` is the command name as sent.

pub mod acl;
pub mod args;
pub mod bitmap;
pub mod client;
pub mod command;
pub mod config;
pub mod connection;
pub mod debug;
pub mod docs;
pub mod dump;
pub mod function;
pub mod geo;
pub mod hash;
pub mod hll;
pub mod info;
pub mod keymiss;
pub mod keys;
pub mod latency;
pub mod list;
pub mod lock;
pub mod lolwut;
pub mod memory;
pub mod monitor;
pub mod object;
pub mod persist;
pub mod pubsub;
pub mod replication;
pub mod scripting;
pub mod server;
pub mod set;
pub mod slowlog;
pub mod sort;
pub mod stream;
pub mod string;
pub mod transaction;
pub mod wait;
pub mod zset;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::error::CommandError;
use crate::keyspace::Db;
use crate::reply::Reply;
use crate::server::Shared;
use crate::session::Session;

/// Command flags, as `COMMAND INFO` names them.
pub mod flag {
    /// Modifies the keyspace.
    pub const WRITE: u32 = 1 << 0;
    /// Only reads.
    pub const READONLY: u32 = 1 << 1;
    /// May grow memory use.
    pub const DENYOOM: u32 = 1 << 2;
    /// Administrative.
    pub const ADMIN: u32 = 1 << 3;
    /// Not allowed in scripts.
    pub const NOSCRIPT: u32 = 1 << 4;
    /// May block the client.
    pub const BLOCKING: u32 = 1 << 5;
    /// Allowed while loading.
    pub const LOADING: u32 = 1 << 6;
    /// Allowed on a stale replica.
    pub const STALE: u32 = 1 << 7;
    /// O(1) or O(log N).
    pub const FAST: u32 = 1 << 8;
    /// Allowed before authentication.
    pub const NO_AUTH: u32 = 1 << 9;
    /// Refused inside MULTI.
    pub const NO_MULTI: u32 = 1 << 10;
    /// Allowed while a script is running too long.
    pub const ALLOW_BUSY: u32 = 1 << 11;
    /// Implemented by a module.
    pub const MODULE: u32 = 1 << 12;
    /// A Pub/Sub command.
    pub const PUBSUB: u32 = 1 << 13;
    /// Not shown to MONITOR (EVAL, EXEC, ...).
    pub const SKIP_MONITOR: u32 = 1 << 14;
    /// Not recorded by SLOWLOG (EXEC: its commands are).
    pub const SKIP_SLOWLOG: u32 = 1 << 15;
    /// Allowed on an importing cluster slot after ASKING.
    pub const ASKING: u32 = 1 << 16;
    /// May run with no key at all although it takes keys (EVAL with 0 keys).
    pub const NO_MANDATORY_KEYS: u32 = 1 << 17;
    /// Refused while the replica loads a dataset asynchronously.
    pub const NO_ASYNC_LOADING: u32 = 1 << 18;
    /// Keys cannot be found from the first/last/step range alone. Computed from
    /// the key specs (see [`super::CommandSpec::movable_keys`]), never set on a
    /// row.
    pub const MOVABLEKEYS: u32 = 1 << 19;
    /// Runs its own locking (EXEC, EVAL): the dispatcher does not take the
    /// execution gate for it. Internal, not shown by COMMAND.
    pub const OWN_GATE: u32 = 1 << 31;
    /// Runs at once inside MULTI instead of being queued (MULTI, EXEC, DISCARD,
    /// WATCH, QUIT, RESET). Internal, not shown by COMMAND.
    pub const IMMEDIATE: u32 = 1 << 30;
    /// Never logged to the AOF as sent (LOCK.*: a lock's state is logged
    /// instead, see `persist::aof`). Internal, not shown by COMMAND.
    pub const NO_PROPAGATE: u32 = 1 << 29;
    /// Runs only where `enable-debug-command` allows it (Redis's hidden
    /// `protected` flag: DEBUG). Internal, not shown by COMMAND.
    pub const PROTECTED: u32 = 1 << 28;

    /// Flag names in the order Redis 7 lists them (its hidden flags,
    /// `may_replicate`, `protected`, `sentinel`, are not listed).
    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (MODULE, "module"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (ASKING, "asking"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (NO_ASYNC_LOADING, "no_async_loading"),
        (NO_MULTI, "no_multi"),
        (MOVABLEKEYS, "movablekeys"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// Key spec flags, as `COMMAND INFO` and `COMMAND GETKEYSANDFLAGS` name them, in
/// Redis's order.
pub const KEY_FLAG_NAMES: &[&str] = &[
    "RO",
    "RW",
    "OW",
    "RM",
    "access",
    "update",
    "insert",
    "delete",
    "not_key",
    "incomplete",
    "variable_flags",
];

/// The result every command handler returns.
pub type CommandResult = Result<Reply, CommandError>;

/// A handler: runs one command against the server.
pub type Handler = fn(&mut Ctx<'_>, &[Bytes]) -> CommandResult;

/// One row of the command table.
pub struct CommandSpec {
    /// Lower-case name (`get`); a subcommand's own name (`get` of `config`).
    pub name: &'static str,
    /// Redis arity: N means exactly N arguments with the name, -N at least N.
    pub arity: i32,
    /// Bits from [`flag`].
    pub flags: u32,
    /// Position of the first key argument, 0 for none.
    pub first_key: i32,
    /// Position of the last key, -1 for the last argument.
    pub last_key: i32,
    /// Step between keys.
    pub step: i32,
    /// Group for COMMAND DOCS (`string`, `generic`, `connection`, `server`, ...).
    pub group: &'static str,
    /// One-line summary for COMMAND DOCS.
    pub summary: &'static str,
    /// Redis version that introduced it.
    pub since: &'static str,
    /// The handler; for a container (CONFIG), unused: its subcommands run.
    pub handler: Handler,
    /// Subcommands (`CONFIG GET`, ...); empty for a plain command.
    pub subcommands: &'static [CommandSpec],
    /// ACL categories as COMMAND INFO lists them (`@write`, `@hash`, `@fast`).
    pub acl: &'static [&'static str],
    /// Command tips (`nondeterministic_output`, `request_policy:all_shards`).
    pub tips: &'static [&'static str],
    /// Key specifications, as Redis 7 describes where the keys are.
    pub key_specs: &'static [KeySpec],
    /// Finds the keys itself where the key specs cannot (their flags vary with
    /// the arguments, as SET's with GET), or when they fail (EVAL's numkeys as
    /// `atoi` reads it), as Redis's `getkeys_proc`.
    pub getkeys: Option<GetKeys>,
}

/// A row's own key finder: the keys of `args` (the command name first).
pub type GetKeys = fn(&[Bytes]) -> Vec<KeyRef>;

/// One key found in a command's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRef {
    /// Its index in the arguments (0 is the command name).
    pub pos: usize,
    /// The flags of the key spec that found it (`RW`, `access`, ...).
    pub flags: &'static [&'static str],
}

/// Where one group of keys sits in the arguments (Redis 7's key specs).
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// Flags as COMMAND INFO prints them: `RW`, `RO`, `OW`, `RM`, then `access`,
    /// `insert`, `update`, `delete`, `not_key`, `incomplete`, `variable_flags`.
    pub flags: &'static [&'static str],
    /// Where the search for the keys begins.
    pub begin: BeginSearch,
    /// How the keys are found from there.
    pub find: FindKeys,
    /// A note Redis attaches to the spec, or "".
    pub notes: &'static str,
}

/// The start of a key spec's search.
#[derive(Debug, Clone, Copy)]
pub enum BeginSearch {
    /// At a fixed argument index.
    Index(i32),
    /// After a keyword, searched from `startfrom` (negative: from the end).
    Keyword {
        /// The keyword (`STREAMS`).
        keyword: &'static str,
        /// Where to start looking.
        startfrom: i32,
    },
    /// Nowhere the arguments say (SORT's BY/GET and STORE keys): the row's own
    /// key finder finds them.
    Unknown,
}

/// How a key spec finds its keys from where the search began.
#[derive(Debug, Clone, Copy)]
pub enum FindKeys {
    /// A range: up to `lastkey` (relative; negative counts from the end), every
    /// `keystep`, `limit` dividing what is left.
    Range {
        /// The last key, relative to the first.
        lastkey: i32,
        /// Step between keys.
        keystep: i32,
        /// 0: no limit; N: 1/N of the remaining arguments.
        limit: i32,
    },
    /// A count of keys at `keynumidx`, keys from `firstkey`, every `keystep`.
    Keynum {
        /// Index of the count, relative to the beginning.
        keynumidx: i32,
        /// Index of the first key, relative to the beginning.
        firstkey: i32,
        /// Step between keys.
        keystep: i32,
    },
    /// Not described (goes with [`BeginSearch::Unknown`]).
    Unknown,
}

impl KeySpec {
    /// A spec from its parts.
    pub const fn new(
        flags: &'static [&'static str],
        begin: BeginSearch,
        find: FindKeys,
    ) -> KeySpec {
        KeySpec {
            flags,
            begin,
            find,
            notes: "",
        }
    }

    /// The same spec with Redis's note attached.
    pub const fn notes(mut self, notes: &'static str) -> KeySpec {
        self.notes = notes;
        self
    }

    fn has_flag(&self, name: &str) -> bool {
        self.flags.contains(&name)
    }

    /// Where this spec's keys start in `args`: `Ok(None)` when its keyword is
    /// absent (the spec has no keys), as Redis's key spec walk.
    fn first_key(&self, args: &[Bytes]) -> Option<usize> {
        match self.begin {
            BeginSearch::Unknown => None,
            BeginSearch::Index(i) => usize::try_from(i).ok(),
            BeginSearch::Keyword { keyword, startfrom } => {
                let argc = args.len() as i64;
                let (start, end) = if startfrom > 0 {
                    (i64::from(startfrom), argc - 1)
                } else {
                    (argc + i64::from(startfrom), 1)
                };
                let step = if start <= end { 1 } else { -1 };
                let mut i = start;
                // Every position from `start` towards `end`, `end` excluded.
                while i != end && i >= 1 && i < argc {
                    if args.get(i as usize).is_some_and(|a| is(a, keyword)) {
                        return Some(i as usize + 1);
                    }
                    i += step;
                }
                None
            }
        }
    }

    /// The keys this spec finds in `args`, or `Err` when the arguments do not
    /// fit it (a bad count, a range past the end), as Redis's key spec walk.
    fn find(&self, args: &[Bytes], keys: &mut Vec<KeyRef>) -> Result<(), ()> {
        // An unknown spec cannot be walked: the row's own key finder is used.
        if matches!(self.begin, BeginSearch::Unknown) || matches!(self.find, FindKeys::Unknown) {
            return Err(());
        }
        let argc = args.len() as i64;
        let Some(first) = self.first_key(args) else {
            return Ok(());
        };
        let mut first = first as i64;
        let (last, step) = match self.find {
            FindKeys::Range {
                lastkey,
                keystep,
                limit,
            } => {
                let last = if lastkey >= 0 {
                    first + i64::from(lastkey)
                } else if limit == 0 {
                    argc + i64::from(lastkey)
                } else {
                    first + (argc - first) / i64::from(limit) + i64::from(lastkey)
                };
                (last, keystep)
            }
            FindKeys::Keynum {
                keynumidx,
                firstkey,
                keystep,
            } => {
                let count = usize::try_from(first + i64::from(keynumidx))
                    .ok()
                    .and_then(|i| args.get(i))
                    .and_then(|a| crate::protocol::parse_i64(a))
                    .filter(|n| *n >= 0)
                    .ok_or(())?;
                first += i64::from(firstkey);
                // Redis adds the count as a C int: only its low 32 bits count.
                (first + i64::from(count as i32) - 1, keystep)
            }
            FindKeys::Unknown => return Err(()),
        };
        if last >= argc || last < first || first >= argc {
            return Err(());
        }
        let step = usize::try_from(step).ok().filter(|s| *s > 0).ok_or(())?;
        for pos in (first as usize..=last as usize).step_by(step) {
            keys.push(KeyRef {
                pos,
                flags: self.flags,
            });
        }
        if self.has_flag("incomplete") {
            return Err(());
        }
        Ok(())
    }

    /// A single key at `index`, with `flags`.
    pub const fn one(index: i32, flags: &'static [&'static str]) -> KeySpec {
        KeySpec::range(index, 0, 1, flags)
    }

    /// Keys from `index` to `lastkey` (relative; -1: the last argument), every
    /// `keystep`.
    pub const fn range(
        index: i32,
        lastkey: i32,
        keystep: i32,
        flags: &'static [&'static str],
    ) -> KeySpec {
        KeySpec {
            flags,
            begin: BeginSearch::Index(index),
            find: FindKeys::Range {
                lastkey,
                keystep,
                limit: 0,
            },
            notes: "",
        }
    }

    /// Keys the arguments do not locate (SORT's BY/GET patterns and STORE),
    /// with Redis's note saying why.
    pub const fn unknown(flags: &'static [&'static str], notes: &'static str) -> KeySpec {
        KeySpec {
            flags,
            begin: BeginSearch::Unknown,
            find: FindKeys::Unknown,
            notes,
        }
    }

    /// A count at `index`, then that many keys after it (EVAL, ZUNION, ...).
    pub const fn keynum(index: i32, flags: &'static [&'static str]) -> KeySpec {
        KeySpec {
            flags,
            begin: BeginSearch::Index(index),
            find: FindKeys::Keynum {
                keynumidx: 0,
                firstkey: 1,
                keystep: 1,
            },
            notes: "",
        }
    }
}

impl CommandSpec {
    /// A row with no keys and no subcommands; fill the rest with struct update syntax.
    pub const fn new(name: &'static str, arity: i32, flags: u32, handler: Handler) -> Self {
        CommandSpec {
            name,
            arity,
            flags,
            first_key: 0,
            last_key: 0,
            step: 0,
            group: "generic",
            summary: "",
            since: "1.0.0",
            handler,
            subcommands: &[],
            acl: &[],
            tips: &[],
            key_specs: &[],
            getkeys: None,
        }
    }

    /// Sets the row's own key finder.
    pub const fn getkeys(mut self, getkeys: GetKeys) -> Self {
        self.getkeys = Some(getkeys);
        self
    }

    /// Sets the ACL categories (`&["@write", "@hash", "@fast"]`).
    pub const fn acl(mut self, categories: &'static [&'static str]) -> Self {
        self.acl = categories;
        self
    }

    /// Sets the command tips.
    pub const fn tips(mut self, tips: &'static [&'static str]) -> Self {
        self.tips = tips;
        self
    }

    /// Sets the key specs.
    pub const fn key_specs(mut self, specs: &'static [KeySpec]) -> Self {
        self.key_specs = specs;
        self
    }

    /// Sets the key positions.
    pub const fn keys(mut self, first: i32, last: i32, step: i32) -> Self {
        self.first_key = first;
        self.last_key = last;
        self.step = step;
        self
    }

    /// Sets the documentation shown by COMMAND DOCS.
    pub const fn doc(
        mut self,
        group: &'static str,
        since: &'static str,
        summary: &'static str,
    ) -> Self {
        self.group = group;
        self.since = since;
        self.summary = summary;
        self
    }

    /// Makes this a container whose subcommands run.
    pub const fn with_subcommands(mut self, subs: &'static [CommandSpec]) -> Self {
        self.subcommands = subs;
        self
    }

    /// Whether `flag` is set.
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    pub(crate) fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// Whether the command takes keys: a key spec that is not `not_key`, or a
    /// key finder of its own (`COMMAND GETKEYS` refuses the others).
    pub fn has_keys(&self) -> bool {
        self.getkeys.is_some() || self.key_specs.iter().any(|k| !k.has_flag("not_key"))
    }

    /// Whether the first/last/step range cannot say where the keys are, which
    /// COMMAND INFO shows as the `movablekeys` flag. Redis's rule: a spec that is
    /// not an index and a range, a range with a step other than 1 or not right
    /// after the previous one, or an incomplete one.
    pub fn movable_keys(&self) -> bool {
        if let [only] = self.key_specs {
            if let (BeginSearch::Index(_), FindKeys::Range { .. }) = (only.begin, only.find) {
                return only.has_flag("incomplete");
            }
        }
        let mut prev_last = 0i64;
        let mut any_range = false;
        let mut movable = false;
        for spec in self.key_specs {
            let (
                BeginSearch::Index(index),
                FindKeys::Range {
                    lastkey, keystep, ..
                },
            ) = (spec.begin, spec.find)
            else {
                movable = true;
                continue;
            };
            if keystep != 1 || (prev_last != 0 && prev_last != i64::from(index) - 1) {
                movable = true;
                continue;
            }
            movable |= spec.has_flag("incomplete");
            any_range = true;
            let last = if lastkey >= 0 {
                i64::from(lastkey) + i64::from(index)
            } else {
                i64::from(lastkey)
            };
            // Redis compares as unsigned: a from-the-end -1 beats any index.
            prev_last = if (last as u64) > (prev_last as u64) {
                last
            } else {
                prev_last
            };
        }
        movable || (!self.key_specs.is_empty() && !any_range)
    }

    /// The keys in `args` (the command name first) with their spec's flags, as
    /// `COMMAND GETKEYS` finds them: by the key specs when their flags are
    /// fixed, else (or when the arguments do not fit them) by the row's own key
    /// finder; none when neither finds any.
    pub fn keys_of(&self, args: &[Bytes]) -> Vec<KeyRef> {
        let has_spec = self.key_specs.iter().any(|k| !k.has_flag("not_key"));
        let variable = self.key_specs.iter().any(|k| k.has_flag("variable_flags"));
        if has_spec && !variable {
            let mut keys = Vec::new();
            let fits = self
                .key_specs
                .iter()
                .filter(|k| !k.has_flag("not_key"))
                .try_for_each(|k| k.find(args, &mut keys));
            if fits.is_ok() {
                return keys;
            }
        }
        self.getkeys.map(|f| f(args)).unwrap_or_default()
    }
}

/// Calls and time spent for `INFO commandstats`.
#[derive(Debug, Default)]
pub struct CommandStats {
    /// Times called.
    pub calls: AtomicU64,
    /// Microseconds spent.
    pub usec: AtomicU64,
    /// Calls refused before running (arity, auth).
    pub rejected_calls: AtomicU64,
    /// Calls that ran and replied with an error.
    pub failed_calls: AtomicU64,
    /// Run times for LATENCY HISTOGRAM and INFO latencystats, from the
    /// first call tracked (`latency-tracking`).
    pub latency: parking_lot::Mutex<Option<Box<hdrhistogram::Histogram<u64>>>>,
}

/// A command found in the table: its row, its full name (`config|get`) and stats.
pub struct Command {
    /// Position in the table.
    pub index: usize,
    /// The row.
    pub spec: &'static CommandSpec,
    /// `name` or `container|name`.
    pub full_name: String,
    /// Counters.
    pub stats: CommandStats,
    /// ACL category bits of the row (`crate::acl::rules::CATEGORIES`).
    pub categories: u64,
}

/// All commands, looked up by lower-case name.
pub struct CommandTable {
    commands: Vec<Command>,
    /// Lower-case name → index. The names are ours, not clients', so a fast
    /// unkeyed hash is safe here.
    by_name: HashMap<Vec<u8>, usize, rustc_hash::FxBuildHasher>,
}

/// Every family's rows.
fn families() -> impl Iterator<Item = &'static CommandSpec> {
    [
        connection::COMMANDS,
        acl::COMMANDS,
        server::COMMANDS,
        persist::COMMANDS,
        replication::COMMANDS,
        keys::COMMANDS,
        dump::COMMANDS,
        string::COMMANDS,
        transaction::COMMANDS,
        lock::COMMANDS,
        client::COMMANDS,
        config::COMMANDS,
        info::COMMANDS,
        command::COMMANDS,
        scripting::COMMANDS,
        function::COMMANDS,
        list::COMMANDS,
        zset::COMMANDS,
        object::COMMANDS,
        geo::COMMANDS,
        set::COMMANDS,
        hash::COMMANDS,
        hll::COMMANDS,
        sort::COMMANDS,
        pubsub::COMMANDS,
        bitmap::COMMANDS,
        stream::COMMANDS,
        slowlog::COMMANDS,
        debug::COMMANDS,
        memory::COMMANDS,
        monitor::COMMANDS,
        latency::COMMANDS,
        lolwut::COMMANDS,
    ]
    .into_iter()
    .flatten()
}

impl Default for CommandTable {
    fn default() -> Self {
        Self::new()
    }
}

impl CommandTable {
    /// Builds the table from every family's rows.
    pub fn new() -> Self {
        let mut table = CommandTable {
            commands: Vec::new(),
            by_name: HashMap::default(),
        };
        for spec in families() {
            table.add(spec, spec.name.to_string());
            for sub in spec.subcommands {
                table.add(sub, format!("{}|{}", spec.name, sub.name));
            }
        }
        table
    }

    fn add(&mut self, spec: &'static CommandSpec, full_name: String) {
        self.by_name
            .insert(full_name.clone().into_bytes(), self.commands.len());
        self.commands.push(Command {
            index: self.commands.len(),
            spec,
            full_name,
            stats: CommandStats::default(),
            categories: crate::acl::rules::category_mask(spec.acl),
        });
    }

    /// The command (or `container|sub`) named `name`, any case.
    pub fn get(&self, name: &[u8]) -> Option<&Command> {
        let mut buf = [0u8; 64];
        if name.len() > buf.len() {
            return None;
        }
        let lower = &mut buf[..name.len()];
        lower.copy_from_slice(name);
        lower.make_ascii_lowercase();
        self.by_name.get(&*lower).map(|&i| &self.commands[i])
    }

    /// The top-level command named `name`: `config|get` names no command a
    /// client can send, only one COMMAND INFO can describe.
    fn get_top_level(&self, name: &[u8]) -> Option<&Command> {
        if name.contains(&b'|') {
            return None;
        }
        self.get(name)
    }

    /// The command `args` would run, without checking its arity, as Redis's
    /// `lookupCommand`: a container's subcommand when more words follow, `None`
    /// for an unknown command or subcommand.
    pub fn lookup(&self, args: &[Bytes]) -> Option<&Command> {
        let cmd = self.get_top_level(args.first()?)?;
        match args.get(1) {
            Some(sub) if !cmd.spec.subcommands.is_empty() => {
                let mut full = cmd.full_name.clone().into_bytes();
                full.push(b'|');
                full.extend_from_slice(sub);
                self.get(&full)
            }
            _ => Some(cmd),
        }
    }

    /// Top-level commands, in table order.
    pub fn top_level(&self) -> impl Iterator<Item = &Command> {
        self.commands.iter().filter(|c| !c.full_name.contains('|'))
    }

    /// Every command and subcommand.
    pub fn all(&self) -> &[Command] {
        &self.commands
    }

    /// Resolves `args` to the command that runs: a container's subcommand when it
    /// has subcommands. Errors are Redis's unknown-command, unknown-subcommand and
    /// arity errors.
    pub fn resolve(&self, args: &[Bytes]) -> Result<&Command, CommandError> {
        let cmd = args
            .first()
            .and_then(|name| self.get_top_level(name))
            .ok_or_else(|| CommandError::unknown_command(args))?;
        if cmd.spec.subcommands.is_empty() {
            if !cmd.spec.arity_ok(args.len()) {
                return Err(CommandError::WrongArity(cmd.full_name.clone()));
            }
            return Ok(cmd);
        }
        let Some(sub_name) = args.get(1) else {
            // A container that also runs bare (COMMAND) has arity -1.
            if cmd.spec.arity_ok(1) {
                return Ok(cmd);
            }
            return Err(CommandError::WrongArity(cmd.full_name.clone()));
        };
        let mut full = cmd.full_name.clone().into_bytes();
        full.push(b'|');
        full.extend_from_slice(sub_name);
        let sub = self
            .get(&full)
            .ok_or_else(|| CommandError::unknown_subcommand(cmd.spec.name, sub_name))?;
        if !sub.spec.arity_ok(args.len()) {
            return Err(CommandError::WrongArity(sub.full_name.clone()));
        }
        Ok(sub)
    }
}

/// What a handler works with: the server and this client's session.
pub struct Ctx<'a> {
    /// State shared by all connections.
    pub shared: &'a Shared,
    /// This connection's state.
    pub session: &'a mut Session,
    /// The server clock's time when the command started, in ms. A command sees
    /// one instant, as in Redis.
    pub now: u64,
    /// Whether the command may block the connection (false inside EXEC, where a
    /// blocking command tries once, as in Redis, and in scripts).
    pub can_block: bool,
    /// Who runs the command: a client, a transaction, or a script.
    pub mode: CallMode,
}

/// Who runs a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallMode {
    /// A client's request: holds the gate shared, may block.
    Client,
    /// A queued command run by EXEC, which holds the gate exclusively.
    Transaction,
    /// `redis.call` from a script, whose EVAL holds the gate exclusively.
    Script,
}

impl<'a> Ctx<'a> {
    /// Logs `argv` for the append-only file in place of the command running
    /// (which is then not logged as sent): a relative TTL made absolute,
    /// SPOP's members as SREM, ... Nothing while the file is off.
    pub fn propagate(&self, argv: impl FnOnce() -> Vec<Bytes>) {
        if self.shared.keyspace.hook().is_logging() {
            crate::propagate::push(self.session.db, argv());
        }
    }

    /// The database selected by this client.
    pub fn db(&self) -> &'a Db {
        let dbs = self.shared.keyspace.dbs();
        dbs.get(self.session.db).unwrap_or(&dbs[0])
    }
}

/// Runs one request from a client and returns its reply: the only way a command
/// reaches a handler from the network.
pub fn execute(shared: &Shared, session: &mut Session, args: &[Bytes]) -> Reply {
    let reply = execute_one(shared, session, args);
    // CLIENT REPLY: a command that waits has its reply decided when it
    // comes (`Session::end_reply`, from the connection).
    let reply = if session.blocked.is_none()
        && (session.reply_off || session.reply_skip || session.reply_skip_next)
    {
        session.end_reply(reply)
    } else {
        reply
    };
    // CLIENT CACHING lasts for the next command, or the whole transaction, as
    // in Redis (which keeps it across any CLIENT subcommand).
    if session.caching && !session.in_multi() && !args.first().is_some_and(|a| is(a, "client")) {
        session.caching = false;
    }
    reply
}

fn execute_one(shared: &Shared, session: &mut Session, args: &[Bytes]) -> Reply {
    let cmd = match lookup(shared, session, args) {
        Ok(cmd) => cmd,
        Err(e) => {
            if let Some(cmd) = args.first().and_then(|n| shared.commands.get(n)) {
                cmd.stats.rejected_calls.fetch_add(1, Ordering::Relaxed);
            }
            session.flag_transaction_error();
            return Reply::Error(e);
        }
    };
    session.info.last_cmd.store(cmd.index, Ordering::Relaxed);
    // A protected command (DEBUG: the test's own controls) is never faulted,
    // nor does it use up a rule meant for the commands under test.
    let action = (!cmd.spec.has(flag::PROTECTED))
        .then(|| shared.faults.take(&cmd.full_name))
        .flatten();
    if let Some(action) = action {
        match action {
            crate::faults::Action::Error(line) => {
                session.flag_transaction_error();
                return Reply::Error(CommandError::raw(line));
            }
            crate::faults::Action::Close => {
                session.close_after_reply = true;
                return Reply::Silent;
            }
            crate::faults::Action::Delay(d) => session.reply_delay = Some(d),
        }
    }
    // As Redis's authRequired: a default user without a password (now) lets
    // every client in.
    if !session.authenticated && !cmd.spec.has(flag::NO_AUTH) && !shared.acl.default_needs_no_auth()
    {
        cmd.stats.rejected_calls.fetch_add(1, Ordering::Relaxed);
        session.flag_transaction_error();
        return Reply::Error(CommandError::NoAuth);
    }
    if cmd.spec.has(flag::PROTECTED) {
        if let Err(e) = protected_allowed(shared, cmd, session.info.local) {
            cmd.stats.rejected_calls.fetch_add(1, Ordering::Relaxed);
            session.flag_transaction_error();
            return Reply::Error(e);
        }
    }
    // Redis's writeCommandsDeniedByDiskError: writes, and PING, while the
    // last background save failed.
    if shared.persist.writes_denied() && (cmd.spec.has(flag::WRITE) || cmd.spec.name == "ping") {
        cmd.stats.rejected_calls.fetch_add(1, Ordering::Relaxed);
        session.flag_transaction_error();
        return Reply::Error(CommandError::Misconf);
    }
    // ... and while the last write to the AOF failed (Redis's
    // DISK_ERROR_TYPE_AOF).
    if shared.aof.has_write_error() && (cmd.spec.has(flag::WRITE) || cmd.spec.name == "ping") {
        if let Some(e) = shared.aof.write_error() {
            cmd.stats.rejected_calls.fetch_add(1, Ordering::Relaxed);
            session.flag_transaction_error();
            return Reply::Error(CommandError::raw(format!(
                "MISCONF Errors writing to the AOF file: {e}"
            )));
        }
    }
    if !session.resp3
        && session.subs.any()
        && !pubsub::allowed_while_subscribed(cmd.full_name.split('|').next().unwrap_or(""))
    {
        cmd.stats.rejected_calls.fetch_add(1, Ordering::Relaxed);
        session.flag_transaction_error();
        return Reply::Error(CommandError::err(format!(
            "Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            cmd.full_name
        )));
    }
    if shared.is_loading() && !cmd.spec.has(flag::LOADING) {
        cmd.stats.rejected_calls.fetch_add(1, Ordering::Relaxed);
        session.flag_transaction_error();
        return Reply::Error(CommandError::raw(
            "LOADING Redis is loading the dataset in memory",
        ));
    }
    // One branch for a user allowed everything (the default user unless
    // restricted). A command refused inside MULTI anyway is left to that.
    if !session.user.is_unrestricted() {
        let refused_anyway =
            session.in_multi() && cmd.spec.has(flag::NO_MULTI) && !cmd.spec.has(flag::IMMEDIATE);
        if !refused_anyway {
            if let Err(e) = acl::check(shared, session, cmd, args, false) {
                cmd.stats.rejected_calls.fetch_add(1, Ordering::Relaxed);
                session.flag_transaction_error();
                return Reply::Error(e);
            }
        }
    }
    // `maxmemory`: evict as the policy says; still over, `denyoom` commands
    // (and EXEC of one) are refused, as Redis's processCommand does.
    if shared.memory.maxmemory() > 0
        && !shared.is_loading()
        && !crate::memory::evict(shared)
        && denies_oom(shared, session, cmd)
    {
        cmd.stats.rejected_calls.fetch_add(1, Ordering::Relaxed);
        session.flag_transaction_error();
        return Reply::Error(oom_error());
    }
    if let Some(e) = monitor::refuses(session, cmd) {
        cmd.stats.rejected_calls.fetch_add(1, Ordering::Relaxed);
        session.flag_transaction_error();
        return Reply::Error(e);
    }
    // CLIENT PAUSE: after every refusal, before queueing (as Redis's
    // processCommand); one relaxed load while no pause is on.
    let (pause, end) = shared.pause.current(session.now_ms);
    if pause != crate::pause::OFF && postponed(shared, session, cmd, pause) {
        let wait = shared.pause.postpone(session.inbox.outbox());
        session.info.postponed.store(true, Ordering::Relaxed);
        session.blocked = Some(crate::session::Blocked {
            // Redis's pause is on through its end millisecond.
            deadline: Some(end.saturating_add(1)),
            on: crate::session::Wait::Postponed { wait },
        });
        return Reply::Silent;
    }
    if session.in_multi() && !cmd.spec.has(flag::IMMEDIATE) {
        if shared.scripts.is_busy() && !cmd.spec.has(flag::ALLOW_BUSY) {
            return reject_busy(shared, session, cmd);
        }
        if cmd.spec.has(flag::NO_MULTI) {
            cmd.stats.rejected_calls.fetch_add(1, Ordering::Relaxed);
            session.flag_transaction_error();
            return Reply::Error(CommandError::err(
                "Command not allowed inside a transaction",
            ));
        }
        session.queue(cmd.index, args.to_vec());
        return Reply::Simple("QUEUED");
    }
    let allow_busy = cmd.spec.has(flag::ALLOW_BUSY);
    if cmd.spec.has(flag::OWN_GATE) {
        if shared.scripts.is_busy() && !allow_busy {
            return reject_busy(shared, session, cmd);
        }
        // EXEC and EVAL serve blocked clients themselves, under their gate.
        let reply = call(shared, session, cmd, args, CallMode::Client);
        // What the transaction or script published leaves now that it has
        // ended, then what its serving of blocked clients raised.
        pubsub::flush_pending(session);
        pubsub::publish_logged(shared);
        return reply;
    }
    match shared
        .gate
        .read_unless(|| shared.scripts.is_busy() || shared.is_shutting_down())
    {
        Some(_gate) => {
            if shared.is_stopping() {
                // Shut down (and saved) while this waited: close unanswered.
                session.close_after_reply = true;
                return Reply::Silent;
            }
            let order = shared.aof.order();
            let reply = call(shared, session, cmd, args, CallMode::Client);
            serve_blocked(shared, session.now_ms);
            // The events of what serving popped (lpop, del, ...) follow the
            // command's own.
            pubsub::publish_logged(shared);
            if shared.keyspace.hook().is_active() {
                // What serving blocked clients modified.
                crate::tracking::after_background(shared);
            }
            if order.is_some() {
                // Its reply waits for the AOF to hold everything appended by
                // now (`appendfsync always`: no reply shows a write the file
                // could still lose).
                session.aof_offset = crate::persist::aof::end_unit(shared);
            }
            reply
        }
        // The few commands Redis runs beside a busy script (SCRIPT KILL,
        // SHUTDOWN, AUTH, MULTI, ...) touch no key a script could be changing.
        None if shared.is_shutting_down() => {
            // SHUTDOWN NOSAVE stopped a script: close without running anything.
            session.close_after_reply = true;
            Reply::Silent
        }
        None if allow_busy => {
            let reply = call(shared, session, cmd, args, CallMode::Client);
            // Beside a busy script no unit is under way: what this logged (a
            // key WATCH found expired) is left out of the AOF, where the key
            // is expired at any replay anyway.
            crate::propagate::discard();
            reply
        }
        None => reject_busy(shared, session, cmd),
    }
}

/// Whether a pause of `mode` postpones `cmd` from this client: a client
/// that cannot block (the AOF loader) never waits.
fn postponed(shared: &Shared, session: &Session, cmd: &Command, mode: u8) -> bool {
    if session.replaying {
        return false;
    }
    let exec_writes = cmd.spec.name == "exec"
        && session.multi.as_ref().is_some_and(|m| {
            m.queue.iter().any(|q| {
                shared
                    .commands
                    .all()
                    .get(q.command)
                    .is_some_and(|c| crate::pause::may_replicate(c.spec.name, c.spec.flags))
            })
        });
    crate::pause::postpones(mode, cmd.spec.name, cmd.spec.flags, exec_writes)
}

/// Whether `cmd` is refused while over `maxmemory`: it may grow memory
/// (`denyoom`), or it is EXEC of a transaction holding such a command.
fn denies_oom(shared: &Shared, session: &Session, cmd: &Command) -> bool {
    if cmd.spec.has(flag::DENYOOM) {
        return true;
    }
    cmd.spec.name == "exec"
        && session.multi.as_ref().is_some_and(|m| {
            m.queue.iter().any(|q| {
                shared
                    .commands
                    .all()
                    .get(q.command)
                    .is_some_and(|c| c.spec.has(flag::DENYOOM))
            })
        })
}

/// `-OOM command not allowed when used memory > 'maxmemory'.`
pub fn oom_error() -> CommandError {
    CommandError::raw("OOM command not allowed when used memory > 'maxmemory'.")
}

/// Refuses a command because a script is busy, as Redis's `rejectCommand`: the
/// reply is `BUSY`, a transaction being built will abort, and an EXEC refused
/// this way discards its transaction, saying why.
fn reject_busy(shared: &Shared, session: &mut Session, cmd: &Command) -> Reply {
    cmd.stats.rejected_calls.fetch_add(1, Ordering::Relaxed);
    session.flag_transaction_error();
    if cmd.spec.name == "exec" && session.in_multi() {
        session.discard_transaction(&shared.keyspace);
        return Reply::Error(exec_abort_busy(shared));
    }
    Reply::Error(shared.scripts.busy_error())
}

/// EXEC refused because a script is busy: `EXECABORT ... because of: BUSY ...`.
pub fn exec_abort_busy(shared: &Shared) -> CommandError {
    CommandError::raw(format!(
        "EXECABORT Transaction discarded because of: {}",
        shared.scripts.busy_error()
    ))
}

/// Hands elements pushed by the command that just ended to clients blocked in
/// BLPOP/BRPOP. The caller still holds the gate, so nothing runs in between.
pub fn serve_blocked(shared: &Shared, now: u64) {
    shared.blocked.serve_ready(&shared.keyspace, now);
}

/// Resolves `args` to a command, trying this connection's last lookup first: a
/// pipeline of one command (the common case) skips the table.
fn lookup<'t>(
    shared: &'t Shared,
    session: &mut Session,
    args: &[Bytes],
) -> Result<&'t Command, CommandError> {
    let first = args.first().map(|a| a.as_ref()).unwrap_or_default();
    if let Some((name, index)) = &session.last_lookup {
        if name.as_ref() == first {
            if let Some(cmd) = shared.commands.all().get(*index) {
                if cmd.spec.arity_ok(args.len()) {
                    return Ok(cmd);
                }
            }
        }
    }
    let cmd = shared.commands.resolve(args)?;
    if cmd.spec.subcommands.is_empty() && !cmd.full_name.contains('|') {
        // A copy: a slice would keep the whole read buffer alive.
        session.last_lookup = Some((Bytes::copy_from_slice(first), cmd.index));
    }
    Ok(cmd)
}

/// Runs a resolved command and counts it. The caller holds the execution gate
/// (shared for one command, exclusive for a transaction).
pub fn call(
    shared: &Shared,
    session: &mut Session,
    cmd: &Command,
    args: &[Bytes],
    mode: CallMode,
) -> Reply {
    let (started, now) = (session.clock_mark, session.now_ms);
    // CLIENT NO-TOUCH: reads leave LRU and LFU alone, but TOUCH's (also
    // queued in a transaction); a script's calls go as the script does.
    let _no_touch = (mode != CallMode::Script && session.info.no_touch.load(Ordering::Relaxed))
        .then(|| crate::memory::NoTouch::enter(cmd.spec.name != "touch"));
    // A tracking client's keys are registered before the command reads them
    // (so a write racing the read finds them) and again after it.
    let (keys, fresh) = if session.tracking != 0 && crate::tracking::tracks(session, cmd.spec) {
        crate::tracking::before_read(shared, session, cmd.spec, args)
    } else {
        Default::default()
    };
    let mut ctx = Ctx {
        shared,
        session,
        now,
        can_block: mode == CallMode::Client,
        mode,
    };
    if shared.keyspace.notifier().wants(crate::notify::KEY_MISS) {
        keymiss::raise(&mut ctx, cmd, args);
    }
    let logging = shared.keyspace.hook().is_logging();
    let (db, writes, pushed) = if logging {
        (
            ctx.session.db,
            crate::propagate::writes(),
            crate::propagate::pushed(),
        )
    } else {
        (0, 0, 0)
    };
    let reply = (cmd.spec.handler)(&mut ctx, args).unwrap_or_else(Reply::Error);
    if shared.monitors.any() && !cmd.spec.has(flag::SKIP_MONITOR | flag::ADMIN) {
        monitor::feed(
            shared,
            ctx.session,
            ctx.session.db,
            args,
            mode == CallMode::Script,
        );
    }
    // A command that changed the keyspace goes to the AOF as sent, unless
    // it logged what to replay itself (a relative TTL made absolute, ...).
    if logging
        && crate::propagate::writes() != writes
        && crate::propagate::pushed() == pushed
        && !cmd.spec.has(flag::NO_PROPAGATE | flag::OWN_GATE)
    {
        crate::propagate::push_sent(db, args);
    }
    // Keys the command found expired, when nothing it published went first.
    // EXEC and EVAL leave theirs to `execute`, after what they collected.
    if !(mode == CallMode::Client && cmd.spec.has(flag::OWN_GATE)) {
        ctx.publish_logged();
    }
    if shared.keyspace.hook().is_active() || !keys.is_empty() {
        crate::tracking::after_command(shared, session, mode != CallMode::Client, &keys, &fresh);
    }
    let done = quanta::Instant::now();
    session.clock_mark = done;
    let usec = done.saturating_duration_since(started).as_micros() as u64;
    session
        .stats
        .record(cmd.index, usec, reply.is_error(), shared.latency.tracking());
    let event = if cmd.spec.has(flag::FAST) {
        "fast-command"
    } else {
        "command"
    };
    shared
        .latency
        .observe(event, usec / 1000, || shared.clock.now_ms() / 1000);
    // A command that blocked is not logged (Redis logs it when it is served).
    if shared.slowlog.wants(usec) && !cmd.spec.has(flag::SKIP_SLOWLOG) && session.blocked.is_none()
    {
        let now_s = shared.clock.now_ms() / 1000;
        if mode == CallMode::Script {
            // A script's commands run on Redis's Lua client: no address, no name.
            shared.slowlog.push(args, usec, now_s, "?:0", Bytes::new());
        } else {
            let name = session.info.name.lock().clone().unwrap_or_default();
            shared
                .slowlog
                .push(args, usec, now_s, &session.info.addr, name);
        }
    }
    reply
}

/// Whether a protected command may run for this client: MODULE's under
/// `enable-module-command`, DEBUG under `enable-debug-command` (`local`:
/// loopback and Unix-socket clients only), with Redis's refusals.
fn protected_allowed(shared: &Shared, cmd: &Command, local: bool) -> Result<(), CommandError> {
    let config = shared.config.read();
    if cmd.full_name.starts_with("module|") {
        if config.enable_module_command.allows(local) {
            return Ok(());
        }
        return Err(CommandError::err(
            "MODULE command not allowed. If the enable-module-command option is set to \"local\", \
             you can run it from a local connection, otherwise you need to set this option in \
             the configuration file, and then restart the server.",
        ));
    }
    if config.enable_debug_command.allows(local) {
        return Ok(());
    }
    Err(debug::not_allowed())
}

/// A container's HELP reply: Redis's header line, `lines`, and HELP's own
/// two lines (`addReplyHelp`).
pub fn help_reply(container: &str, lines: &[&'static str]) -> Reply {
    let mut out = Vec::with_capacity(lines.len() + 3);
    out.push(Reply::Status(Bytes::from(format!(
        "{container} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ))));
    out.extend(
        lines
            .iter()
            .chain(&["HELP", "    Prints this help."])
            .map(|l| Reply::Status(Bytes::from_static(l.as_bytes()))),
    );
    Reply::Array(out)
}

/// A handler for container rows, whose subcommands run instead.
pub fn container(_: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    Err(CommandError::unknown_command(args))
}

/// Parses an integer argument (`ERR value is not an integer or out of range`).
pub fn int_arg(arg: &[u8]) -> Result<i64, CommandError> {
    crate::protocol::parse_i64(arg).ok_or(CommandError::NotInteger)
}

/// A float as Redis's `string2ld` (`strtold`) accepts it: not empty, no spaces, no
/// NaN; decimal or C99 hexadecimal (`0x1p-3`), `inf` and `infinity` included.
pub fn parse_float(s: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(s).ok()?;
    if text.is_empty() || text.len() > 5000 || text.trim() != text {
        return None;
    }
    let v = match text.parse::<f64>() {
        Ok(v) => v,
        Err(_) => parse_hex_float(text)?,
    };
    (!v.is_nan()).then_some(v)
}

/// `[+-]0x<hex digits>[.<hex digits>][p[+-]<decimal exponent>]`.
fn parse_hex_float(text: &str) -> Option<f64> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let rest = rest
        .strip_prefix("0x")
        .or_else(|| rest.strip_prefix("0X"))?;
    let (mantissa, exp) = match rest.find(['p', 'P']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    let v = v * 2f64.powi(exp);
    Some(if negative { -v } else { v })
}

/// Case-insensitive comparison of an argument with an option name.
pub fn is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_no_duplicate_names_and_sane_arity() {
        let table = CommandTable::new();
        let mut seen = std::collections::HashSet::new();
        for c in table.all() {
            assert!(
                seen.insert(c.full_name.clone()),
                "duplicate {}",
                c.full_name
            );
            assert!(c.spec.arity != 0, "{} has arity 0", c.full_name);
            assert_eq!(c.spec.name, c.spec.name.to_ascii_lowercase());
        }
    }

    #[test]
    fn floats_parse_as_strtold_reads_them() {
        assert_eq!(parse_float(b"1.5"), Some(1.5));
        assert_eq!(parse_float(b"0x1p-3"), Some(0.125));
        assert_eq!(parse_float(b"-0X10"), Some(-16.0));
        assert_eq!(parse_float(b"0x.8"), Some(0.5));
        assert_eq!(parse_float(b"inf"), Some(f64::INFINITY));
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"nan",
            b"0x",
            b"0xg",
            b"1e",
            b"0x1p",
        ] {
            assert_eq!(parse_float(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn lookup_ignores_case() {
        let table = CommandTable::new();
        assert!(table.get(b"GeT").is_some());
        assert!(table.get(b"nosuch").is_none());
    }

    /// The first/last/step range Redis derives from key specs for COMMAND
    /// INFO: consecutive index+range specs of step 1 joined, 0 0 0 when none.
    fn derived_range(spec: &CommandSpec) -> (i32, i32, i32) {
        let mut first = i32::MAX;
        let mut last: i32 = 0;
        for k in spec.key_specs {
            let (
                BeginSearch::Index(index),
                FindKeys::Range {
                    lastkey, keystep, ..
                },
            ) = (k.begin, k.find)
            else {
                continue;
            };
            if keystep != 1 && spec.key_specs.len() > 1 {
                continue;
            }
            if spec.key_specs.len() == 1 {
                let end = if lastkey < 0 {
                    lastkey
                } else {
                    index + lastkey
                };
                return (index, end, keystep);
            }
            first = first.min(index);
            let end = if lastkey < 0 {
                lastkey
            } else {
                index + lastkey
            };
            if (end as u32) > (last as u32) {
                last = end;
            }
        }
        if first == i32::MAX {
            (0, 0, 0)
        } else {
            (first, last, 1)
        }
    }

    #[test]
    fn every_row_has_categories_and_key_positions_matching_its_key_specs() {
        let table = CommandTable::new();
        for c in table.all() {
            let spec = c.spec;
            assert!(!spec.acl.is_empty(), "{} has no ACL category", c.full_name);
            assert_eq!(
                (spec.first_key, spec.last_key, spec.step),
                derived_range(spec),
                "{}: .keys() disagrees with its key specs",
                c.full_name
            );
            for k in spec.key_specs {
                let positions: Vec<usize> = k
                    .flags
                    .iter()
                    .map(|f| KEY_FLAG_NAMES.iter().position(|n| n == f))
                    .map(|p| p.unwrap_or_else(|| panic!("{}: key flag {:?}", c.full_name, k.flags)))
                    .collect();
                assert!(
                    positions.windows(2).all(|w| w[0] < w[1]),
                    "{}: key flags {:?} not in Redis's order",
                    c.full_name,
                    k.flags
                );
            }
            assert!(
                !spec.has(flag::MOVABLEKEYS),
                "{}: movablekeys is computed",
                c.full_name
            );
        }
    }

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn positions(spec: &CommandSpec, words: &[&str]) -> Vec<usize> {
        spec.keys_of(&args(words)).iter().map(|k| k.pos).collect()
    }

    fn nothing(_: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
        Ok(Reply::OK)
    }

    const RW: &[&str] = &["RW"];

    #[test]
    fn keyword_specs_search_forwards_or_backwards_and_skip_when_absent() {
        // As XREAD's STREAMS: from the end backwards, keys are half of the rest.
        const STREAMS: &[KeySpec] = &[KeySpec::new(
            &["RO"],
            BeginSearch::Keyword {
                keyword: "STREAMS",
                startfrom: 1,
            },
            FindKeys::Range {
                lastkey: -1,
                keystep: 1,
                limit: 2,
            },
        )];
        let xread = CommandSpec::new("xread", -4, 0, nothing).key_specs(STREAMS);
        assert_eq!(
            positions(
                &xread,
                &["xread", "count", "2", "streams", "a", "b", "0", "0"]
            ),
            [4, 5]
        );
        assert_eq!(
            positions(&xread, &["xread", "count", "2", "x", "y"]),
            [0usize; 0]
        );
        // As GEORADIUS's STORE: searched from the end, the key right after.
        const STORE: &[KeySpec] = &[
            KeySpec::one(1, &["RO", "access"]),
            KeySpec::new(
                RW,
                BeginSearch::Keyword {
                    keyword: "STORE",
                    startfrom: -2,
                },
                FindKeys::Range {
                    lastkey: 0,
                    keystep: 1,
                    limit: 0,
                },
            ),
        ];
        let geo = CommandSpec::new("georadius", -6, 0, nothing).key_specs(STORE);
        assert_eq!(
            positions(&geo, &["georadius", "k", "1", "2", "store", "d"]),
            [1, 5]
        );
        assert_eq!(
            positions(&geo, &["georadius", "k", "1", "2", "3", "d"]),
            [1]
        );
        assert!(geo.movable_keys());
    }

    #[test]
    fn keynum_specs_refuse_bad_counts_and_fall_back_to_the_row_finder() {
        const SPECS: &[KeySpec] = &[KeySpec::keynum(1, RW)];
        let zunion = CommandSpec::new("zunion", -3, 0, nothing).key_specs(SPECS);
        assert_eq!(positions(&zunion, &["zunion", "2", "a", "b", "x"]), [2, 3]);
        for bad in ["0", "-1", "3", "x", "1.5", "4294967297x"] {
            assert_eq!(
                positions(&zunion, &["zunion", bad, "a", "b"]),
                [0usize; 0],
                "{bad}"
            );
        }
        // Redis cuts the count to an int: 2^32 + 1 counts as 1.
        assert_eq!(positions(&zunion, &["zunion", "4294967297", "a"]), [2]);
        assert!(zunion.movable_keys());
        fn first_only(_: &[Bytes]) -> Vec<KeyRef> {
            vec![KeyRef { pos: 2, flags: &[] }]
        }
        let with_finder = CommandSpec::new("z", -3, 0, nothing)
            .key_specs(SPECS)
            .getkeys(first_only);
        assert_eq!(positions(&with_finder, &["z", "9", "a"]), [2]);
        assert_eq!(positions(&with_finder, &["z", "1", "a"]), [2]);
    }

    #[test]
    fn incomplete_and_not_key_specs_are_not_trusted_alone() {
        const INCOMPLETE: &[KeySpec] = &[KeySpec::range(1, -1, 1, &["RO", "incomplete"])];
        let cmd = CommandSpec::new("c", -2, 0, nothing).key_specs(INCOMPLETE);
        assert_eq!(positions(&cmd, &["c", "a", "b"]), [0usize; 0]);
        assert!(cmd.movable_keys());
        const NOT_KEY: &[KeySpec] = &[KeySpec::one(1, &["not_key"])];
        let cmd = CommandSpec::new("c", -2, 0, nothing).key_specs(NOT_KEY);
        assert!(!cmd.has_keys());
        assert_eq!(positions(&cmd, &["c", "a"]), [0usize; 0]);
    }

    #[test]
    fn movable_keys_follows_redis_rule_for_ranges() {
        const PLAIN: &[KeySpec] = &[KeySpec::one(1, RW), KeySpec::one(2, RW)];
        assert!(!CommandSpec::new("c", 3, 0, nothing)
            .key_specs(PLAIN)
            .movable_keys());
        const GAP: &[KeySpec] = &[KeySpec::one(1, RW), KeySpec::one(3, RW)];
        assert!(CommandSpec::new("c", 4, 0, nothing)
            .key_specs(GAP)
            .movable_keys());
        const STEPPED: &[KeySpec] = &[KeySpec::range(1, -1, 2, RW)];
        assert!(!CommandSpec::new("c", -3, 0, nothing)
            .key_specs(STEPPED)
            .movable_keys());
        const STEPPED_TWO: &[KeySpec] = &[KeySpec::one(1, RW), KeySpec::range(2, -1, 2, RW)];
        assert!(CommandSpec::new("c", -3, 0, nothing)
            .key_specs(STEPPED_TWO)
            .movable_keys());
        assert!(!CommandSpec::new("c", 1, 0, nothing).movable_keys());
    }

    #[test]
    fn lookup_finds_subcommands_without_checking_arity_and_refuses_full_names() {
        let table = CommandTable::new();
        let find = |words: &[&str]| table.lookup(&args(words)).map(|c| c.full_name.clone());
        assert_eq!(find(&["CONFIG", "get"]).as_deref(), Some("config|get"));
        assert_eq!(
            find(&["config", "get", "a", "b", "c"]).as_deref(),
            Some("config|get")
        );
        assert_eq!(find(&["config", "nosuch"]), None);
        assert_eq!(find(&["config|get", "x"]), None);
        assert_eq!(find(&["get"]).as_deref(), Some("get"));
        assert!(table.resolve(&args(&["config|get", "maxmemory"])).is_err());
    }
}
