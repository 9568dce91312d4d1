//! SLOWLOG GET, LEN, RESET, HELP, and the log they read: every command that
//! ran for `slowlog-log-slower-than` microseconds or more (negative: none),
//! newest first, at most `slowlog-max-len` entries, as Redis 7.0 keeps it —
//! commands a transaction or a script ran included, EXEC (`skip_slowlog`)
//! not, arguments cut to 32 and each to 128 bytes, AUTH's and HELLO's
//! passwords redacted.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use super::{container, flag, is, CommandResult, CommandSpec, Ctx};
use crate::error::CommandError;
use crate::reply::Reply;

/// Arguments kept per entry (Redis's `SLOWLOG_ENTRY_MAX_ARGC`).
const MAX_ARGC: usize = 32;
/// Bytes kept per argument (`SLOWLOG_ENTRY_MAX_STRING`).
const MAX_STRING: usize = 128;

const ADMIN: u32 = flag::ADMIN | flag::LOADING | flag::STALE;

/// The SLOWLOG container and its subcommands.
pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new("slowlog", -2, 0, container)
    .acl(&["@slow"])
    .doc("server", "2.2.12", "A container for slow log commands.")
    .with_subcommands(&[
        CommandSpec::new("get", -2, ADMIN, get)
            .acl(&["@admin", "@slow", "@dangerous"])
            .tips(&["request_policy:all_nodes", "nondeterministic_output"])
            .doc("server", "2.2.12", "Returns the slow log's entries."),
        CommandSpec::new("help", 2, flag::LOADING | flag::STALE, help)
            .acl(&["@slow"])
            .doc(
                "server",
                "6.2.0",
                "Show helpful text about the different subcommands",
            ),
        CommandSpec::new("len", 2, ADMIN, len)
            .acl(&["@admin", "@slow", "@dangerous"])
            .tips(&[
                "request_policy:all_nodes",
                "response_policy:agg_sum",
                "nondeterministic_output",
            ])
            .doc(
                "server",
                "2.2.12",
                "Returns the number of entries in the slow log.",
            ),
        CommandSpec::new("reset", 2, ADMIN, reset)
            .acl(&["@admin", "@slow", "@dangerous"])
            .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"])
            .doc("server", "2.2.12", "Clears all entries from the slow log."),
    ])];

/// One logged command.
#[derive(Debug, Clone)]
struct Entry {
    id: u64,
    /// Unix time (s) when it was logged.
    time: u64,
    /// How long it ran (µs).
    duration: u64,
    argv: Vec<Bytes>,
    peer: String,
    name: Bytes,
}

/// The slow log (one per server).
#[derive(Debug)]
pub struct SlowLog {
    /// `slowlog-log-slower-than` (µs; negative: off), read on every command.
    threshold: AtomicI64,
    /// `slowlog-max-len`.
    max_len: AtomicU64,
    next_id: AtomicU64,
    entries: Mutex<VecDeque<Entry>>,
}

impl Default for SlowLog {
    fn default() -> Self {
        SlowLog {
            threshold: AtomicI64::new(10_000),
            max_len: AtomicU64::new(128),
            next_id: AtomicU64::new(0),
            entries: Mutex::new(VecDeque::new()),
        }
    }
}

impl SlowLog {
    /// Applies `slowlog-log-slower-than` and `slowlog-max-len` (a shorter
    /// log drops its oldest entries at the next command logged, as Redis).
    pub fn configure(&self, threshold_us: i64, max_len: u64) {
        self.threshold.store(threshold_us, Ordering::Relaxed);
        self.max_len.store(max_len, Ordering::Relaxed);
    }

    /// Empties the log (SLOWLOG RESET).
    pub fn reset(&self) {
        self.entries.lock().clear();
    }

    /// Whether a command that ran `usec` µs is to be logged (one relaxed
    /// load on every command).
    #[inline]
    pub fn wants(&self, usec: u64) -> bool {
        let t = self.threshold.load(Ordering::Relaxed);
        t >= 0 && usec >= t as u64
    }

