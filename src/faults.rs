//! Faults a test injects over the wire (DEBUG FAULT, behind
//! `enable-debug-command`): the next N commands of a name (or any) answer a
//! given error, have their replies delayed, or close the connection; every
//! client can be dropped at once; new connections can be refused for a while.
//! While no rule is set, a command pays one relaxed load.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// What a matched command gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// This error line (`ERR ...`, `LOADING ...`) instead of running.
    Error(String),
    /// It runs; its reply waits this long.
    Delay(Duration),
    /// The connection is closed without a reply.
    Close,
}

#[derive(Debug, Clone)]
struct Rule {
    /// Lower-case command name; `None` for any.
    command: Option<String>,
    remaining: u64,
    action: Action,
}

/// The server's fault rules.
#[derive(Debug)]
pub struct Faults {
    armed: AtomicBool,
    rules: Mutex<Vec<Rule>>,
    /// New connections are refused until then (ms since `epoch`; 0: none).
    refuse_until_ms: AtomicU64,
    epoch: Instant,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            armed: AtomicBool::new(false),
            rules: Mutex::new(Vec::new()),
            refuse_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl Faults {
    /// Adds a rule: the next `count` commands named `command` (any with
    /// `None`) get `action`. Rules apply in the order added.
    pub fn add(&self, command: Option<&[u8]>, count: u64, action: Action) {
        if count == 0 {
            return;
        }
        let command = command.map(|c| String::from_utf8_lossy(c).to_ascii_lowercase());
        self.rules.lock().push(Rule {
            command,
            remaining: count,
            action,
        });
        self.armed.store(true, Ordering::Release);
    }

    /// The action for a command named `name` (lower case, `container|sub`
    /// matched by its container's name too), counting it; `None` when no
    /// rule matches. One relaxed load while no rule is set.
    #[inline]
    pub fn take(&self, name: &str) -> Option<Action> {
        if !self.armed.load(Ordering::Relaxed) {
            return None;
        }
        self.take_slow(name)
    }

    fn take_slow(&self, name: &str) -> Option<Action> {
        let top = name.split('|').next().unwrap_or(name);
        let mut rules = self.rules.lock();
        let at = rules
            .iter()
            .position(|r| r.command.as_deref().is_none_or(|c| c == name || c == top))?;
        let rule = &mut rules[at];
        rule.remaining -= 1;
        let action = rule.action.clone();
        if rule.remaining == 0 {
            rules.remove(at);
        }
        if rules.is_empty() {
            self.armed.store(false, Ordering::Release);
        }
        Some(action)
    }

    /// Refuses new connections for `d`.
    pub fn refuse_for(&self, d: Duration) {
        let until = (self.epoch.elapsed() + d).as_millis() as u64;
        self.refuse_until_ms.store(until.max(1), Ordering::Release);
    }

    /// Whether a new connection is to be refused now.
    pub fn refusing(&self) -> bool {
        let until = self.refuse_until_ms.load(Ordering::Acquire);
        until != 0 && (self.epoch.elapsed().as_millis() as u64) < until
    }

    /// Clears every rule and the refusal.
    pub fn clear(&self) {
        self.rules.lock().clear();
        self.armed.store(false, Ordering::Release);
        self.refuse_until_ms.store(0, Ordering::Release);
    }

    /// The rules set, for DEBUG FAULT LIST: (command or `*`, remaining,
    /// action).
    pub fn list(&self) -> Vec<(String, u64, Action)> {
        self.rules
            .lock()
            .iter()
            .map(|r| {
                (
                    r.command.clone().unwrap_or_else(|| "*".into()),
                    r.remaining,
                    r.action.clone(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_count_down_match_names_and_clear() {
        let f = Faults::default();
        assert_eq!(f.take("get"), None);
        f.add(Some(b"GET"), 2, Action::Error("ERR boom".into()));
        f.add(None, 1, Action::Close);
        assert_eq!(f.take("set"), Some(Action::Close), "any command");
        assert_eq!(f.take("set"), None);
        assert_eq!(f.take("get"), Some(Action::Error("ERR boom".into())));
        assert_eq!(f.list().len(), 1);
        assert_eq!(f.take("get"), Some(Action::Error("ERR boom".into())));
        assert_eq!(f.take("get"), None);
        f.add(Some(b"client"), 1, Action::Close);
        assert_eq!(f.take("client|list"), Some(Action::Close));
        f.refuse_for(Duration::from_secs(60));
        assert!(f.refusing());
        f.add(None, 5, Action::Close);
        f.clear();
        assert!(!f.refusing());
        assert_eq!(f.take("get"), None);
    }
}
