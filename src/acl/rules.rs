//! One user's ACL rules: flags, password hashes and selectors, the rule
//! language ACL SETUSER speaks (`on`, `>pass`, `~pattern`, `+@category`,
//! `(...)`, ...), the description ACL LIST and GETUSER print, and the
//! permission check a command goes through.
//!
//! Not here: the table of users, authentication, the log (see `acl/mod.rs`).

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::commands::{flag, Command, CommandTable, KeyRef};

/// ACL categories in the order ACL CAT lists them: Redis 7.0's, then
/// latchkey's `lock`.
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
    "lock",
];

/// The bit of category `name` (any case), as [`CATEGORIES`] orders them.
pub fn category_bit(name: &[u8]) -> Option<u64> {
    CATEGORIES
        .iter()
        .position(|c| c.as_bytes().eq_ignore_ascii_case(name))
        .map(|i| 1 << i)
}

/// The category bits of a row's `@name` list.
pub fn category_mask(acl: &[&str]) -> u64 {
    acl.iter()
        .filter_map(|c| c.strip_prefix('@'))
        .filter_map(|c| category_bit(c.as_bytes()))
        .fold(0, |m, b| m | b)
}

/// Read permission of a key pattern (`%R~`).
pub const READ: u8 = 1;
/// Write permission of a key pattern (`%W~`).
pub const WRITE: u8 = 2;

/// Why a rule was refused; `Display` is Redis's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleError {
    /// Not a rule, or a pattern with spaces.
    Syntax,
    /// `+cmd`, `-cmd`, `+@cat` naming nothing known.
    Unknown,
    /// A key pattern after `allkeys`.
    KeysAfterAll,
    /// A channel pattern after `allchannels`.
    ChannelsAfterAll,
    /// `<pass` or `!hash` naming no password of the user.
    NoSuchPassword,
    /// `#hash` or `!hash` not 64 lowercase hex digits.
    BadHash,
    /// `+cmd|sub|arg`.
    FirstArgOfSubcommand,
    /// A user given twice in the configuration file.
    Duplicate,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RuleError::Syntax => "Syntax error",
            RuleError::Unknown => "Unknown command or category name in ACL",
            RuleError::KeysAfterAll => "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns",
            RuleError::ChannelsAfterAll => "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels",
            RuleError::NoSuchPassword => "The password you are trying to remove from the user does not exist",
            RuleError::BadHash => "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters",
            RuleError::FirstArgOfSubcommand => "Allowing first-arg of a subcommand is not supported",
            RuleError::Duplicate => "Duplicate user found. A user can only be defined once in config files",
        })
    }
}

/// Why a command was refused, with the argument at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The user may not run the command.
    Command,
    /// The key at this argument position is out of reach.
    Key(usize),
    /// The channel at this argument position is out of reach.
    Channel(usize),
}

impl Denied {
    /// Redis's ranking when selectors disagree: command < key < channel.
    fn rank(self) -> (u8, usize) {
        match self {
            Denied::Command => (1, 0),
            Denied::Key(p) => (2, p),
            Denied::Channel(p) => (4, p),
        }
    }
}

/// A key pattern and the access it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    /// Glob pattern.
    pub pattern: Vec<u8>,
    /// [`READ`] | [`WRITE`].
    pub perm: u8,
}

/// One set of permissions: the user's root one, or one in parentheses. A
/// command is allowed when one selector allows it whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    allkeys: bool,
    allchannels: bool,
    allcommands: bool,
    /// Set by `+@all`: the user runs commands added later (what the
    /// description starts from, `+@all` or `-@all`).
    future: bool,
    /// One bit per command table index.
    allowed: Vec<u64>,
    /// `+cmd|arg`: first arguments allowed for a command otherwise denied.
    firstargs: Vec<(usize, Vec<Vec<u8>>)>,
    keys: Vec<KeyPattern>,
    channels: Vec<Vec<u8>>,
}

impl Selector {
    /// A selector that allows nothing; channels as `acl-pubsub-default`.
    pub fn new(table: &CommandTable, allchannels: bool) -> Selector {
        Selector {
            allkeys: false,
            allchannels,
            allcommands: false,
            future: false,
            allowed: vec![0; table.all().len().div_ceil(64)],
            firstargs: Vec::new(),
            keys: Vec::new(),
            channels: Vec::new(),
        }
    }

