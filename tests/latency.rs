//! LATENCY with real timings: the monitor's samples for a slow command, the
//! graph and the doctor over them, per-command histograms (LATENCY
//! HISTOGRAM, INFO latencystats) and `latency-tracking`. (Texts, errors and
//! the options are in redis-tests/latency.txt, recorded from redis-server.)

mod common;

use common::{cmd, connect, start};
use redis::Value;

/// A script that runs for at least `ms` milliseconds of server time.
fn spin(ms: u64) -> String {
    format!(
        "local t = redis.call('TIME') local start = t[1] * 1000000 + t[2] \
         while true do t = redis.call('TIME') \
         if t[1] * 1000000 + t[2] - start >= {} then break end end return 1",
        ms * 1000
    )
}

fn text(v: Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8(b).unwrap(),
        Value::VerbatimString { text, .. } => text,
        Value::SimpleString(s) => s,
        v => panic!("{v:?}"),
    }
}

#[tokio::test]
async fn a_slow_command_is_sampled_graphed_and_diagnosed() {
    let server = start().await;
    let mut con = connect(&server).await;
    // Nothing yet: the doctor has no spike to talk about. (The threshold is
    // 10 s here: on a loaded machine a command of the test's own may take
    // 5 ms, and would be a spike at the threshold used below.)
    cmd(
        &mut con,
        &["CONFIG", "SET", "latency-monitor-threshold", "10000"],
    )
    .await
    .unwrap();
    let report = text(cmd(&mut con, &["LATENCY", "DOCTOR"]).await.unwrap());
    assert!(
        report.starts_with("Dave, no latency spike was observed"),
        "{report}"
    );
    cmd(
        &mut con,
        &["CONFIG", "SET", "latency-monitor-threshold", "5"],
    )
    .await
    .unwrap();
    cmd(&mut con, &["EVAL", &spin(20), "0"]).await.unwrap();
    cmd(&mut con, &["EVAL", &spin(8), "0"]).await.unwrap();
    let Value::Array(latest) = cmd(&mut con, &["LATENCY", "LATEST"]).await.unwrap() else {
        panic!()
    };
    // The script's own TIME calls are sampled too (as `fast-command`), if a
    // busy machine made one slow.
    let fields = latest
        .iter()
        .find_map(|e| match e {
            Value::Array(f) if f[0] == Value::BulkString(b"command".to_vec()) => Some(f),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{latest:?}"));
    let (Value::Int(at), Value::Int(last), Value::Int(max)) = (&fields[1], &fields[2], &fields[3])
    else {
        panic!("{fields:?}")
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - at).abs() <= 2, "sampled at {at}, now {now}");
    assert!(*max >= 20, "the worst was at least 20 ms: {max}");
    // Both ran within a second or two: one sample a second keeps the worst.
    assert!(*last >= 8 && last <= max);
    let Value::Array(history) = cmd(&mut con, &["LATENCY", "HISTORY", "command"])
        .await
        .unwrap()
    else {
        panic!()
    };
    // One sample a second: the two scripts', and perhaps one more if the
    // machine made one of the test's other commands slow.
    assert!((1..=3).contains(&history.len()), "{history:?}");
    // A fast command that stays under the threshold is not sampled.
    cmd(&mut con, &["SET", "k", "v"]).await.unwrap();
    let graph = text(
        cmd(&mut con, &["LATENCY", "GRAPH", "command"])
            .await
            .unwrap(),
    );
    let mut lines = graph.lines();
    let title = lines.next().unwrap();
    assert!(title.starts_with("command - high "), "{graph}");
    assert!(
        title.ends_with(&format!("(all time high {max} ms)")),
        "{graph}"
    );
    assert_eq!(lines.next().unwrap(), "-".repeat(80));
    // The newest sample's age, a few seconds at most, labels its column.
    assert!(graph.contains('s'), "{graph}");
    let report = text(cmd(&mut con, &["LATENCY", "DOCTOR"]).await.unwrap());
    assert!(
        report.starts_with("Dave, I have observed latency spikes in this Redis instance."),
        "{report}"
    );
    assert!(report.contains(". command: "), "{report}");
    assert!(
        report.contains(&format!("Worst all time event {max}ms.")),
        "{report}"
    );
    // slowlog-log-slower-than is 10000 µs, above the 5 ms threshold: the
    // doctor asks for it to be lowered, and to read the slow log.
    assert!(
        report.contains("Please use 'CONFIG SET slowlog-log-slower-than 5000'"),
        "{report}"
    );
    assert!(report.contains("- Check your Slow Log"), "{report}");
    assert_eq!(
        cmd(&mut con, &["LATENCY", "RESET", "COMMAND", "other"])
            .await
            .unwrap(),
        Value::Int(1)
    );
    let Value::Array(latest) = cmd(&mut con, &["LATENCY", "LATEST"]).await.unwrap() else {
        panic!()
    };
    assert!(
        latest
            .iter()
            .all(|e| !format!("{e:?}").contains("\"command\"")),
        "{latest:?}"
    );
    // Monitoring off first, so that RESET's own time is not a new sample.
    cmd(
        &mut con,
        &["CONFIG", "SET", "latency-monitor-threshold", "0"],
    )
    .await
    .unwrap();
    cmd(&mut con, &["LATENCY", "RESET"]).await.unwrap();
    assert_eq!(
        cmd(&mut con, &["LATENCY", "LATEST"]).await.unwrap(),
        Value::Array(vec![])
    );
}

/// `calls` and the (µs, cumulative count) pairs of one command's entry.
fn cdf(entry: &Value) -> (i64, Vec<(i64, i64)>) {
    let Value::Array(m) = entry else {
        panic!("{entry:?}")
    };
    let Value::Int(calls) = m[1] else {
        panic!("{m:?}")
    };
    let Value::Array(buckets) = &m[3] else {
        panic!("{m:?}")
    };
    let pairs = buckets
        .chunks(2)
        .map(|p| match p {
            [Value::Int(us), Value::Int(n)] => (*us, *n),
            _ => panic!("{p:?}"),
        })
        .collect();
    (calls, pairs)
}

#[tokio::test]
async fn every_command_has_a_histogram_unless_tracking_is_off() {
    let server = start().await;
    let mut con = connect(&server).await;
    for i in 0..5 {
        cmd(&mut con, &["SET", &format!("k{i}"), "v"])
            .await
            .unwrap();
    }
    cmd(&mut con, &["CONFIG", "GET", "maxmemory"])
        .await
        .unwrap();
    let Value::Array(reply) = cmd(
        &mut con,
        &["LATENCY", "HISTOGRAM", "set", "CONFIG", "nosuch"],
    )
    .await
    .unwrap() else {
        panic!()
    };
    // A container's name stands for its subcommands that ran.
    let mut names: Vec<String> = reply.iter().step_by(2).map(|v| text(v.clone())).collect();
    names.sort();
    assert_eq!(names, ["config|get", "set"], "{reply:?}");
    let at = reply
        .iter()
        .position(|v| v == &Value::BulkString(b"set".to_vec()))
        .unwrap();
    let (calls, buckets) = cdf(&reply[at + 1]);
    assert_eq!(calls, 5);
    // Power-of-two µs levels (with HdrHistogram's slack above 32 µs),
    // counts rising to every call.
    assert!(!buckets.is_empty());
    assert!(buckets
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1));
    assert_eq!(buckets.last().unwrap().1, 5);
    let info = text(cmd(&mut con, &["INFO", "latencystats"]).await.unwrap());
    let line = info
        .lines()
        .find(|l| l.starts_with("latency_percentiles_usec_set:"))
        .unwrap_or_else(|| panic!("{info}"));
    let values: Vec<f64> = line
        .split_once(':')
        .unwrap()
        .1
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            assert!(["p50", "p99", "p99.9"].contains(&k), "{line}");
            assert_eq!(v.split_once('.').unwrap().1.len(), 3, "{line}");
            v.parse().unwrap()
        })
        .collect();
    assert_eq!(values.len(), 3);
    assert!(values.windows(2).all(|w| w[0] <= w[1]), "{line}");
    cmd(
        &mut con,
        &[
            "CONFIG",
            "SET",
            "latency-tracking-info-percentiles",
            "0 100",
        ],
    )
    .await
    .unwrap();
    let info = text(cmd(&mut con, &["INFO", "latencystats"]).await.unwrap());
    assert!(info.contains("latency_percentiles_usec_set:p0="), "{info}");
    assert!(info.contains(",p100="), "{info}");
    // Off: no new calls are counted and INFO shows the section empty.
    cmd(&mut con, &["CONFIG", "SET", "latency-tracking", "no"])
        .await
        .unwrap();
    cmd(&mut con, &["SET", "k", "v"]).await.unwrap();
    let info = text(cmd(&mut con, &["INFO", "latencystats"]).await.unwrap());
    assert_eq!(info.trim_end(), "# Latencystats");
    let Value::Array(reply) = cmd(&mut con, &["LATENCY", "HISTOGRAM", "set"])
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(cdf(&reply[1]).0, 5);
}
