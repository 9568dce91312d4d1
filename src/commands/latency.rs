//! LATENCY (DOCTOR, GRAPH, HISTORY, LATEST, RESET, HISTOGRAM, HELP) and the
//! two records it reads, as Redis 7.0 keeps them:
//!
//! - the latency monitor: per event (`command`, `fast-command`,
//!   `expire-cycle`, ...), the latest 160 samples of at least
//!   `latency-monitor-threshold` ms (0: off), one per second (the worst of
//!   that second), and the all-time high;
//! - latency tracking (`latency-tracking`, on by default): every command's
//!   run time in an HdrHistogram (1 ns .. 1 s, 2 significant figures, as
//!   Redis's), which LATENCY HISTOGRAM prints in power-of-two buckets and
//!   INFO `latencystats` as the `latency-tracking-info-percentiles`.
//!
//! A connection gathers its commands' times with its other per-command
//! counters (`session::LocalStats`) and adds them here once per batch.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use hdrhistogram::Histogram;
use parking_lot::Mutex;

use super::{container, flag, CommandResult, CommandSpec, Ctx};
use crate::reply::Reply;

const ADMIN: u32 = flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE;
const ADMIN_ACL: &[&str] = &["@admin", "@slow", "@dangerous"];
const SPECIAL: &[&str] = &[
    "nondeterministic_output",
    "request_policy:all_nodes",
    "response_policy:special",
];

/// The LATENCY container and its subcommands.
pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new("latency", -2, 0, container)
    .acl(&["@slow"])
    .doc(
        "server",
        "2.8.13",
        "A container for latency diagnostics commands.",
    )
    .with_subcommands(&[
        CommandSpec::new("doctor", 2, ADMIN, doctor)
            .acl(ADMIN_ACL)
            .tips(SPECIAL)
            .doc(
                "server",
                "2.8.13",
                "Returns a human-readable latency analysis report.",
            ),
        CommandSpec::new("graph", 3, ADMIN, graph)
            .acl(ADMIN_ACL)
            .tips(SPECIAL)
            .doc("server", "2.8.13", "Returns a latency graph for an event."),
        CommandSpec::new("help", 2, flag::LOADING | flag::STALE, help)
            .acl(&["@slow"])
            .doc(
                "server",
                "2.8.13",
                "Returns helpful text about the different subcommands.",
            ),
        CommandSpec::new("histogram", -2, ADMIN, histogram)
            .acl(ADMIN_ACL)
            .tips(SPECIAL)
            .doc(
                "server",
                "7.0.0",
                "Returns the cumulative distribution of latencies of a subset or all commands.",
            ),
        CommandSpec::new("history", 3, ADMIN, history)
            .acl(ADMIN_ACL)
            .tips(SPECIAL)
            .doc(
                "server",
                "2.8.13",
                "Returns timestamp-latency samples for an event.",
            ),
        CommandSpec::new("latest", 2, ADMIN, latest)
            .acl(ADMIN_ACL)
            .tips(SPECIAL)
            .doc(
                "server",
                "2.8.13",
                "Returns the latest latency samples for all events.",
            ),
        CommandSpec::new("reset", -2, ADMIN, reset)
            .acl(ADMIN_ACL)
            .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"])
            .doc(
                "server",
                "2.8.13",
                "Resets the latency data for one or more events.",
            ),
    ])];

/// Samples kept per event (Redis's `LATENCY_TS_LEN`).
const HISTORY_LEN: usize = 160;

/// One event's record.
#[derive(Debug, Default)]
struct Series {
    /// (unix seconds, ms), oldest first; one per second.
    samples: VecDeque<(u64, u64)>,
    /// The worst ever (since the last reset).
    max: u64,
}

/// The latency monitor and the per-command histograms' settings.
#[derive(Debug)]
pub struct Latency {
    /// `latency-monitor-threshold` in ms (0: the monitor is off).
    threshold: AtomicU64,
    /// `latency-tracking`.
    tracking: AtomicBool,
    /// `latency-tracking-info-percentiles`.
    percentiles: Mutex<Vec<f64>>,
    /// Events in the order they first happened.
    events: Mutex<Vec<(&'static str, Series)>>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            threshold: AtomicU64::new(0),
            tracking: AtomicBool::new(true),
            percentiles: Mutex::new(vec![50.0, 99.0, 99.9]),
            events: Mutex::new(Vec::new()),
        }
    }
}

