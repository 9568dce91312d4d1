//! ACL users: the table of users (the `default` user always among them),
//! authentication, the ACL log, and the ACL file (ACL LOAD / ACL SAVE).
//!
//! A connection holds an `Arc` of its [`AclUser`]; ACL SETUSER swaps the
//! user's rules in place, so its connections see the change at their next
//! command. A user whose rules allow everything is flagged `unrestricted`:
//! the dispatcher then skips the check with one branch.

pub mod rules;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::commands::CommandTable;
pub use rules::{Denied, RuleError, UserRules};

/// One user: its name and its current rules.
#[derive(Debug)]
pub struct AclUser {
    /// The user name.
    pub name: Bytes,
    rules: RwLock<Arc<UserRules>>,
    unrestricted: AtomicBool,
}

impl AclUser {
    fn new(name: Bytes, rules: UserRules) -> Arc<AclUser> {
        let unrestricted = AtomicBool::new(rules.is_unrestricted());
        Arc::new(AclUser {
            name,
            rules: RwLock::new(Arc::new(rules)),
            unrestricted,
        })
    }

    /// A user allowed everything, outside the user table: the AOF loader's
    /// client, as Redis's fake client runs with no user.
    pub fn superuser(table: &CommandTable) -> Arc<AclUser> {
        AclUser::new(
            Bytes::from_static(b"default"),
            UserRules::default_user(table),
        )
    }

    /// Whether the user may run any command on any key and channel.
    #[inline]
    pub fn is_unrestricted(&self) -> bool {
        self.unrestricted.load(Ordering::Relaxed)
    }

    /// The user's current rules.
    pub fn rules(&self) -> Arc<UserRules> {
        self.rules.read().clone()
    }

    fn set_rules(&self, rules: UserRules) {
        self.unrestricted
            .store(rules.is_unrestricted(), Ordering::Relaxed);
        *self.rules.write() = Arc::new(rules);
    }
}

/// Where a refusal happened, for the ACL log's `context`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogContext {
    /// A client's command.
    Toplevel,
    /// A command of a transaction.
    Multi,
    /// `redis.call` from a script.
    Lua,
}

impl LogContext {
    fn name(self) -> &'static str {
        match self {
            LogContext::Toplevel => "toplevel",
            LogContext::Multi => "multi",
            LogContext::Lua => "lua",
        }
    }
}

/// What an ACL log entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogReason {
    /// A command refused.
    Command,
    /// A key refused.
    Key,
    /// A channel refused.
    Channel,
    /// A failed AUTH or HELLO AUTH.
    Auth,
}

impl LogReason {
    fn name(self) -> &'static str {
        match self {
            LogReason::Command => "command",
            LogReason::Key => "key",
            LogReason::Channel => "channel",
            LogReason::Auth => "auth",
        }
    }
}

/// One ACL LOG entry.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// How many times this happened within a minute of the last.
    pub count: u64,
    /// Why.
    pub reason: LogReason,
    /// Where.
    pub context: LogContext,
    /// The command, key or channel refused (the command name for AUTH).
    pub object: Bytes,
    /// The user refused.
    pub username: Bytes,
    /// Server clock ms of the last occurrence.
    pub ms: u64,
    /// The client's CLIENT LIST line at the last occurrence.
    pub client_info: String,
}

impl LogEntry {
    /// The fields ACL LOG shows, in Redis's order (age in seconds as given).
    pub fn fields(&self, now_ms: u64) -> [(&'static str, LogValue<'_>); 7] {
        [
            ("count", LogValue::Int(self.count as i64)),
            ("reason", LogValue::Text(self.reason.name().as_bytes())),
            ("context", LogValue::Text(self.context.name().as_bytes())),
            ("object", LogValue::Text(&self.object)),
            ("username", LogValue::Text(&self.username)),
            (
                "age-seconds",
                LogValue::Double(now_ms.saturating_sub(self.ms) as f64 / 1000.0),
            ),
            ("client-info", LogValue::Text(self.client_info.as_bytes())),
        ]
    }
}

/// One value of a log entry.
#[derive(Debug, Clone, Copy)]
pub enum LogValue<'a> {
    /// An integer.
    Int(i64),
    /// A double.
    Double(f64),
    /// Text.
    Text(&'a [u8]),
}