    /// Whether it allows every command, key and channel.
    pub fn is_unrestricted(&self) -> bool {
        self.allkeys && self.allchannels && self.allcommands
    }

    fn bit(&self, index: usize) -> bool {
        self.allowed
            .get(index / 64)
            .is_some_and(|w| w & (1 << (index % 64)) != 0)
    }

    fn set_bit(&mut self, index: usize, on: bool) {
        if let Some(w) = self.allowed.get_mut(index / 64) {
            if on {
                *w |= 1 << (index % 64);
            } else {
                *w &= !(1 << (index % 64));
                self.allcommands = false;
            }
        }
    }

    /// Allows or denies a command, and a container's subcommands with it.
    fn change(&mut self, table: &CommandTable, cmd: &Command, on: bool) {
        self.set_bit(cmd.index, on);
        self.firstargs.retain(|(i, _)| *i != cmd.index);
        for sub in subcommands(table, cmd) {
            self.set_bit(sub, on);
        }
    }

    fn change_category(&mut self, table: &CommandTable, bit: u64, on: bool) {
        for cmd in table.all() {
            if cmd.categories & bit != 0 {
                self.change(table, cmd, on);
            }
        }
    }

    fn all_commands(&mut self, on: bool) {
        let fill = if on { u64::MAX } else { 0 };
        self.allowed.iter_mut().for_each(|w| *w = fill);
        self.allcommands = on;
        self.future = on;
        self.firstargs.clear();
    }

    /// Applies one selector rule (keys, channels, commands).
    pub fn apply(&mut self, table: &CommandTable, op: &[u8]) -> Result<(), RuleError> {
        let is = |name: &str| op.eq_ignore_ascii_case(name.as_bytes());
        if is("allkeys") || op == b"~*" {
            self.allkeys = true;
            self.keys.clear();
        } else if is("resetkeys") {
            self.allkeys = false;
            self.keys.clear();
        } else if is("allchannels") || op == b"&*" {
            self.allchannels = true;
            self.channels.clear();
        } else if is("resetchannels") {
            self.allchannels = false;
            self.channels.clear();
        } else if is("allcommands") || is("+@all") {
            self.all_commands(true);
        } else if is("nocommands") || is("-@all") {
            self.all_commands(false);
        } else if op[0] == b'~' || op[0] == b'%' {
            self.add_key_pattern(op)?;
        } else if op[0] == b'&' {
            if self.allchannels {
                return Err(RuleError::ChannelsAfterAll);
            }
            let pattern = &op[1..];
            if has_spaces(pattern) {
                return Err(RuleError::Syntax);
            }
            if !self.channels.iter().any(|c| c == pattern) {
                self.channels.push(pattern.to_vec());
            }
        } else if op.len() >= 2 && (op[0] == b'+' || op[0] == b'-') && op[1] == b'@' {
            let bit = category_bit(&op[2..]).ok_or(RuleError::Unknown)?;
            self.change_category(table, bit, op[0] == b'+');
        } else if op[0] == b'+' {
            self.allow_command(table, &op[1..])?;
        } else if op[0] == b'-' {
            let cmd = table.get(&op[1..]).ok_or(RuleError::Unknown)?;
            self.change(table, cmd, false);
        } else {
            return Err(RuleError::Syntax);
        }
        Ok(())
    }

    fn add_key_pattern(&mut self, op: &[u8]) -> Result<(), RuleError> {
        if self.allkeys {
            return Err(RuleError::KeysAfterAll);
        }
        let (perm, offset) = if op[0] == b'%' {
            let mut perm = 0;
            let mut offset = 1;
            while offset < op.len() {
                match op[offset].to_ascii_uppercase() {
                    b'R' if perm & READ == 0 => perm |= READ,
                    b'W' if perm & WRITE == 0 => perm |= WRITE,
                    b'~' => {
                        offset += 1;
                        break;
                    }
                    _ => return Err(RuleError::Syntax),
                }
                offset += 1;
            }
            // `%~x` grants nothing (Redis 7.0 accepts it, then cannot
            // describe it): refused here.
            if perm == 0 {
                return Err(RuleError::Syntax);
            }
            (perm, offset)
        } else {
            (READ | WRITE, 1)
        };
        let pattern = &op[offset.min(op.len())..];
        if has_spaces(pattern) {
            return Err(RuleError::Syntax);
        }
        match self.keys.iter_mut().find(|k| k.pattern == pattern) {
            Some(k) => k.perm |= perm,
            None => self.keys.push(KeyPattern {
                pattern: pattern.to_vec(),
                perm,
            }),
        }
        self.allkeys = false;
        Ok(())
    }

