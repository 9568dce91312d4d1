//! `GET /metrics`: the server's figures in Prometheus's text format 0.0.4.
//!
//! Names follow Prometheus's conventions: a `latchkey_` prefix, base units
//! (`_seconds`, `_bytes`), `_total` on counters, HELP and TYPE before each
//! family. Everything is read at scrape time from the counters INFO reads
//! (`figures`, the command table's stats, the lock stats).

use std::fmt::{Display, Write};
use std::sync::atomic::Ordering;

use super::figures;
use super::HistogramSnapshot;
use crate::server::Shared;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition text, built into one string.
struct Exposition(String);

impl Exposition {
    /// HELP and TYPE lines of a family.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// One sample line.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// A histogram of milliseconds, exposed in seconds.
    fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for &(bound, count) in &h.buckets {
            let le = seconds(bound).to_string();
            self.sample(&bucket, &[("le", &le)], count);
        }
        self.sample(&bucket, &[("le", "+Inf")], h.count);
        self.sample(&format!("{name}_sum"), &[], seconds(h.sum_ms));
        self.sample(&format!("{name}_count"), &[], h.count);
    }
}

/// Milliseconds as seconds (`250` → `0.25`).
fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// A HELP text: `\` and newlines escaped.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A label value: `\`, `"` and newlines escaped.
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole exposition for `shared`, now.
pub fn render(shared: &Shared) -> String {
    let mut x = Exposition(String::with_capacity(16 * 1024));
    server(shared, &mut x);
    commands(shared, &mut x);
    keyspace(shared, &mut x);
    locks(shared, &mut x);
    x.0
}

fn server(shared: &Shared, x: &mut Exposition) {
    x.single(
        "latchkey_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        shared.started.elapsed().as_secs_f64(),
    );
    x.single(
        "latchkey_connected_clients",
        "gauge",
        "Client connections open now.",
        shared.clients.len(),
    );
    x.single(
        "latchkey_blocked_clients",
        "gauge",
        "Clients blocked in a command (a lock wait, BLPOP, ...) now.",
        figures::blocked_clients(shared),
    );
    x.single(
        "latchkey_memory_used_bytes",
        "gauge",
        "Bytes allocated by the server (used_memory).",
        shared.memory.used_now(),
    );
    x.single(
        "latchkey_evicted_keys_total",
        "counter",
        "Keys evicted under maxmemory.",
        shared.memory.evicted.load(Ordering::Relaxed),
    );
    let (net_in, net_out) = figures::net_bytes(shared);
    x.single(
        "latchkey_net_input_bytes_total",
        "counter",
        "Bytes read from clients.",
        net_in,
    );
    x.single(
        "latchkey_net_output_bytes_total",
        "counter",
        "Bytes written to clients.",
        net_out,
    );
    x.single(
        "latchkey_expired_keys_total",
        "counter",
        "Keys removed because their TTL ran out.",
        figures::expired_keys(shared),
    );
}

fn commands(shared: &Shared, x: &mut Exposition) {
    x.single(
        "latchkey_commands_processed_total",
        "counter",
        "Commands processed.",
        shared.stats.commands_processed.load(Ordering::Relaxed),
    );
    let used: Vec<_> = shared
        .commands
        .all()
        .iter()
        .map(|c| {
            (
                c.full_name.as_str(),
                c.stats.calls.load(Ordering::Relaxed),
                c.stats.usec.load(Ordering::Relaxed),
            )
        })
        .filter(|&(_, calls, _)| calls > 0)
        .collect();
    x.family(
        "latchkey_command_calls_total",
        "counter",
        "Calls of each command (INFO commandstats).",
    );
    for &(name, calls, _) in &used {
        x.sample("latchkey_command_calls_total", &[("cmd", name)], calls);
    }
    x.family(
        "latchkey_command_duration_seconds_total",
        "counter",
        "Time spent running each command (INFO commandstats usec).",
    );
    for &(name, _, usec) in &used {
        x.sample(
            "latchkey_command_duration_seconds_total",
            &[("cmd", name)],
            usec as f64 / 1e6,
        );
    }
}