/// Redis groups like entries within this many ms.
const LOG_GROUPING_MS: u64 = 60_000;

/// All users, the log, and the options they follow.
#[derive(Debug)]
pub struct Acl {
    users: RwLock<BTreeMap<Bytes, Arc<AclUser>>>,
    default: Arc<AclUser>,
    log: Mutex<VecDeque<LogEntry>>,
}

/// Why a user's rules were refused: ACL SETUSER's error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetUserError(pub String);

impl Acl {
    /// A table holding only the default user (on, nopass, everything).
    pub fn new(table: &CommandTable) -> Acl {
        let default = AclUser::new(
            Bytes::from_static(b"default"),
            UserRules::default_user(table),
        );
        let mut users = BTreeMap::new();
        users.insert(default.name.clone(), default.clone());
        Acl {
            users: RwLock::new(users),
            default,
            log: Mutex::new(VecDeque::new()),
        }
    }

    /// The default user.
    pub fn default_user(&self) -> Arc<AclUser> {
        self.default.clone()
    }

    /// Whether a new connection starts authenticated (the default user is on
    /// and needs no password).
    pub fn default_needs_no_auth(&self) -> bool {
        let r = self.default.rules.read();
        r.nopass && r.enabled
    }

    /// The user named `name`.
    pub fn user(&self, name: &[u8]) -> Option<Arc<AclUser>> {
        self.users.read().get(name).cloned()
    }

    /// Every user, by name.
    pub fn users(&self) -> Vec<Arc<AclUser>> {
        self.users.read().values().cloned().collect()
    }

    /// The user `name` if `pass` opens it.
    pub fn authenticate(&self, name: &[u8], pass: &[u8]) -> Option<Arc<AclUser>> {
        let user = self.user(name)?;
        user.rules().password_ok(pass).then_some(user)
    }

    /// `requirepass`: the default user's one password, or nopass when empty.
    pub fn set_default_password(&self, table: &CommandTable, password: Option<&str>) {
        let mut rules = (*self.default.rules()).clone();
        let _ = rules.apply(table, b"resetpass", true);
        match password {
            Some(p) => {
                let mut op = b">".to_vec();
                op.extend_from_slice(p.as_bytes());
                let _ = rules.apply(table, &op, true);
            }
            None => {
                let _ = rules.apply(table, b"nopass", true);
            }
        }
        self.default.set_rules(rules);
    }

    /// ACL SETUSER: applies `ops` to the user `name` (created if new), all or
    /// nothing. Returns the user's previous rules (None if new).
    pub fn set_user(
        &self,
        table: &CommandTable,
        name: &[u8],
        ops: &[Bytes],
        allchannels: bool,
    ) -> Result<Option<Arc<UserRules>>, SetUserError> {
        let merged = rules::merge_selectors(ops).map_err(|i| {
            SetUserError(format!(
                "Unmatched parenthesis in acl selector starting at '{}'.",
                String::from_utf8_lossy(&ops[i])
            ))
        })?;
        let mut users = self.users.write();
        let existing = users.get(name).cloned();
        let before = existing.as_ref().map(|u| u.rules());
        let mut rules = match &before {
            Some(r) => (**r).clone(),
            None => UserRules::new(table, allchannels),
        };
        for op in &merged {
            rules.apply(table, op, allchannels).map_err(|e| {
                SetUserError(format!(
                    "Error in ACL SETUSER modifier '{}': {e}",
                    String::from_utf8_lossy(op)
                ))
            })?;
        }
        match existing {
            Some(u) => u.set_rules(rules),
            None => {
                let name = Bytes::copy_from_slice(name);
                users.insert(name.clone(), AclUser::new(name, rules));
            }
        }
        Ok(before)
    }

    /// Removes the user `name`; returns it (its clients are to be closed).
    pub fn remove(&self, name: &[u8]) -> Option<Arc<AclUser>> {
        if name == b"default" {
            return None;
        }
        self.users.write().remove(name)
    }