    fn allow_command(&mut self, table: &CommandTable, name: &[u8]) -> Result<(), RuleError> {
        let Some(bar) = name.iter().rposition(|&b| b == b'|') else {
            let cmd = table.get(name).ok_or(RuleError::Unknown)?;
            self.change(table, cmd, true);
            return Ok(());
        };
        let (base, sub) = (&name[..bar], &name[bar + 1..]);
        let cmd = table.get(base).ok_or(RuleError::Unknown)?;
        if cmd.full_name.contains('|') {
            return Err(RuleError::FirstArgOfSubcommand);
        }
        if sub.is_empty() {
            return Err(RuleError::Syntax);
        }
        if !cmd.spec.subcommands.is_empty() {
            let sub = table.get(name).ok_or(RuleError::Unknown)?;
            self.change(table, sub, true);
            return Ok(());
        }
        tracing::warn!(
            "Deprecation warning: Allowing a first arg of an otherwise blocked command is a misuse of ACL and may get disabled in the future (offender: +{})",
            String::from_utf8_lossy(name)
        );
        let entry = match self.firstargs.iter_mut().position(|(i, _)| *i == cmd.index) {
            Some(at) => &mut self.firstargs[at].1,
            None => {
                self.firstargs.push((cmd.index, Vec::new()));
                &mut self.firstargs.last_mut().expect("just pushed").1
            }
        };
        if !entry.iter().any(|a| a.eq_ignore_ascii_case(sub)) {
            entry.push(sub.to_vec());
        }
        Ok(())
    }