impl Latency {
    /// Applies the three options.
    pub fn configure(&self, threshold_ms: u64, tracking: bool, percentiles: &[f64]) {
        self.threshold.store(threshold_ms, Ordering::Relaxed);
        self.tracking.store(tracking, Ordering::Relaxed);
        *self.percentiles.lock() = percentiles.to_vec();
    }

    /// Whether commands' times go into their histograms (one relaxed load
    /// per command).
    #[inline]
    pub fn tracking(&self) -> bool {
        self.tracking.load(Ordering::Relaxed)
    }

    /// Records `ms` for `event` if the monitor is on and `ms` reaches its
    /// threshold (one relaxed load when it does not).
    #[inline]
    pub fn observe(&self, event: &'static str, ms: u64, now_s: impl FnOnce() -> u64) {
        let threshold = self.threshold.load(Ordering::Relaxed);
        if threshold != 0 && ms >= threshold {
            self.add_sample(event, ms, now_s());
        }
    }

    fn add_sample(&self, event: &'static str, ms: u64, now_s: u64) {
        let mut events = self.events.lock();
        let at = match events.iter().position(|(e, _)| *e == event) {
            Some(at) => at,
            None => {
                events.push((event, Series::default()));
                events.len() - 1
            }
        };
        let series = &mut events[at].1;
        series.max = series.max.max(ms);
        match series.samples.back_mut() {
            // The same second keeps its worst.
            Some((t, worst)) if *t == now_s => *worst = (*worst).max(ms),
            _ => {
                if series.samples.len() == HISTORY_LEN {
                    series.samples.pop_front();
                }
                series.samples.push_back((now_s, ms));
            }
        }
    }

    /// Forgets `event` (or every event, `None`); the number forgotten.
    pub fn reset(&self, event: Option<&[u8]>) -> usize {
        let mut events = self.events.lock();
        let before = events.len();
        events
            .retain(|(e, _)| event.is_some_and(|asked| !asked.eq_ignore_ascii_case(e.as_bytes())));
        before - events.len()
    }
}

/// A command's histogram: Redis's range (1 ns .. 1 s) and precision.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 1_000_000_000, 2).expect("valid HdrHistogram bounds")
}

/// Adds a run of `usec` µs to `h` (in ns, clamped to the range as Redis's
/// `updateCommandLatencyHistogram`).
pub fn record(h: &mut Histogram<u64>, usec: u64) {
    let ns = usec.saturating_mul(1000).clamp(1, 1_000_000_000);
    h.saturating_record(ns);
}

/// A percentile as Redis's `%f` then `trimDoubleString` print it (`99.9`).
fn percentile_text(p: f64) -> String {
    let s = format!("{p:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Parses `latency-tracking-info-percentiles` (a lone empty word: none),
/// with Redis's errors.
pub fn parse_percentiles(words: &[String]) -> Result<Vec<f64>, String> {
    if let [only] = words {
        if only.is_empty() {
            return Ok(Vec::new());
        }
    }
    // One word of several (as CONFIG GET shows the value) or several words
    // (a config-file line) alike.
    words
        .iter()
        .flat_map(|w| w.split_whitespace())
        .map(|w| {
            let p = super::parse_float(w.as_bytes())
                .filter(|p| p.is_finite())
                .ok_or("Invalid latency-tracking-info-percentiles parameters")?;
            if !(0.0..=100.0).contains(&p) {
                return Err(
                    "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]",
                );
            }
            Ok(p)
        })
        .collect::<Result<_, _>>()
        .map_err(String::from)
}

/// The option's value as CONFIG GET shows it.
pub fn percentiles_text(percentiles: &[f64]) -> String {
    percentiles
        .iter()
        .map(|p| percentile_text(*p))
        .collect::<Vec<_>>()
        .join(" ")
}

/// INFO `latencystats`: one line per command with a histogram.
pub fn info_section(shared: &crate::server::Shared, out: &mut String) {
    if !shared.latency.tracking() {
        return;
    }
    let percentiles = shared.latency.percentiles.lock().clone();
    for c in shared.commands.all() {
        let h = c.stats.latency.lock();
        let Some(h) = h.as_ref().filter(|h| !h.is_empty()) else {
            continue;
        };
        let _ = write!(out, "latency_percentiles_usec_{}:", c.full_name);
        for (i, p) in percentiles.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "p{}={:.3}",
                percentile_text(*p),
                value_at_percentile(h, *p) as f64 / 1000.0
            );
        }
        out.push_str("\r\n");
    }
}