    /// Logs a command that ran `usec` µs: its arguments (cut as Redis cuts
    /// them, passwords redacted), the client's address and name.
    pub fn push(&self, args: &[Bytes], usec: u64, now_s: u64, peer: &str, name: Bytes) {
        let redact_from = redacted_from(args);
        let argc = args.len().min(MAX_ARGC);
        let mut argv = Vec::with_capacity(argc);
        for (j, a) in args.iter().take(argc).enumerate() {
            let kept = if argc != args.len() && j == argc - 1 {
                Bytes::from(format!("... ({} more arguments)", args.len() - argc + 1))
            } else if redact_from.as_ref().is_some_and(|from| from.contains(&j)) {
                Bytes::from_static(b"(redacted)")
            } else if a.len() > MAX_STRING {
                let mut s = a[..MAX_STRING].to_vec();
                s.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_STRING).as_bytes(),
                );
                Bytes::from(s)
            } else {
                Bytes::copy_from_slice(a)
            };
            argv.push(kept);
        }
        let entry = Entry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            time: now_s,
            duration: usec,
            argv,
            peer: peer.to_string(),
            name,
        };
        let max = self.max_len.load(Ordering::Relaxed) as usize;
        let mut entries = self.entries.lock();
        entries.push_front(entry);
        entries.truncate(max);
    }
}

/// The argument positions Redis redacts before logging: AUTH's, and
/// HELLO's AUTH username and password.
pub(crate) fn redacted_from(args: &[Bytes]) -> Option<std::ops::Range<usize>> {
    let name = args.first()?;
    if is(name, "auth") {
        return Some(1..args.len());
    }
    if is(name, "hello") {
        let at = args.iter().position(|a| is(a, "auth"))?;
        return Some(at + 1..(at + 3).min(args.len()));
    }
    None
}

fn get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    if args.len() > 3 {
        return Err(CommandError::subcommand_syntax("slowlog", &args[1]));
    }
    let count = match args.get(2) {
        None => 10,
        Some(c) => {
            let n = super::int_arg(c)
                .map_err(|_| CommandError::err("count should be greater than or equal to -1"))?;
            if n < -1 {
                return Err(CommandError::err(
                    "count should be greater than or equal to -1",
                ));
            }
            if n == -1 {
                usize::MAX
            } else {
                n as usize
            }
        }
    };
    let entries = ctx.shared.slowlog.entries.lock();
    let out = entries
        .iter()
        .take(count)
        .map(|e| {
            Reply::Array(vec![
                Reply::Int(e.id as i64),
                Reply::Int(e.time as i64),
                Reply::Int(e.duration as i64),
                Reply::Array(e.argv.iter().cloned().map(Reply::Bulk).collect()),
                Reply::Bulk(Bytes::from(e.peer.clone())),
                Reply::Bulk(e.name.clone()),
            ])
        })
        .collect();
    Ok(Reply::Array(out))
}

fn len(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(Reply::Int(ctx.shared.slowlog.entries.lock().len() as i64))
}

fn reset(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    ctx.shared.slowlog.reset();
    Ok(Reply::OK)
}

fn help(_: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(super::help_reply(
        "SLOWLOG",
        &[
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn long_commands_are_cut_as_redis_cuts_them() {
        let log = SlowLog::default();
        let mut many = vec!["SADD".to_string(), "k".to_string()];
        many.extend((0..40).map(|i| i.to_string()));
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        log.push(&args(&many), 5, 1, "1.2.3.4:5", Bytes::new());
        let long = "x".repeat(200);
        log.push(
            &args(&["SET", "k", &long]),
            5,
            1,
            "p",
            Bytes::from_static(b"n"),
        );
        log.push(&args(&["AUTH", "user", "pw"]), 5, 1, "p", Bytes::new());
        log.push(
            &args(&["HELLO", "3", "AUTH", "u", "pw", "SETNAME", "x"]),
            5,
            1,
            "p",
            Bytes::new(),
        );
        let e = log.entries.lock();
        assert_eq!(e[3].argv.len(), 32);
        assert_eq!(e[3].argv[31], "... (11 more arguments)");
        assert_eq!(e[2].argv[2].len(), 128 + "... (72 more bytes)".len());
        assert!(e[2].argv[2].ends_with(b"... (72 more bytes)"));
        assert_eq!(e[1].argv, args(&["AUTH", "(redacted)", "(redacted)"]));
        assert_eq!(
            e[0].argv,
            args(&[
                "HELLO",
                "3",
                "AUTH",
                "(redacted)",
                "(redacted)",
                "SETNAME",
                "x"
            ])
        );
        assert_eq!(e[0].id, 3);
    }

    #[test]
    fn the_threshold_and_the_length_apply() {
        let log = SlowLog::default();
        assert!(!log.wants(9_999) && log.wants(10_000));
        log.configure(-1, 2);
        assert!(!log.wants(u64::MAX));
        log.configure(0, 2);
        assert!(log.wants(0));
        for _ in 0..5 {
            log.push(&args(&["PING"]), 0, 1, "p", Bytes::new());
        }
        assert_eq!(log.entries.lock().len(), 2);
        assert_eq!(log.entries.lock()[0].id, 4, "newest first");
    }
}