    /// Whether this selector allows `cmd` with `args`; `keys` caches the
    /// command's keys across selectors.
    fn check(
        &self,
        cmd: &Command,
        args: &[Bytes],
        keys: &mut Option<Vec<KeyRef>>,
    ) -> Result<(), Denied> {
        if !self.allcommands && !cmd.spec.has(flag::NO_AUTH) && !self.bit(cmd.index) {
            let at = if cmd.full_name.contains('|') { 2 } else { 1 };
            let allowed = self
                .firstargs
                .iter()
                .find(|(i, _)| *i == cmd.index)
                .zip(args.get(at))
                .is_some_and(|((_, list), arg)| list.iter().any(|a| a.eq_ignore_ascii_case(arg)));
            if !allowed {
                return Err(Denied::Command);
            }
        }
        if !self.allkeys && cmd.spec.has_keys() {
            let keys = keys.get_or_insert_with(|| cmd.spec.keys_of(args));
            for key in keys.iter() {
                let Some(name) = args.get(key.pos) else {
                    continue;
                };
                if !self.key_allowed(name, key.flags) {
                    return Err(Denied::Key(key.pos));
                }
            }
        }
        if !self.allchannels {
            if let Some((first, pattern)) = channel_args(cmd) {
                for (pos, channel) in args.iter().enumerate().skip(first) {
                    if !self.channel_allowed(channel, pattern) {
                        return Err(Denied::Channel(pos));
                    }
                    if cmd.spec.name.ends_with("publish") {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn key_allowed(&self, key: &[u8], flags: &[&str]) -> bool {
        if self.allkeys {
            return true;
        }
        let mut need = 0;
        for f in flags {
            match *f {
                "access" => need |= READ,
                "insert" | "delete" | "update" => need |= WRITE,
                _ => {}
            }
        }
        self.keys
            .iter()
            .any(|k| k.perm & need == need && crate::commands::keys::glob_match(&k.pattern, key))
    }

    fn channel_allowed(&self, channel: &[u8], is_pattern: bool) -> bool {
        self.allchannels
            || self.channels.iter().any(|p| {
                if is_pattern {
                    p == channel
                } else {
                    crate::commands::keys::glob_match(p, channel)
                }
            })
    }

    /// The key patterns as GETUSER shows them (`~a %R~b`).
    pub fn describe_keys(&self) -> Vec<u8> {
        if self.allkeys {
            return b"~*".to_vec();
        }
        let mut out = Vec::new();
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(match k.perm {
                READ => b"%R~",
                WRITE => b"%W~",
                _ => b"~",
            });
            out.extend_from_slice(&k.pattern);
        }
        out
    }

    /// The channel patterns as GETUSER shows them (`&a &b`).
    pub fn describe_channels(&self) -> Vec<u8> {
        if self.allchannels {
            return b"&*".to_vec();
        }
        let mut out = Vec::new();
        for (i, c) in self.channels.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.push(b'&');
            out.extend_from_slice(c);
        }
        out
    }

    /// The whole selector as ACL LIST shows it: keys, channels, commands.
    pub fn describe(&self, table: &CommandTable) -> Vec<u8> {
        let mut out = Vec::new();
        if self.allkeys || !self.keys.is_empty() {
            out.extend_from_slice(&self.describe_keys());
            out.push(b' ');
        }
        if self.allchannels {
            out.extend_from_slice(b"&* ");
        } else {
            out.extend_from_slice(b"resetchannels ");
            for c in &self.channels {
                out.push(b'&');
                out.extend_from_slice(c);
                out.push(b' ');
            }
        }
        out.extend_from_slice(self.describe_commands(table).as_bytes());
        out
    }

    fn count_category(&self, table: &CommandTable, bit: u64) -> (usize, usize) {
        let (mut on, mut off) = (0, 0);
        for cmd in table.all() {
            if cmd.categories & bit != 0 {
                if self.bit(cmd.index) {
                    on += 1;
                } else {
                    off += 1;
                }
            }
        }
        (on, off)
    }

    /// The command rules that rebuild this selector's commands, as Redis 7.0
    /// writes them: `+@all` or `-@all`, the categories that fit best, then
    /// single commands.
    pub fn describe_commands(&self, table: &CommandTable) -> String {
        let additive = !self.future;
        let mut rules = String::from(if additive { "-@all " } else { "+@all " });
        let mut fake = Selector::new(table, false);
        fake.all_commands(!additive);
        let mut temp = self.clone();
        let mut applied = [false; CATEGORIES.len()];
        loop {
            let mut best = None;
            let (mut mindiff, mut maxsame) = (usize::MAX, 0);
            for (j, _) in CATEGORIES.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let (on, off) = temp.count_category(table, 1 << j);
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < mindiff || (diff == mindiff && same > maxsame)) {
                    best = Some(j);
                    mindiff = diff;
                    maxsame = same;
                }
            }
            let Some(best) = best else { break };
            fake.change_category(table, 1 << best, additive);
            temp.change_category(table, 1 << best, !additive);
            rules.push(if additive { '+' } else { '-' });
            rules.push('@');
            rules.push_str(CATEGORIES[best]);
            rules.push(' ');
            applied[best] = true;
        }
        for cmd in table.all() {
            let user = self.bit(cmd.index);
            if user != fake.bit(cmd.index) {
                rules.push(if user { '+' } else { '-' });
                rules.push_str(&cmd.full_name);
                rules.push(' ');
                fake.change(table, cmd, user);
            }
            if !user {
                if let Some((_, args)) = self.firstargs.iter().find(|(i, _)| *i == cmd.index) {
                    for a in args {
                        rules.push('+');
                        rules.push_str(&cmd.full_name);
                        rules.push('|');
                        rules.push_str(&String::from_utf8_lossy(a));
                        rules.push(' ');
                    }
                }
            }
        }
        rules.pop();
        rules
    }
}

/// The table indexes of a container's subcommands (they follow it).
fn subcommands(table: &CommandTable, cmd: &Command) -> std::ops::Range<usize> {
    if cmd.full_name.contains('|') {
        return 0..0;
    }
    let n = cmd.spec.subcommands.len();
    let end = (cmd.index + 1 + n).min(table.all().len());
    cmd.index + 1..end
}

/// Where a command's channels start and whether they are patterns: the
/// commands whose channels ACLs check (publishing and subscribing).
fn channel_args(cmd: &Command) -> Option<(usize, bool)> {
    match cmd.full_name.as_str() {
        "publish" | "spublish" | "subscribe" | "ssubscribe" => Some((1, false)),
        "psubscribe" => Some((1, true)),
        _ => None,
    }
}

/// Whether `s` has a space or a NUL, which patterns and names may not.
pub fn has_spaces(s: &[u8]) -> bool {
    s.iter()
        .any(|&b| b == 0 || b.is_ascii_whitespace() || b == 0x0b)
}

/// The SHA-256 of a password in lowercase hex, as Redis stores it.
pub fn hash_password(pass: &[u8]) -> String {
    let digest = Sha256::digest(pass);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

fn valid_hash(h: &[u8]) -> bool {
    h.len() == 64 && h.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Everything one user is: flags, password hashes, selectors (the root one
/// first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRules {
    /// `on` (else `off`).
    pub enabled: bool,
    /// `nopass`: any password works.
    pub nopass: bool,
    /// `sanitize-payload` was given (shown by the description).
    pub sanitize_payload: bool,
    /// SHA-256 hex of each password, in the order added.
    pub passwords: Vec<String>,
    /// The root selector, then those in parentheses.
    pub selectors: Vec<Selector>,
}

impl UserRules {
    /// A new user: off, no password, no permissions.
    pub fn new(table: &CommandTable, allchannels: bool) -> UserRules {
        UserRules {
            enabled: false,
            nopass: false,
            sanitize_payload: false,
            passwords: Vec::new(),
            selectors: vec![Selector::new(table, allchannels)],
        }
    }

    /// The default user of a fresh server: on, nopass, everything allowed.
    pub fn default_user(table: &CommandTable) -> UserRules {
        let mut u = UserRules::new(table, true);
        for op in ["+@all", "~*", "&*", "on", "nopass"] {
            // These rules always apply.
            let _ = u.apply(table, op.as_bytes(), true);
        }
        u
    }

    /// Whether the user may run anything: the dispatcher then skips the check.
    pub fn is_unrestricted(&self) -> bool {
        self.selectors
            .first()
            .is_some_and(Selector::is_unrestricted)
    }

    /// Applies one rule. `allchannels` is `acl-pubsub-default` (for `reset`
    /// and new selectors).
    pub fn apply(
        &mut self,
        table: &CommandTable,
        op: &[u8],
        allchannels: bool,
    ) -> Result<(), RuleError> {
        if op.is_empty() {
            return Ok(());
        }
        let is = |name: &str| op.eq_ignore_ascii_case(name.as_bytes());
        if is("on") {
            self.enabled = true;
        } else if is("off") {
            self.enabled = false;
        } else if is("sanitize-payload") {
            self.sanitize_payload = true;
        } else if is("skip-sanitize-payload") {
            // RESTORE payloads are always checked here: refused rather than
            // accepted and not applied.
            return Err(RuleError::Syntax);
        } else if is("nopass") {
            self.nopass = true;
            self.passwords.clear();
        } else if is("resetpass") {
            self.nopass = false;
            self.passwords.clear();
        } else if op[0] == b'>' || op[0] == b'#' {
            let hash = if op[0] == b'>' {
                hash_password(&op[1..])
            } else if valid_hash(&op[1..]) {
                String::from_utf8_lossy(&op[1..]).into_owned()
            } else {
                return Err(RuleError::BadHash);
            };
            if !self.passwords.contains(&hash) {
                self.passwords.push(hash);
            }
            self.nopass = false;
        } else if op[0] == b'<' || op[0] == b'!' {
            let hash = if op[0] == b'<' {
                hash_password(&op[1..])
            } else if valid_hash(&op[1..]) {
                String::from_utf8_lossy(&op[1..]).into_owned()
            } else {
                return Err(RuleError::BadHash);
            };
            let at = self
                .passwords
                .iter()
                .position(|p| *p == hash)
                .ok_or(RuleError::NoSuchPassword)?;
            self.passwords.remove(at);
        } else if op[0] == b'(' && op[op.len() - 1] == b')' {
            let mut selector = Selector::new(table, allchannels);
            let inner = &op[1..op.len() - 1];
            let words = crate::protocol::split_args(inner).ok_or(RuleError::Syntax)?;
            for word in words {
                if !word.is_empty() {
                    selector.apply(table, &word)?;
                }
            }
            self.selectors.push(selector);
        } else if is("clearselectors") {
            self.selectors.truncate(1);
        } else if is("reset") {
            self.nopass = false;
            self.passwords.clear();
            self.enabled = false;
            self.sanitize_payload = true;
            self.selectors.truncate(1);
            let root = &mut self.selectors[0];
            root.allkeys = false;
            root.keys.clear();
            root.allchannels = allchannels;
            root.channels.clear();
            root.all_commands(false);
        } else {
            self.selectors[0].apply(table, op)?;
        }
        Ok(())
    }

    /// Whether `pass` opens this user (it must be enabled).
    pub fn password_ok(&self, pass: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let hash = hash_password(pass);
        // Every stored hash is compared in full, whatever matched first.
        self.passwords.iter().fold(false, |ok, p| {
            let diff = p
                .bytes()
                .zip(hash.bytes())
                .fold(0u8, |d, (a, b)| d | (a ^ b));
            ok | (diff == 0 && p.len() == hash.len())
        })
    }

    /// Whether the user may run `cmd` with `args`; the refusal Redis picks
    /// when no selector allows it (the highest kind, then the last argument).
    pub fn check(&self, cmd: &Command, args: &[Bytes]) -> Result<(), Denied> {
        let mut keys = None;
        let mut worst = Denied::Command;
        for s in &self.selectors {
            match s.check(cmd, args, &mut keys) {
                Ok(()) => return Ok(()),
                Err(d) => {
                    if d.rank() > worst.rank() {
                        worst = d;
                    }
                }
            }
        }
        Err(worst)
    }

    /// Whether one selector allows `cmd` with `args` and reads every key
    /// (`allkeys`, or a `*` pattern with read access): SORT's BY and GET.
    pub fn reads_every_key(&self, cmd: &Command, args: &[Bytes]) -> bool {
        let mut keys = None;
        self.selectors.iter().any(|s| {
            s.check(cmd, args, &mut keys).is_ok()
                && (s.allkeys
                    || s.keys
                        .iter()
                        .any(|k| k.perm & READ != 0 && k.pattern == b"*"))
        })
    }

    /// Every channel pattern of every selector, or None when one selector
    /// allows every channel.
    pub fn channel_patterns(&self) -> Option<Vec<&[u8]>> {
        let mut all = Vec::new();
        for s in &self.selectors {
            if s.allchannels {
                return None;
            }
            all.extend(s.channels.iter().map(Vec::as_slice));
        }
        Some(all)
    }

    /// The rules as ACL LIST and the ACL file write them (without `user name`).
    pub fn describe(&self, table: &CommandTable) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(if self.enabled { b"on " } else { b"off " });
        if self.nopass {
            out.extend_from_slice(b"nopass ");
        }
        if self.sanitize_payload {
            out.extend_from_slice(b"sanitize-payload ");
        }
        for p in &self.passwords {
            out.push(b'#');
            out.extend_from_slice(p.as_bytes());
            out.push(b' ');
        }
        for (i, s) in self.selectors.iter().enumerate() {
            if i == 0 {
                out.extend_from_slice(&s.describe(table));
            } else {
                out.extend_from_slice(b" (");
                out.extend_from_slice(&s.describe(table));
                out.push(b')');
            }
        }
        out
    }

    /// The flags GETUSER lists.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut flags = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            flags.push("nopass");
        }
        if self.sanitize_payload {
            flags.push("sanitize-payload");
        }
        flags
    }
}