/// HdrHistogram's value at a percentile (`hdr_value_at_percentile`): the
/// highest value equivalent to the one holding that share of the count.
fn value_at_percentile(h: &Histogram<u64>, p: f64) -> u64 {
    let wanted = ((p.min(100.0) / 100.0 * h.len() as f64) + 0.5) as u64;
    let wanted = wanted.max(1);
    let mut seen = 0;
    for v in h.iter_recorded() {
        seen += v.count_at_value();
        if seen >= wanted {
            let at = h.highest_equivalent(v.value_iterated_to());
            return if p == 0.0 {
                h.lowest_equivalent(at)
            } else {
                h.highest_equivalent(at)
            };
        }
    }
    0
}

/// One command's `calls` and `histogram_usec`, as LATENCY HISTOGRAM answers
/// (HdrHistogram's log iteration from 1024 ns by powers of two, as Redis
/// walks it): at each level, the count of runs up to the highest value
/// equivalent to the level, labelled with that value in µs; a level that
/// adds nothing is left out.
fn command_cdf(h: &Histogram<u64>) -> Reply {
    let mut buckets = Vec::new();
    let mut previous = 0;
    let mut level: u64 = 1024;
    while previous < h.len() && level <= 2 * h.high() {
        let upto = h.highest_equivalent(level);
        let cumulative = h.count_between(0, upto);
        if cumulative > previous {
            buckets.push((
                Reply::Int((upto / 1000) as i64),
                Reply::Int(cumulative as i64),
            ));
        }
        previous = cumulative;
        level *= 2;
    }
    Reply::Map(vec![
        (
            Reply::Bulk(Bytes::from_static(b"calls")),
            Reply::Int(h.len() as i64),
        ),
        (
            Reply::Bulk(Bytes::from_static(b"histogram_usec")),
            Reply::Map(buckets),
        ),
    ])
}

fn histogram(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let table = &ctx.shared.commands;
    let wanted = |name: &str| {
        args.len() == 2
            || args[2..].iter().any(|a| {
                let a = String::from_utf8_lossy(a).to_ascii_lowercase();
                // A container's name asks for its subcommands too.
                name == a || name.strip_prefix(&a).is_some_and(|r| r.starts_with('|'))
            })
    };
    let mut out = Vec::new();
    for c in table.all() {
        if !wanted(&c.full_name) {
            continue;
        }
        let h = c.stats.latency.lock();
        if let Some(h) = h.as_ref().filter(|h| !h.is_empty()) {
            out.push((
                Reply::Bulk(Bytes::from(c.full_name.clone())),
                command_cdf(h),
            ));
        }
    }
    Ok(Reply::Map(out))
}

fn history(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let events = ctx.shared.latency.events.lock();
    let samples = events
        .iter()
        .find(|(e, _)| e.as_bytes() == &args[2][..])
        .map(|(_, s)| {
            s.samples
                .iter()
                .map(|&(t, ms)| Reply::Array(vec![Reply::Int(t as i64), Reply::Int(ms as i64)]))
                .collect()
        })
        .unwrap_or_default();
    Ok(Reply::Array(samples))
}