    /// Replaces every user with `users` (ACL LOAD, start-up); the default
    /// user keeps its identity and takes the new rules (or a fresh default's).
    /// Returns the users replaced, whose clients are to be closed.
    pub fn replace_all(
        &self,
        table: &CommandTable,
        users: Vec<(Bytes, UserRules)>,
    ) -> Vec<Arc<AclUser>> {
        let mut map = BTreeMap::new();
        let mut default_rules = UserRules::default_user(table);
        for (name, rules) in users {
            if name.as_ref() == b"default" {
                default_rules = rules;
            } else {
                map.insert(name.clone(), AclUser::new(name, rules));
            }
        }
        self.default.set_rules(default_rules);
        map.insert(self.default.name.clone(), self.default.clone());
        let old = std::mem::replace(&mut *self.users.write(), map);
        old.into_values()
            .filter(|u| !Arc::ptr_eq(u, &self.default))
            .collect()
    }

    /// Adds an entry to the ACL log, or counts it on a like entry of the
    /// last minute among the 10 newest; keeps at most `max_len`.
    pub fn log(&self, entry: LogEntry, max_len: usize) {
        let mut log = self.log.lock();
        let found = log.iter().take(10).position(|e| {
            e.reason == entry.reason
                && e.context == entry.context
                && e.ms.abs_diff(entry.ms) <= LOG_GROUPING_MS
                && e.object == entry.object
                && e.username == entry.username
        });
        if let Some(at) = found {
            if let Some(mut e) = log.remove(at) {
                e.count += 1;
                e.ms = entry.ms;
                e.client_info = entry.client_info;
                log.push_front(e);
            }
            return;
        }
        log.push_front(entry);
        log.truncate(max_len);
    }

    /// The newest `count` log entries.
    pub fn log_entries(&self, count: usize) -> Vec<LogEntry> {
        self.log.lock().iter().take(count).cloned().collect()
    }

    /// ACL LOG RESET.
    pub fn reset_log(&self) {
        self.log.lock().clear();
    }

    /// Trims the log to `max_len` (CONFIG SET acllog-max-len).
    pub fn trim_log(&self, max_len: usize) {
        self.log.lock().truncate(max_len);
    }

    /// The ACL file's text: one `user <name> <rules>` line per user, by name.
    pub fn file_text(&self, table: &CommandTable) -> Vec<u8> {
        let mut out = Vec::new();
        for u in self.users() {
            out.extend_from_slice(b"user ");
            out.extend_from_slice(&u.name);
            out.push(b' ');
            out.extend_from_slice(&u.rules().describe(table));
            out.push(b'\n');
        }
        out
    }
}

/// Parses an ACL file's text into users, as Redis's ACL LOAD: every error
/// collected into one line (Redis's texts, `file` naming the file), nothing
/// returned if there is any.
pub fn parse_file(
    table: &CommandTable,
    text: &[u8],
    file: &str,
    allchannels: bool,
) -> Result<Vec<(Bytes, UserRules)>, String> {
    let mut errors = String::new();
    let mut users: Vec<(Bytes, UserRules)> = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        let line = trim(line);
        if line.is_empty() {
            continue;
        }
        let words: Vec<Bytes> = line
            .split(|&b| b == b' ')
            .filter(|w| !w.is_empty())
            .map(Bytes::copy_from_slice)
            .collect();
        if words.is_empty() {
            continue;
        }
        if words[0].as_ref() != b"user" || words.len() < 2 {
            errors.push_str(&format!(
                "{file}:{n} should start with user keyword followed by the username. "
            ));
            continue;
        }
        let name = words[1].clone();
        if rules::has_spaces(&name) {
            errors.push_str(&format!(
                "'{file}:{n}: username '{}' contains invalid characters. ",
                String::from_utf8_lossy(&name)
            ));
            continue;
        }
        if users.iter().any(|(u, _)| *u == name) {
            errors.push_str(&format!(
                "WARNING: Duplicate user '{}' found on line {n}. ",
                String::from_utf8_lossy(&name)
            ));
            continue;
        }
        let mut user = UserRules::new(table, allchannels);
        let merged = match rules::merge_selectors(&words[2..]) {
            Ok(m) => m,
            Err(_) => {
                errors.push_str(&format!(
                    "{file}:{n}: Unmatched parenthesis in selector definition."
                ));
                Vec::new()
            }
        };
        let mut syntax_error = false;
        for op in &merged {
            let op = trim(op);
            if let Err(e) = user.apply(table, op, allchannels) {
                if e == RuleError::Unknown {
                    errors.push_str(&format!(
                        "{file}:{n}: Error in applying operation '{}': {e}. ",
                        String::from_utf8_lossy(op)
                    ));
                } else if !syntax_error {
                    errors.push_str(&format!("{file}:{n}: {e}. "));
                    syntax_error = true;
                }
            }
        }
        users.push((name, user));
    }
    if errors.is_empty() {
        Ok(users)
    } else {
        errors.push_str(
            "WARNING: ACL errors detected, no change to the previously active ACL rules was performed",
        );
        Err(errors)
    }
}