/// Joins ACL SETUSER's words into rules: a selector's words, from the one
/// starting with `(` to the one ending with `)`, become one rule. `Err` holds
/// the index of a selector left open.
pub fn merge_selectors(words: &[Bytes]) -> Result<Vec<Vec<u8>>, usize> {
    let mut out = Vec::new();
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (i, w) in words.iter().enumerate() {
        if let Some((_, sel)) = open.as_mut() {
            sel.push(b' ');
            sel.extend_from_slice(w);
            if w.last() == Some(&b')') {
                out.push(open.take().map(|(_, s)| s).unwrap_or_default());
            }
            continue;
        }
        if w.first() == Some(&b'(') && w.last() != Some(&b')') {
            open = Some((i, w.to_vec()));
            continue;
        }
        out.push(w.to_vec());
    }
    match open {
        Some((i, _)) => Err(i),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(table: &CommandTable, ops: &[&str]) -> Result<UserRules, RuleError> {
        let mut u = UserRules::new(table, false);
        let words: Vec<Bytes> = ops.iter().map(|o| Bytes::from(o.to_string())).collect();
        for op in merge_selectors(&words).map_err(|_| RuleError::Syntax)? {
            u.apply(table, &op, false)?;
        }
        Ok(u)
    }

    fn text(table: &CommandTable, u: &UserRules) -> String {
        String::from_utf8(u.describe(table)).unwrap()
    }

    fn args(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::from(w.to_string())).collect()
    }

    #[test]
    fn a_new_user_is_off_and_allowed_nothing() {
        let t = CommandTable::new();
        let u = rules(&t, &[]).unwrap();
        assert_eq!(text(&t, &u), "off resetchannels -@all");
        assert!(!u.is_unrestricted());
        let get = t.get(b"get").unwrap();
        assert_eq!(u.check(get, &args(&["get", "k"])), Err(Denied::Command));
    }

    #[test]
    fn the_default_user_is_unrestricted_and_described_as_redis_does() {
        let t = CommandTable::new();
        let u = UserRules::default_user(&t);
        assert!(u.is_unrestricted());
        assert_eq!(text(&t, &u), "on nopass ~* &* +@all");
    }

    #[test]
    fn passwords_hash_with_sha256_and_can_be_removed() {
        let t = CommandTable::new();
        let mut u = rules(&t, &["on", ">p"]).unwrap();
        assert_eq!(
            u.passwords,
            ["148de9c5a7a44d19e56cd9ae1a554bf67847afb0c58f6e12fa29ac7ddfca9940"]
        );
        assert!(u.password_ok(b"p"));
        assert!(!u.password_ok(b"q"));
        assert_eq!(u.apply(&t, b"<q", false), Err(RuleError::NoSuchPassword));
        assert_eq!(u.apply(&t, b"#ABC", false), Err(RuleError::BadHash));
        u.apply(&t, b"<p", false).unwrap();
        assert!(!u.password_ok(b"p"));
        u.apply(&t, b"nopass", false).unwrap();
        assert!(u.password_ok(b"anything"));
        u.apply(&t, b"off", false).unwrap();
        assert!(!u.password_ok(b"anything"));
    }

    #[test]
    fn key_patterns_check_read_and_write_by_key_spec() {
        let t = CommandTable::new();
        let u = rules(&t, &["+@all", "%R~r*", "%W~w*", "~rw*"]).unwrap();
        let get = t.get(b"get").unwrap();
        let set = t.get(b"set").unwrap();
        assert_eq!(u.check(get, &args(&["get", "r1"])), Ok(()));
        assert_eq!(
            u.check(set, &args(&["set", "r1", "v"])),
            Err(Denied::Key(1))
        );
        assert_eq!(u.check(set, &args(&["set", "w1", "v"])), Ok(()));
        assert_eq!(u.check(get, &args(&["get", "w1"])), Err(Denied::Key(1)));
        assert_eq!(u.check(get, &args(&["get", "rw1"])), Ok(()));
        assert_eq!(u.selectors[0].describe_keys(), b"%R~r* %W~w* ~rw*");
    }

    #[test]
    fn rule_errors_are_redis_s() {
        let t = CommandTable::new();
        assert_eq!(rules(&t, &["+nosuch"]).err(), Some(RuleError::Unknown));
        assert_eq!(rules(&t, &["+@nosuch"]).err(), Some(RuleError::Unknown));
        assert_eq!(rules(&t, &["bogus"]).err(), Some(RuleError::Syntax));
        assert_eq!(
            rules(&t, &["allkeys", "~x"]).err(),
            Some(RuleError::KeysAfterAll)
        );
        assert_eq!(
            rules(&t, &["allchannels", "&x"]).err(),
            Some(RuleError::ChannelsAfterAll)
        );
        assert_eq!(
            rules(&t, &["+config|get|x"]).err(),
            Some(RuleError::FirstArgOfSubcommand)
        );
        assert_eq!(rules(&t, &["+get|"]).err(), Some(RuleError::Syntax));
        assert_eq!(rules(&t, &["%X~a"]).err(), Some(RuleError::Syntax));
    }

    #[test]
    fn subcommands_and_first_args_are_allowed_alone() {
        let t = CommandTable::new();
        let u = rules(&t, &["+config|get", "+select|0"]).unwrap();
        let cget = t.get(b"config|get").unwrap();
        let cset = t.get(b"config|set").unwrap();
        let select = t.get(b"select").unwrap();
        assert_eq!(u.check(cget, &args(&["config", "get", "x"])), Ok(()));
        assert_eq!(
            u.check(cset, &args(&["config", "set", "x", "y"])),
            Err(Denied::Command)
        );
        assert_eq!(u.check(select, &args(&["select", "0"])), Ok(()));
        assert_eq!(
            u.check(select, &args(&["select", "1"])),
            Err(Denied::Command)
        );
        assert_eq!(
            u.selectors[0].describe_commands(&t),
            "-@all +select|0 +config|get"
        );
    }

    #[test]
    fn categories_describe_as_the_best_fit() {
        let t = CommandTable::new();
        let u = rules(&t, &["+@hash", "+get"]).unwrap();
        assert_eq!(u.selectors[0].describe_commands(&t), "-@all +@hash +get");
        let u = rules(&t, &["+@all", "-@dangerous"]).unwrap();
        assert_eq!(u.selectors[0].describe_commands(&t), "+@all -@dangerous");
        let u = rules(&t, &["+@lock", "+@connection"]).unwrap();
        assert_eq!(
            u.selectors[0].describe_commands(&t),
            "-@all +@connection +@lock"
        );
    }

    #[test]
    fn selectors_allow_on_their_own_and_the_worst_refusal_wins() {
        let t = CommandTable::new();
        let u = rules(&t, &["+get", "~a*", "(+set", "~b*)"]).unwrap();
        let get = t.get(b"get").unwrap();
        let set = t.get(b"set").unwrap();
        assert_eq!(u.check(get, &args(&["get", "a1"])), Ok(()));
        assert_eq!(u.check(set, &args(&["set", "b1", "v"])), Ok(()));
        assert_eq!(
            u.check(set, &args(&["set", "a1", "v"])),
            Err(Denied::Key(1))
        );
        assert_eq!(
            text(&t, &u),
            "off ~a* resetchannels -@all +get (~b* resetchannels -@all +set)"
        );
        assert_eq!(merge_selectors(&args(&["(+get", "~x"])), Err(0));
    }

    #[test]
    fn a_restricted_check_of_any_command_with_odd_arguments_never_panics() {
        let t = CommandTable::new();
        let u = rules(&t, &["+@all", "%R~a*", "&c*", "(+get ~b*)"]).unwrap();
        let odd: &[&[&str]] = &[
            &[],
            &["a"],
            &["-1", "a", "b"],
            &["99999999999", "a"],
            &["2", "a"],
            &["streams", "a", "0"],
            &["store", "a", "get", "#", "by", "x*"],
            &["numkeys", "x", "y", "z", "w"],
        ];
        for cmd in t.all() {
            for tail in odd {
                let mut words: Vec<&str> = cmd.full_name.split('|').collect();
                words.extend_from_slice(tail);
                let _ = u.check(cmd, &args(&words));
            }
        }
    }

    #[test]
    fn channels_match_globs_but_patterns_only_literally() {
        let t = CommandTable::new();
        let u = rules(&t, &["+@all", "&news.*"]).unwrap();
        let publish = t.get(b"publish").unwrap();
        let psub = t.get(b"psubscribe").unwrap();
        assert_eq!(u.check(publish, &args(&["publish", "news.a", "m"])), Ok(()));
        assert_eq!(
            u.check(publish, &args(&["publish", "other", "m"])),
            Err(Denied::Channel(1))
        );
        assert_eq!(u.check(psub, &args(&["psubscribe", "news.*"])), Ok(()));
        assert_eq!(
            u.check(psub, &args(&["psubscribe", "news.a*"])),
            Err(Denied::Channel(1))
        );
    }
}