fn latest(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    let events = ctx.shared.latency.events.lock();
    Ok(Reply::Array(
        events
            .iter()
            .map(|(e, s)| {
                let (t, ms) = s.samples.back().copied().unwrap_or_default();
                Reply::Array(vec![
                    Reply::Bulk(Bytes::from_static(e.as_bytes())),
                    Reply::Int(t as i64),
                    Reply::Int(ms as i64),
                    Reply::Int(s.max as i64),
                ])
            })
            .collect(),
    ))
}

fn reset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let latency = &ctx.shared.latency;
    let n = if args.len() == 2 {
        latency.reset(None)
    } else {
        args[2..].iter().map(|e| latency.reset(Some(e))).sum()
    };
    Ok(Reply::Int(n as i64))
}

fn graph(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let events = ctx.shared.latency.events.lock();
    let Some((event, series)) = events.iter().find(|(e, _)| e.as_bytes() == &args[2][..]) else {
        return Err(crate::error::CommandError::err(format!(
            "No samples available for event '{}'",
            String::from_utf8_lossy(&args[2])
        )));
    };
    let now = ctx.shared.clock.now_ms() / 1000;
    Ok(Reply::Verbatim(Bytes::from(render_graph(
        event, series, now,
    ))))
}

/// Columns of a LATENCY GRAPH.
const GRAPH_COLS: usize = 80;
/// Rows of its bars.
const GRAPH_ROWS: usize = 4;

/// LATENCY GRAPH's text: a title, a rule, and Redis's filled sparkline of
/// the samples, each labelled with how long ago it was (`12s`, `3m`, ...)
/// written downwards under it.
fn render_graph(event: &str, series: &Series, now_s: u64) -> String {
    let values: Vec<u64> = series.samples.iter().map(|s| s.1).collect();
    let labels: Vec<String> = series
        .samples
        .iter()
        .map(|&(t, _)| {
            let ago = now_s.saturating_sub(t);
            match ago {
                a if a < 60 => format!("{a}s"),
                a if a < 3600 => format!("{}m", a / 60),
                a if a < 86_400 => format!("{}h", a / 3600),
                a => format!("{}d", a / 86_400),
            }
        })
        .collect();
    let low = values.iter().copied().min().unwrap_or(0);
    let high = values.iter().copied().max().unwrap_or(0);
    let mut out = format!(
        "{event} - high {high} ms, low {low} ms (all time high {} ms)\n",
        series.max
    );
    out.push_str(&"-".repeat(GRAPH_COLS));
    out.push('\n');
    let mut first = true;
    for start in (0..values.len()).step_by(GRAPH_COLS) {
        if !first {
            out.push('\n');
        }
        first = false;
        let end = (start + GRAPH_COLS).min(values.len());
        sparkline(
            &mut out,
            &values[start..end],
            &labels[start..end],
            low,
            high,
        );
    }
    out
}

/// Redis's filled sparkline over `values` (scaled between the whole
/// sequence's `low` and `high`), then the labels one character a row.
fn sparkline(out: &mut String, values: &[u64], labels: &[String], low: u64, high: u64) {
    const FILL: &[u8] = b"_o#";
    let steps = (FILL.len() * GRAPH_ROWS) as i64;
    let range = match high - low {
        0 => 1.0,
        r => r as f64,
    };
    let step = |v: u64| -> i64 {
        let s = ((((v - low) as f64) * steps as f64) as i64 as f64 / range) as i64;
        s.clamp(0, steps - 1)
    };
    for row in 0..GRAPH_ROWS as i64 {
        let line: String = values
            .iter()
            .map(|&v| {
                let at = step(v) - (GRAPH_ROWS as i64 - row - 1) * FILL.len() as i64;
                match at {
                    a if a >= FILL.len() as i64 => '|',
                    a if a >= 0 => FILL[a as usize] as char,
                    _ => ' ',
                }
            })
            .collect();
        out.push_str(&line);
        out.push('\n');
    }
    // One blank row above the labels, then a row per label character.
    let longest = labels.iter().map(String::len).max().unwrap_or(0);
    if !labels.is_empty() {
        out.push_str(&" ".repeat(values.len()));
        out.push('\n');
    }
    for row in 0..longest {
        let line: String = labels
            .iter()
            .map(|l| l.as_bytes().get(row).map_or(' ', |&b| b as char))
            .collect();
        out.push_str(&line);
        out.push('\n');
    }
}