/// Parses the `user` directives of a configuration file: each is a name and
/// its rules; an error names the rule (Redis refuses to start).
pub fn parse_config_users(
    table: &CommandTable,
    lines: &[Vec<String>],
    allchannels: bool,
) -> Result<Vec<(Bytes, UserRules)>, String> {
    let mut users: Vec<(Bytes, UserRules)> = Vec::new();
    for words in lines {
        let Some((name, ops)) = words.split_first() else {
            continue;
        };
        if rules::has_spaces(name.as_bytes()) {
            return Err("Spaces not allowed in ACL usernames".into());
        }
        if users.iter().any(|(u, _)| u.as_ref() == name.as_bytes()) {
            return Err(format!("user '{name}': {}", RuleError::Duplicate));
        }
        let ops: Vec<Bytes> = ops.iter().map(|o| Bytes::from(o.clone())).collect();
        let merged = rules::merge_selectors(&ops).map_err(|i| {
            format!(
                "Unmatched parenthesis in acl selector starting at '{}'.",
                ops[i].escape_ascii()
            )
        })?;
        let mut user = UserRules::new(table, allchannels);
        if name == "default" {
            // The default user's line starts from `reset`, as Redis.
            let _ = user.apply(table, b"reset", allchannels);
        }
        for op in &merged {
            user.apply(table, op, allchannels).map_err(|e| {
                format!(
                    "Error loading ACL rule '{}' for the user named '{name}': {e}",
                    String::from_utf8_lossy(op)
                )
            })?;
        }
        users.push((Bytes::from(name.clone()), user));
    }
    Ok(users)
}

fn trim(s: &[u8]) -> &[u8] {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = s.iter().position(|b| !is_space(b)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_files_load_all_or_nothing_with_redis_errors() {
        let t = CommandTable::new();
        let ok = parse_file(
            &t,
            b"user default on nopass ~* &* +@all\n\nuser a on #148de9c5a7a44d19e56cd9ae1a554bf67847afb0c58f6e12fa29ac7ddfca9940 ~k* -@all +get\n",
            "users.acl",
            false,
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert!(ok[1].1.password_ok(b"p"));
        let err =
            parse_file(&t, b"bogus\nuser b +nosuch\nuser b on\n", "f.acl", false).unwrap_err();
        assert_eq!(
            err,
            "f.acl:1 should start with user keyword followed by the username. f.acl:2: Error in applying operation '+nosuch': Unknown command or category name in ACL. WARNING: Duplicate user 'b' found on line 3. WARNING: ACL errors detected, no change to the previously active ACL rules was performed"
        );
    }

    #[test]
    fn log_groups_like_entries_and_keeps_the_newest() {
        let t = CommandTable::new();
        let acl = Acl::new(&t);
        let entry = |object: &'static str, ms| LogEntry {
            count: 1,
            reason: LogReason::Key,
            context: LogContext::Toplevel,
            object: Bytes::from_static(object.as_bytes()),
            username: Bytes::from_static(b"u"),
            ms,
            client_info: String::new(),
        };
        acl.log(entry("a", 0), 2);
        acl.log(entry("a", 1000), 2);
        acl.log(entry("b", 1000), 2);
        acl.log(entry("c", 1000), 2);
        let log = acl.log_entries(10);
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].object.as_ref(), b"c");
        assert_eq!(log[1].object.as_ref(), b"b");
        acl.log(entry("c", 100_000), 2);
        assert_eq!(acl.log_entries(1)[0].count, 1);
    }
}
