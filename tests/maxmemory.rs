//! `maxmemory` through the binary (whose allocator counts live bytes): each
//! policy evicts as Redis's sampled approximations do and keeps the server
//! under the limit, `noeviction` answers `denyoom` commands Redis's OOM error
//! (EXEC of one too, and a script's call of one), and no policy ever evicts a
//! lock. An embedding without the counting allocator refuses `maxmemory`.

mod common;

use std::time::Duration;

use common::persist::*;
use redis::{Connection, Value};

/// Redis's OOM error (the `redis` crate prints its code apart).
const OOM: &str = "command not allowed when used memory > 'maxmemory'.";

fn used(con: &mut Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("memory").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn evicted(con: &mut Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("evicted_keys:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// `n` keys `prefix:i` of 200 bytes each, with a TTL when `ttl`.
fn fill(con: &mut Connection, prefix: &str, n: usize, ttl: bool) {
    let value = "x".repeat(200);
    // Pipelines of 200: the server's read and write buffers are memory too.
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let mut pipe = redis::pipe();
        for i in chunk {
            let c = pipe.cmd("SET").arg(format!("{prefix}:{i}")).arg(&value);
            if ttl {
                c.arg("EX").arg(100_000);
            }
        }
        let _: Vec<Value> = pipe.query(con).unwrap();
    }
}

fn limited(dir: &Dir, policy: &str) -> (Server, Connection) {
    let server = start(dir, &["--save", ""]);
    let mut con = server.con();
    let base = used(&mut con);
    // The limit: what the empty server uses, plus 3 MB.
    let max = (base + (3 << 20)).to_string();
    run(&mut con, &["CONFIG", "SET", "maxmemory", &max]);
    run(&mut con, &["CONFIG", "SET", "maxmemory-policy", policy]);
    (server, con)
}

#[test]
fn allkeys_lru_stays_under_the_limit_and_evicts_the_least_recently_used() {
    let dir = Dir::new("mm-lru");
    let (_server, mut con) = limited(&dir, "allkeys-lru");
    let max: u64 = match run(&mut con, &["CONFIG", "GET", "maxmemory"]) {
        Value::Array(v) => match &v[1] {
            Value::BulkString(b) => String::from_utf8_lossy(b).parse().unwrap(),
            v => panic!("{v:?}"),
        },
        v => panic!("{v:?}"),
    };
    fill(&mut con, "old", 3000, false);
    // Redis's LRU clock counts seconds: the old keys are a second older.
    std::thread::sleep(Duration::from_millis(1100));
    fill(&mut con, "new", 3000, false);
    for round in 0..5 {
        fill(&mut con, &format!("more{round}"), 3000, false);
        // Between commands a round may stop on its time budget, a little
        // over; the next command goes on evicting.
        let now = used(&mut con);
        assert!(
            now <= max + max / 10,
            "{now} over {max} after round {round}"
        );
    }
    assert!(evicted(&mut con) > 0);
    let alive = |con: &mut Connection, prefix: &str| {
        (0..3000)
            .filter(|i| int(con, &["EXISTS", &format!("{prefix}:{i}")]) == 1)
            .count()
    };
    let (old, new) = (alive(&mut con, "old"), alive(&mut con, "new"));
    assert!(old < new, "old {old} survived as well as new {new}");
}

#[test]
fn noeviction_refuses_denyoom_commands_with_redis_error() {
    let dir = Dir::new("mm-noevict");
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    let base = used(&mut con);
    fill(&mut con, "k", 6000, false);
    // A limit below what is used now (half of what the keys added): nothing
    // may be evicted. The server's own state (the Lua VMs, a latency
    // histogram per command run) stays under it after FLUSHALL.
    let half = (base + (used(&mut con) - base) / 2).to_string();
    run(&mut con, &["CONFIG", "SET", "maxmemory", &half]);
    let e = run_err(&mut con, &["SET", "a", "b"]);
    assert!(e.contains(OOM), "{e}");
    assert!(run_err(&mut con, &["RPUSH", "l", "a"]).contains(OOM));
    // Reads and deletes still run.
    assert_eq!(run(&mut con, &["EXISTS", "k:0"]), Value::Int(1));
    assert_eq!(run(&mut con, &["DEL", "k:0"]), Value::Int(1));
    // Queued writes are refused at once, and EXEC aborts.
    run(&mut con, &["MULTI"]);
    assert!(run_err(&mut con, &["SET", "a", "b"]).contains(OOM));
    assert!(run_err(&mut con, &["EXEC"]).contains("Transaction discarded"));
    // A script's write is refused where it calls it.
    let e = run_err(&mut con, &["EVAL", "return redis.call('SET','s','v')", "0"]);
    assert!(e.contains(OOM), "{e}");
    assert_eq!(evicted(&mut con), 0);
    run(&mut con, &["FLUSHALL"]);
    assert_eq!(run(&mut con, &["SET", "a", "b"]), Value::Okay);
}

#[test]
fn no_policy_evicts_a_lock() {
    for policy in ["allkeys-random", "allkeys-lru", "allkeys-lfu"] {
        let dir = Dir::new(&format!("mm-locks-{policy}"));
        let (_server, mut con) = limited(&dir, policy);
        let mut tokens = Vec::new();
        for i in 0..200 {
            tokens.push(int(
                &mut con,
                &["LOCK.ACQUIRE", &format!("lock:{i}"), "me", "600000"],
            ));
        }
        for round in 0..6 {
            fill(&mut con, &format!("fill{round}"), 3000, false);
        }
        assert!(evicted(&mut con) > 0, "{policy}: nothing evicted");
        for (i, token) in tokens.iter().enumerate() {
            let info = run(&mut con, &["LOCK.INFO", &format!("lock:{i}")]);
            assert!(
                format!("{info:?}").contains(&token.to_string()),
                "{policy}: lock:{i} lost"
            );
        }
    }
}

#[test]
fn volatile_policies_evict_only_keys_with_a_ttl() {
    let dir = Dir::new("mm-volatile");
    let (_server, mut con) = limited(&dir, "volatile-ttl");
    fill(&mut con, "keep", 2000, false);
    for round in 0..5 {
        fill(&mut con, &format!("ttl{round}"), 3000, true);
    }
    assert!(evicted(&mut con) > 0);
    for i in 0..2000 {
        assert_eq!(int(&mut con, &["EXISTS", &format!("keep:{i}")]), 1);
    }
    // With only persistent keys left to add, writes are refused.
    let mut refused = false;
    for round in 0..20 {
        let value = "y".repeat(200);
        let r: redis::RedisResult<Value> = redis::cmd("SET")
            .arg(format!("more:{round}"))
            .arg(value.repeat(500))
            .query(&mut con);
        if r.is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused || evicted(&mut con) > 0);
}

#[test]
fn eviction_finds_keys_in_whichever_database_holds_them() {
    let dir = Dir::new("mm-dbs");
    let (_server, mut con) = limited(&dir, "allkeys-random");
    // Database 4 held keys once; database 9 gets its keys by SWAPDB, never
    // by a write of its own.
    run(&mut con, &["SELECT", "4"]);
    fill(&mut con, "gone", 1000, false);
    run(&mut con, &["FLUSHDB"]);
    run(&mut con, &["SELECT", "5"]);
    let base = used(&mut con);
    fill(&mut con, "moved", 3000, false);
    run(&mut con, &["SWAPDB", "5", "9"]);
    run(&mut con, &["SELECT", "0"]);
    // Below what is used now: the only keys to evict are database 9's.
    let max = (base + (used(&mut con) - base) / 2).to_string();
    run(&mut con, &["CONFIG", "SET", "maxmemory", &max]);
    assert_eq!(run(&mut con, &["SET", "a", "b"]), Value::Okay);
    assert!(evicted(&mut con) > 0);
    run(&mut con, &["SELECT", "9"]);
    let left = int(&mut con, &["DBSIZE"]);
    assert!(left > 0 && left < 3000, "{left} keys left in database 9");
}

#[test]
fn lfu_tracks_frequency_for_object_freq() {
    let dir = Dir::new("mm-lfu");
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    assert_eq!(run(&mut con, &["OBJECT", "FREQ", "nokey"]), Value::Nil);
    run(&mut con, &["SET", "k", "v"]);
    assert!(run_err(&mut con, &["OBJECT", "FREQ", "k"])
        .contains("An LFU maxmemory policy is not selected"));
    run(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"],
    );
    for _ in 0..200 {
        run(&mut con, &["GET", "k"]);
    }
    let f = int(&mut con, &["OBJECT", "FREQ", "k"]);
    assert!((6..=40).contains(&f), "freq {f}");
    assert!(run_err(&mut con, &["OBJECT", "IDLETIME", "k"])
        .contains("An LFU maxmemory policy is selected"));
}

#[test]
fn memory_usage_and_stats_report_the_counted_bytes() {
    let dir = Dir::new("mm-stats");
    let server = start(&dir, &["--save", ""]);
    let mut con = server.con();
    run(&mut con, &["SET", "small", "v"]);
    run(&mut con, &["SET", "big", &"x".repeat(10_000)]);
    run(&mut con, &["RPUSH", "list", "a", "b", "c"]);
    run(&mut con, &["LOCK.ACQUIRE", "lk", "owner", "10000"]);
    let small = int(&mut con, &["MEMORY", "USAGE", "small"]);
    let big = int(&mut con, &["MEMORY", "USAGE", "big", "SAMPLES", "0"]);
    assert!(small > 0 && big > 10_000 && big < 12_000, "{small} {big}");
    assert!(int(&mut con, &["MEMORY", "USAGE", "lk"]) > 0);
    assert!(int(&mut con, &["MEMORY", "USAGE", "list"]) > small);
    let Value::Array(fields) = run(&mut con, &["MEMORY", "STATS"]) else {
        panic!()
    };
    let field = |name: &str| {
        let at = fields
            .iter()
            .position(|f| matches!(f, Value::BulkString(b) if b == name.as_bytes()))
            .unwrap_or_else(|| panic!("no {name}"));
        fields[at + 1].clone()
    };
    assert_eq!(field("keys.count"), Value::Int(4));
    let Value::Int(total) = field("total.allocated") else {
        panic!()
    };
    let used = used(&mut con) as i64;
    assert!((total - used).abs() < used / 10, "{total} {used}");
    assert!(matches!(field("db.0"), Value::Array(_)));
    assert!(matches!(
        run(&mut con, &["MEMORY", "DOCTOR"]),
        Value::BulkString(_)
    ));
}