/// What the doctor advises, each at most once, in Redis's order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Advice {
    SlowlogEnable,
    SlowlogTuning,
    SlowlogInspect,
    Scheduler,
    LocalDisk,
    Ssd,
    DataWriteback,
    DiskContention,
    NoAppendfsync,
    RelaxFsync,
    WriteLoadInfo,
    LargeObjects,
    MassEviction,
}

/// Which advice an event calls for.
fn advice_for(event: &str, slowlog_us: i64, threshold_ms: u64) -> Vec<Advice> {
    use Advice::*;
    match event {
        "command" => {
            let mut a = vec![SlowlogInspect, LargeObjects];
            if slowlog_us < 0 {
                a.push(SlowlogEnable);
            } else if (slowlog_us / 1000) as u64 > threshold_ms {
                a.push(SlowlogTuning);
            }
            a
        }
        "fast-command" => vec![Scheduler],
        "aof-write-pending-fsync" => vec![LocalDisk, DiskContention, Ssd, DataWriteback],
        "aof-write-active-child" => vec![NoAppendfsync, DataWriteback, Ssd],
        "aof-write-alone" => vec![LocalDisk, DataWriteback, Ssd],
        "aof-fsync-always" => vec![RelaxFsync],
        "aof-fstat" | "rdb-unlink-temp-file" => vec![DiskContention, LocalDisk],
        "aof-rewrite-diff-write" | "aof-rename" => {
            vec![WriteLoadInfo, DataWriteback, Ssd, LocalDisk]
        }
        // Redis adds advice on `hz`, an option latchkey does not have.
        "expire-cycle" => vec![LargeObjects],
        "eviction-del" => vec![LargeObjects],
        "eviction-cycle" => vec![MassEviction],
        _ => Vec::new(),
    }
}

fn doctor(ctx: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    let (slowlog_us, fsync_always) = {
        let c = ctx.shared.config.read();
        (c.slowlog_log_slower_than, c.appendfsync == "always")
    };
    let threshold = ctx.shared.latency.threshold.load(Ordering::Relaxed);
    let now = ctx.shared.clock.now_ms() / 1000;
    let events = ctx.shared.latency.events.lock();
    Ok(Reply::Verbatim(Bytes::from(doctor_report(
        &events,
        threshold,
        slowlog_us,
        fsync_always,
        now,
    ))))
}