fn keyspace(shared: &Shared, x: &mut Exposition) {
    let (hits, misses) = figures::keyspace_lookups(shared);
    x.single(
        "latchkey_keyspace_hits_total",
        "counter",
        "Key lookups that found the key.",
        hits,
    );
    x.single(
        "latchkey_keyspace_misses_total",
        "counter",
        "Key lookups that found no key.",
        misses,
    );
    let sizes = figures::db_sizes(shared);
    x.family("latchkey_db_keys", "gauge", "Keys in each database.");
    for (i, s) in sizes.iter().enumerate() {
        x.sample("latchkey_db_keys", &[("db", &i.to_string())], s.keys);
    }
    x.family(
        "latchkey_db_expiring_keys",
        "gauge",
        "Keys with a TTL in each database.",
    );
    for (i, s) in sizes.iter().enumerate() {
        x.sample(
            "latchkey_db_expiring_keys",
            &[("db", &i.to_string())],
            s.expires,
        );
    }
}

fn locks(shared: &Shared, x: &mut Exposition) {
    let locks = shared.keyspace.locks();
    let s = &locks.stats;
    let now = figures::lock_counts(shared);
    x.family(
        "latchkey_lock_acquisitions_total",
        "counter",
        "LOCK.ACQUIRE outcomes: granted at once, granted after waiting, or the wait ran out.",
    );
    for (outcome, n) in [
        ("immediate", &s.acquired_immediately),
        ("after_wait", &s.acquired_after_wait),
        ("timed_out", &s.wait_timeouts),
    ] {
        x.sample(
            "latchkey_lock_acquisitions_total",
            &[("outcome", outcome)],
            n.load(Ordering::Relaxed),
        );
    }
    x.histogram(
        "latchkey_lock_wait_seconds",
        "Time each acquire waited: 0 when granted at once, else until its grant or the end of its wait.",
        &s.wait_ms.snapshot(),
    );
    x.histogram(
        "latchkey_lock_hold_seconds",
        "Time each hold lasted, from its grant to its release, lease expiry, session release or deletion.",
        &s.hold_ms.snapshot(),
    );
    x.single("latchkey_locks", "gauge", "Lock keys now.", now.locks);
    x.single(
        "latchkey_lock_holders",
        "gauge",
        "Holds of locks now.",
        now.holders,
    );
    x.single(
        "latchkey_lock_waiters",
        "gauge",
        "Clients queued for a lock now.",
        now.waiters,
    );
    let counters = [
        (
            "latchkey_lock_lease_expiries_total",
            "Holds lost because their lease ran out.",
            &s.lease_expiries,
        ),
        (
            "latchkey_lock_session_releases_total",
            "SESSION holds released because their connection closed.",
            &s.session_releases,
        ),
        (
            "latchkey_lock_extends_total",
            "Leases extended by their holder (LOCK.EXTEND).",
            &s.extends,
        ),
        (
            "latchkey_lock_releases_refused_total",
            "LOCK.RELEASE calls refused because the caller did not hold the lock.",
            &s.release_refused,
        ),
    ];
    for (name, help, n) in counters {
        x.single(name, "counter", help, n.load(Ordering::Relaxed));
    }
    x.single(
        "latchkey_lock_fencing_token_high_water",
        "gauge",
        "The greatest fencing token issued so far.",
        locks.high_water(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped_as_the_format_asks() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape_help("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");
    }

    #[test]
    fn a_histogram_is_cumulative_with_inf_sum_and_count_in_seconds() {
        let mut x = Exposition(String::new());
        let h = HistogramSnapshot {
            buckets: vec![(0, 2), (250, 3)],
            count: 4,
            sum_ms: 1_500,
        };
        x.histogram("t_seconds", "help", &h);
        assert_eq!(
            x.0,
            "# HELP t_seconds help\n# TYPE t_seconds histogram\n\
             t_seconds_bucket{le=\"0\"} 2\nt_seconds_bucket{le=\"0.25\"} 3\n\
             t_seconds_bucket{le=\"+Inf\"} 4\nt_seconds_sum 1.5\nt_seconds_count 4\n"
        );
    }
}