fn doctor_report(
    events: &[(&'static str, Series)],
    threshold: u64,
    slowlog_us: i64,
    fsync_always: bool,
    now_s: u64,
) -> String {
    if events.is_empty() && threshold == 0 {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".into();
    }
    let mut report = String::new();
    let mut advice = Vec::new();
    for (n, (event, series)) in events.iter().enumerate() {
        if n == 0 {
            report.push_str("Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n");
        }
        let samples = series.samples.len() as u64;
        let sum: u64 = series.samples.iter().map(|s| s.1).sum();
        let avg = sum.checked_div(samples).unwrap_or(0);
        let mad = series
            .samples
            .iter()
            .map(|s| s.1.abs_diff(avg))
            .sum::<u64>()
            .checked_div(samples)
            .unwrap_or(0);
        let oldest = series.samples.iter().map(|s| s.0).min().unwrap_or(now_s);
        let period = now_s.saturating_sub(oldest).max(1);
        let _ = writeln!(
            report,
            "{}. {event}: {samples} latency spikes (average {avg}ms, mean deviation {mad}ms, period {:.2} sec). Worst all time event {}ms.",
            n + 1,
            period as f64 / samples.max(1) as f64,
            series.max
        );
        advice.extend(advice_for(event, slowlog_us, threshold));
    }
    advice.sort();
    advice.dedup();
    if events.is_empty() && advice.is_empty() {
        report.push_str("Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n");
        return report;
    }
    if advice.is_empty() {
        report.push_str("\nWhile there are latency events logged, I'm not able to suggest any easy fix. Please use the Redis community to get some help, providing this report in your help request.\n");
        return report;
    }
    report.push_str("\nI have a few advices for you:\n\n");
    for a in advice {
        let line: String = match a {
            Advice::SlowlogEnable => format!("- There are latency issues with potentially slow commands you are using. Try to enable the Slow Log Redis feature using the command 'CONFIG SET slowlog-log-slower-than {}'. If the Slow log is disabled Redis is not able to log slow commands execution for you.\n", threshold * 1000),
            Advice::SlowlogTuning => format!("- Your current Slow Log configuration only logs events that are slower than your configured latency monitor threshold. Please use 'CONFIG SET slowlog-log-slower-than {}'.\n", threshold * 1000),
            Advice::SlowlogInspect => "- Check your Slow Log to understand what are the commands you are running which are too slow to execute. Please check https://redis.io/commands/slowlog for more information.\n".into(),
            Advice::Scheduler => "- The system is slow to execute Redis code paths not containing system calls. This usually means the system does not provide Redis CPU time to run for long periods. You should try to:\n  1) Lower the system load.\n  2) Use a computer / VM just for Redis if you are running other software in the same system.\n  3) Check if you have a \"noisy neighbour\" problem.\n  4) Check with 'redis-cli --intrinsic-latency 100' what is the intrinsic latency in your system.\n  5) Check if the problem is allocator-related by recompiling Redis with MALLOC=libc, if you are using Jemalloc. However this may create fragmentation problems.\n".into(),
            Advice::LocalDisk => "- It is strongly advised to use local disks for persistence, especially if you are using AOF. Remote disks provided by platform-as-a-service providers are known to be slow.\n".into(),
            Advice::Ssd => "- SSD disks are able to reduce fsync latency, and total time needed for snapshotting and AOF log rewriting (resulting in smaller memory usage). With extremely high write load SSD disks can be a good option. However Redis should perform reasonably with high load using normal disks. Use this advice as a last resort.\n".into(),
            Advice::DataWriteback => "- Mounting ext3/4 filesystems with data=writeback can provide a performance boost compared to data=ordered, however this mode of operation provides less guarantees, and sometimes it can happen that after a hard crash the AOF file will have a half-written command at the end and will require to be repaired before Redis restarts.\n".into(),
            Advice::DiskContention => "- Try to lower the disk contention. This is often caused by other disk intensive processes running in the same computer (including other Redis instances).\n".into(),
            Advice::NoAppendfsync => "- Assuming from the point of view of data safety this is viable in your environment, you could try to enable the 'no-appendfsync-on-rewrite' option, so that fsync will not be performed while there is a child rewriting the AOF file or producing an RDB file (the moment where there is high disk contention).\n".into(),
            Advice::RelaxFsync if fsync_always => "- Your fsync policy is set to 'always'. It is very hard to get good performances with such a setup, if possible try to relax the fsync policy to 'onesec'.\n".into(),
            Advice::RelaxFsync => String::new(),
            Advice::WriteLoadInfo => "- Latency during the AOF atomic rename operation or when the final difference is flushed to the AOF file at the end of the rewrite, sometimes is caused by very high write load, causing the AOF buffer to get very large. If possible try to send less commands to accomplish the same work, or use Lua scripts to group multiple operations into a single EVALSHA call.\n".into(),
            Advice::LargeObjects => "- Deleting, expiring or evicting (because of maxmemory policy) large objects is a blocking operation. If you have very large objects that are often deleted, expired, or evicted, try to fragment those objects into multiple smaller objects.\n".into(),
            Advice::MassEviction => "- Sudden changes to the 'maxmemory' setting via 'CONFIG SET', or allocation of large objects via sets or sorted sets intersections, STORE option of SORT, Redis Cluster large keys migrations (RESTORE command), may create sudden memory pressure forcing the server to block trying to evict keys. \n".into(),
        };
        report.push_str(&line);
    }
    report
}

fn help(_: &mut Ctx<'_>, _: &[Bytes]) -> CommandResult {
    Ok(super::help_reply(
        "LATENCY",
        &[
            "DOCTOR",
            "    Return a human readable latency analysis report.",
            "GRAPH <event>",
            "    Return an ASCII latency graph for the <event> class.",
            "HISTORY <event>",
            "    Return time-latency samples for the <event> class.",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
            "HISTOGRAM [COMMAND ...]",
            "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
            "    If no commands are specified then all histograms are replied.",
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_keeps_its_worst_and_the_history_is_bounded() {
        let l = Latency::default();
        l.observe("command", 500, || 1);
        assert!(l.events.lock().is_empty(), "the monitor is off at 0");
        l.configure(10, true, &[50.0]);
        l.observe("command", 9, || 1);
        assert!(l.events.lock().is_empty(), "below the threshold");
        l.observe("command", 12, || 1);
        l.observe("command", 30, || 1);
        l.observe("command", 11, || 1);
        l.observe("command", 15, || 2);
        {
            let e = l.events.lock();
            assert_eq!(e[0].1.samples, [(1, 30), (2, 15)]);
            assert_eq!(e[0].1.max, 30);
        }
        for t in 3..400 {
            l.observe("command", 10, || t);
        }
        assert_eq!(l.events.lock()[0].1.samples.len(), HISTORY_LEN);
        l.observe("fast-command", 10, || 1);
        assert_eq!(l.reset(Some(b"COMMAND")), 1);
        assert_eq!(l.reset(None), 1);
    }

    #[test]
    fn buckets_and_percentiles_follow_hdr_histogram() {
        let mut h = new_histogram();
        for us in [1, 2, 3, 5, 5, 1000] {
            record(&mut h, us);
        }
        record(&mut h, 0);
        let Reply::Map(m) = command_cdf(&h) else {
            panic!()
        };
        let Reply::Map(b) = &m[1].1 else { panic!() };
        let pairs: Vec<(i64, i64)> = b
            .iter()
            .map(|(k, v)| match (k, v) {
                (Reply::Int(k), Reply::Int(v)) => (*k, *v),
                _ => panic!(),
            })
            .collect();
        // 0 µs is clamped to 1 ns; 3 µs lands at 4, 5 µs at 8, 1000 µs at the
        // 2^20 ns level, whose highest equivalent value is 1056767 ns.
        assert_eq!(pairs, [(1, 2), (2, 3), (4, 4), (8, 6), (1056, 7)]);
        // 5 µs is 5000 ns, held in the 4992..5023 step of 2 significant figures.
        assert_eq!(value_at_percentile(&h, 50.0), 3007);
        assert_eq!(value_at_percentile(&h, 100.0), 1_003_519);
        assert_eq!(percentile_text(99.9), "99.9");
        assert_eq!(percentile_text(50.0), "50");
    }

    #[test]
    fn percentiles_parse_as_redis_parses_them() {
        let w = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_percentiles(&w(&["50", "99.9"])).unwrap(),
            [50.0, 99.9]
        );
        assert!(parse_percentiles(&w(&[""])).unwrap().is_empty());
        assert_eq!(parse_percentiles(&w(&["50 99.9"])).unwrap(), [50.0, 99.9]);
        assert!(parse_percentiles(&w(&["101"]))
            .unwrap_err()
            .contains("[0.0,100.0]"));
        assert!(parse_percentiles(&w(&["x"]))
            .unwrap_err()
            .starts_with("Invalid"));
    }

    #[test]
    fn the_graph_draws_redis_bars_and_labels() {
        let mut s = Series::default();
        s.samples.extend([(100, 10), (130, 40), (160, 20)]);
        s.max = 40;
        let g = render_graph("command", &s, 170);
        let lines: Vec<&str> = g.lines().collect();
        assert_eq!(
            lines[0],
            "command - high 40 ms, low 10 ms (all time high 40 ms)"
        );
        assert_eq!(lines[1].len(), 80);
        // Bars: 10 is the low (step 0), 40 the top, 20 a third of the way.
        assert_eq!(lines[2..6], [" # ", " | ", " |o", "_||"]);
        // A blank row, then the ages written downwards.
        assert_eq!(lines[6..], ["   ", "141", "m00", " ss"]);
    }
}
