//! Keyspace notifications (`notify-keyspace-events`): the channels and frames
//! redis-server 7.0.15 sends for the same commands (its order of events was
//! read from a real server with `PSUBSCRIBE __key*` beside the same requests),
//! events raised by the keyspace itself (`expired`, `new`), and MULTI/EXEC.

mod common;

use std::time::Duration;

use common::{block_raw, connect, expect_reply, open, send, start};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

/// The frames a `PSUBSCRIBE __key*` subscriber gets for event `event` on
/// `key` in database 0 with `K` and `E` on: keyspace first, then keyevent.
fn both(event: &str, key: &str) -> String {
    let pm = |chan: String, msg: &str| {
        format!(
            "*4\r\n{}{}{}{}",
            bulk("pmessage"),
            bulk("__key*"),
            bulk(&chan),
            bulk(msg)
        )
    };
    pm(format!("__keyspace@0__:{key}"), event) + &pm(format!("__keyevent@0__:{event}"), key)
}

/// A subscriber to every keyspace channel, and a second connection that has
/// set `classes`.
async fn watching(server: &latchkey::ServerHandle, classes: &str) -> (TcpStream, TcpStream) {
    let mut sub = open(server).await;
    send(&mut sub, &["PSUBSCRIBE __key*"]).await;
    expect_reply(
        &mut sub,
        &format!("*3\r\n{}{}:1\r\n", bulk("psubscribe"), bulk("__key*")),
    )
    .await;
    let mut c = open(server).await;
    send(
        &mut c,
        &[&format!("CONFIG SET notify-keyspace-events {classes}")],
    )
    .await;
    expect_reply(&mut c, "+OK\r\n").await;
    (sub, c)
}

#[tokio::test]
async fn set_with_a_ttl_then_del_then_expiry() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KEA").await;
    send(
        &mut c,
        &["SET k v PX 100000", "DEL k nothere", "SET k2 v PX 30"],
    )
    .await;
    expect_reply(&mut c, "+OK\r\n:1\r\n+OK\r\n").await;
    let want = both("set", "k")
        + &both("expire", "k")
        + &both("del", "k")
        + &both("set", "k2")
        + &both("expire", "k2")
        + &both("expired", "k2");
    expect_reply(&mut sub, &want).await;
}

#[tokio::test]
async fn moving_a_paused_clock_past_a_ttl_raises_expired() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "Ex").await;
    server.pause_time();
    send(&mut c, &["SET k v PX 10", "SET other v"]).await;
    expect_reply(&mut c, "+OK\r\n+OK\r\n").await;
    server.advance_time(Duration::from_millis(50));
    let expired = format!(
        "*4\r\n{}{}{}{}",
        bulk("pmessage"),
        bulk("__key*"),
        bulk("__keyevent@0__:expired"),
        bulk("k")
    );
    expect_reply(&mut sub, &expired).await;
}

#[tokio::test]
async fn new_keys_and_classes_off() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KEAn").await;
    send(
        &mut c,
        &["SET k3 v", "SET k3 v", "CONFIG GET notify-keyspace-events"],
    )
    .await;
    expect_reply(
        &mut c,
        &format!(
            "+OK\r\n+OK\r\n*2\r\n{}{}",
            bulk("notify-keyspace-events"),
            bulk("AKE")
        ),
    )
    .await;
    expect_reply(
        &mut sub,
        &(both("new", "k3") + &both("set", "k3") + &both("set", "k3")),
    )
    .await;
    // Only the generic class: SET raises nothing, DEL does.
    send(
        &mut c,
        &["CONFIG SET notify-keyspace-events gK", "SET k3 w", "DEL k3"],
    )
    .await;
    expect_reply(&mut c, "+OK\r\n+OK\r\n:1\r\n").await;
    let only_space = format!(
        "*4\r\n{}{}{}{}",
        bulk("pmessage"),
        bulk("__key*"),
        bulk("__keyspace@0__:k3"),
        bulk("del")
    );
    expect_reply(&mut sub, &only_space).await;
}

#[tokio::test]
async fn events_of_a_transaction_leave_in_order_when_it_ends() {
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KEA").await;
    send(&mut c, &["MULTI", "SET a 1", "DEL a", "EXEC"]).await;
    expect_reply(&mut c, "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:1\r\n").await;
    expect_reply(&mut sub, &(both("set", "a") + &both("del", "a"))).await;
}

#[tokio::test]
async fn a_bad_class_letter_is_refused_and_changes_nothing() {
    let server = start().await;
    let mut c = open(&server).await;
    send(
        &mut c,
        &[
            "CONFIG SET notify-keyspace-events Kq",
            "CONFIG GET notify-keyspace-events",
        ],
    )
    .await;
    expect_reply(
        &mut c,
        &format!(
            "-ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'.\r\n*2\r\n{}{}",
            bulk("notify-keyspace-events"),
            bulk("")
        ),
    )
    .await;
}

#[tokio::test]
async fn a_subscriber_flooded_by_a_script_is_closed_at_its_limit() {
    use tokio::io::AsyncReadExt;
    let server = start().await;
    let (mut sub, mut c) = watching(&server, "KEA").await;
    send(
        &mut c,
        &["CONFIG SET client-output-buffer-limit \"pubsub 64kb 0 0\""],
    )
    .await;
    expect_reply(&mut c, "+OK\r\n").await;
    // 200,000 events of about 80 bytes each would be 16 MB waiting for the
    // script's end; the subscriber is closed once 64 KB are counted.
    send(
        &mut c,
        &["EVAL \"for i=1,100000 do redis.call('SET','k',i) end return 1\" 0"],
    )
    .await;
    expect_reply(&mut c, ":1\r\n").await;
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), sub.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got += n,
            Err(_) => panic!("the subscriber was not closed"),
        }
    }
    assert!(got <= 64 * 1024, "{got} bytes reached a closed subscriber");
}

/// Reads one RESP2 value of arrays and bulk/simple strings from `r` as its
/// strings, flattened (all a pmessage frame holds).
async fn read_frame(r: &mut BufReader<TcpStream>, out: &mut Vec<String>) {
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    let line = line.trim_end();
    let (kind, rest) = line.split_at(1);
    match kind {
        "*" => {
            for _ in 0..rest.parse::<usize>().unwrap() {
                Box::pin(read_frame(r, out)).await;
            }
        }
        "$" => {
            let mut data = vec![0; rest.parse::<usize>().unwrap() + 2];
            r.read_exact(&mut data).await.unwrap();
            data.truncate(data.len() - 2);
            out.push(String::from_utf8(data).unwrap());
        }
        _ => out.push(rest.to_string()),
    }
}

/// The keyevents `cmds` raise, run in order on one connection after
/// `CONFIG SET notify-keyspace-events classes`: (event, key) pairs, the event
/// followed by `@<db>` outside database 0. The expected sequences were read
/// from redis-server 7.0.15 running the same commands (arguments are split at
/// spaces; `redis-tests/capture_events.py` prints them).
async fn events_of(
    server: &latchkey::ServerHandle,
    classes: &str,
    cmds: &[&str],
    flush: bool,
) -> Vec<(String, String)> {
    let mut sub = BufReader::new(open(server).await);
    send(sub.get_mut(), &["PSUBSCRIBE __keyevent@*"]).await;
    read_frame(&mut sub, &mut Vec::new()).await;
    let mut c = open(server).await;
    let mut all = vec![format!("CONFIG SET notify-keyspace-events {classes}")];
    if flush {
        all.insert(0, "FLUSHALL".to_string());
    }
    all.extend(cmds.iter().map(|c| c.to_string()));
    all.push("PUBLISH __keyevent@0__:end x".into());
    let mut req = Vec::new();
    for cmd in &all {
        let words: Vec<&str> = cmd.split(' ').collect();
        req.extend_from_slice(format!("*{}\r\n", words.len()).as_bytes());
        for w in words {
            req.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
        }
    }
    c.write_all(&req).await.unwrap();
    let mut got = Vec::new();
    let deadline = Duration::from_secs(10);
    loop {
        let mut frame = Vec::new();
        tokio::time::timeout(deadline, read_frame(&mut sub, &mut frame))
            .await
            .unwrap_or_else(|_| panic!("no end marker; so far {got:?}"));
        let channel = &frame[2];
        let (db, event) = channel["__keyevent@".len()..].split_once("__:").unwrap();
        if event == "end" {
            return got;
        }
        let event = if db == "0" {
            event.to_string()
        } else {
            format!("{event}@{db}")
        };
        got.push((event, frame[3].clone()));
    }
}

/// Checks that `cmds`, run after FLUSHALL, raise exactly `want`.
async fn check(
    server: &latchkey::ServerHandle,
    classes: &str,
    cmds: &[&str],
    want: &[(&str, &str)],
) {
    check_with(server, classes, cmds, want, true).await;
}

/// [`check`], with FLUSHALL first or not.
async fn check_with(
    server: &latchkey::ServerHandle,
    classes: &str,
    cmds: &[&str],
    want: &[(&str, &str)],
    flush: bool,
) {
    let got = events_of(server, classes, cmds, flush).await;
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(e, k)| (e.to_string(), k.to_string()))
        .collect();
    assert_eq!(got, want, "events of {cmds:?}");
}

#[tokio::test]
async fn string_bitmap_and_hyperloglog_events() {
    let server = start().await;
    check(
        &server,
        "EA",
        &[
            "SET s v",
            "SET s v NX",
            "SET s w XX KEEPTTL",
            "SETNX s x",
            "SETNX s2 x",
            "SETEX s3 100 v",
            "PSETEX s4 100000 v",
            "GETSET s y",
            "MSET m1 a m2 b",
            "MSETNX m1 a m3 b",
            "MSETNX m4 a m5 b",
            "GETDEL m4",
            "GETDEL nokey",
            "GETEX m5 EX 100",
            "GETEX m5 PERSIST",
            "GETEX m5 PERSIST",
            "GETEX m5",
            "GETEX m5 PXAT 1",
            "INCR n",
            "DECR n",
            "INCRBY n 5",
            "DECRBY n 2",
            "INCRBYFLOAT n 1.5",
            "APPEND n x",
            "APPEND a1 x",
            "SETRANGE n 0 z",
            "SETRANGE n 0 ",
            "SETRANGE r1 2 ab",
            "GET s",
            "STRLEN s",
            "LCS s n",
        ],
        &[
            ("set", "s"),
            ("set", "s"),
            ("set", "s2"),
            ("set", "s3"),
            ("expire", "s3"),
            ("set", "s4"),
            ("expire", "s4"),
            ("set", "s"),
            ("set", "m1"),
            ("set", "m2"),
            ("set", "m4"),
            ("set", "m5"),
            ("del", "m4"),
            ("expire", "m5"),
            ("persist", "m5"),
            ("del", "m5"),
            ("incrby", "n"),
            ("incrby", "n"),
            ("incrby", "n"),
            ("incrby", "n"),
            ("incrbyfloat", "n"),
            ("append", "n"),
            ("append", "a1"),
            ("setrange", "n"),
            ("setrange", "r1"),
        ],
    )
    .await;
    check(
        &server,
        "EA",
        &[
            "SETBIT b 3 1",
            "SETBIT b 3 1",
            "BITOP OR d b b",
            "BITOP AND d nokey",
            "BITOP AND d2 nokey",
            "BITFIELD bf SET u8 0 1",
            "BITFIELD bf GET u8 0",
            "BITFIELD bf INCRBY u8 0 1 OVERFLOW FAIL INCRBY u8 0 1000",
            "BITFIELD bf OVERFLOW FAIL INCRBY u8 0 1000",
            "PFADD h a b",
            "PFADD h a",
            "PFADD h",
            "PFADD h2",
            "PFMERGE h3 h h2",
            "PFMERGE h4",
            "PFCOUNT h",
        ],
        &[
            ("setbit", "b"),
            ("set", "d"),
            ("del", "d"),
            ("setbit", "bf"),
            ("setbit", "bf"),
            ("pfadd", "h"),
            ("pfadd", "h2"),
            ("pfadd", "h3"),
            ("pfadd", "h4"),
        ],
    )
    .await;
}

#[tokio::test]
async fn generic_events() {
    let server = start().await;
    check(
        &server,
        "EA",
        &[
            "SET a 1",
            "EXPIRE a 100",
            "PEXPIRE a 100000",
            "EXPIREAT a 99999999999",
            "PEXPIREAT a 99999999999999",
            "EXPIRE a 100 NX",
            "PERSIST a",
            "PERSIST a",
            "EXPIRE nokey 10",
            "EXPIRE a 0",
            "SET b 1",
            "PEXPIRE b -5",
            "SET c 1",
            "RENAME c d",
            "RENAME d d",
            "RENAMENX d e",
            "SET f 1",
            "RENAMENX e f",
            "MOVE e 1",
            "SET g 1",
            "COPY g h",
            "COPY g h",
            "COPY g h REPLACE",
            "COPY g h DB 2",
            "UNLINK g h nokey",
            "RPUSH l 3 1 2",
            "SORT l STORE sl",
            "SORT nokey STORE sl",
            "SORT nokey STORE sl",
            "SET r 1",
            "DUMP r",
            "TOUCH r",
            "FLUSHDB",
            "SET x 1",
            "FLUSHALL",
            "SWAPDB 0 1",
        ],
        &[
            ("set", "a"),
            ("expire", "a"),
            ("expire", "a"),
            ("expire", "a"),
            ("expire", "a"),
            ("persist", "a"),
            ("del", "a"),
            ("set", "b"),
            ("del", "b"),
            ("set", "c"),
            ("rename_from", "c"),
            ("rename_to", "d"),
            ("rename_from", "d"),
            ("rename_to", "e"),
            ("set", "f"),
            ("move_from", "e"),
            ("move_to@1", "e"),
            ("set", "g"),
            ("copy_to", "h"),
            ("copy_to", "h"),
            ("copy_to@2", "h"),
            ("del", "g"),
            ("del", "h"),
            ("rpush", "l"),
            ("sortstore", "sl"),
            ("del", "sl"),
            ("set", "r"),
            ("set", "x"),
        ],
    )
    .await;
}

#[tokio::test]
async fn list_events() {
    let server = start().await;
    check(
        &server,
        "EA",
        &[
            "LPUSH l a b c",
            "RPUSH l d",
            "LPUSHX l e",
            "RPUSHX l f",
            "LPUSHX nol e",
            "LINSERT l BEFORE a x",
            "LINSERT l BEFORE zz x",
            "LSET l 0 y",
            "LREM l 1 x",
            "LREM l 1 zz",
            "LTRIM l 0 -1",
            "LTRIM l 0 3",
            "LPOP l",
            "RPOP l 1",
            "LPOP nol",
            "LMOVE l l2 LEFT RIGHT",
            "RPOPLPUSH l l2",
            "LMOVE l2 l2 LEFT LEFT",
            "LMPOP 2 nol l2 RIGHT COUNT 5",
        ],
        &[
            ("lpush", "l"),
            ("rpush", "l"),
            ("lpush", "l"),
            ("rpush", "l"),
            ("linsert", "l"),
            ("lset", "l"),
            ("lrem", "l"),
            ("ltrim", "l"),
            ("ltrim", "l"),
            ("lpop", "l"),
            ("rpop", "l"),
            ("rpush", "l2"),
            ("lpop", "l"),
            ("lpush", "l2"),
            ("rpop", "l"),
            ("del", "l"),
            ("lpush", "l2"),
            ("lpop", "l2"),
            ("rpop", "l2"),
            ("del", "l2"),
        ],
    )
    .await;
    check(
        &server,
        "EA",
        &[
            "RPUSH l p q r",
            "BLPOP l 0",
            "BRPOP nol l 0",
            "BLMOVE l l3 RIGHT LEFT 0",
            "BLMPOP 0 1 l3 LEFT",
            "RPUSH t a b",
            "LTRIM t 5 6",
            "RPUSH t a",
            "LREM t 0 a",
            "RPUSH t a",
            "LPOP t 5",
        ],
        &[
            ("rpush", "l"),
            ("lpop", "l"),
            ("rpop", "l"),
            ("lpush", "l3"),
            ("rpop", "l"),
            ("del", "l"),
            ("lpop", "l3"),
            ("del", "l3"),
            ("rpush", "t"),
            ("ltrim", "t"),
            ("del", "t"),
            ("rpush", "t"),
            ("lrem", "t"),
            ("del", "t"),
            ("rpush", "t"),
            ("lpop", "t"),
            ("del", "t"),
        ],
    )
    .await;
}

#[tokio::test]
async fn hash_and_set_events() {
    let server = start().await;
    check(
        &server,
        "EA",
        &[
            "HSET h a 1 b 2",
            "HSET h a 1",
            "HMSET h c 3",
            "HSETNX h a 5",
            "HSETNX h d 4",
            "HINCRBY h a 1",
            "HINCRBYFLOAT h a 1.5",
            "HDEL h a zz",
            "HDEL h zz",
            "HDEL h b c d",
            "HGET h a",
        ],
        &[
            ("hset", "h"),
            ("hset", "h"),
            ("hset", "h"),
            ("hset", "h"),
            ("hincrby", "h"),
            ("hincrbyfloat", "h"),
            ("hdel", "h"),
            ("hdel", "h"),
            ("del", "h"),
        ],
    )
    .await;
    check(
        &server,
        "EA",
        &[
            "SADD s a b c",
            "SADD s a",
            "SREM s a",
            "SREM s zz",
            "SPOP s",
            "SPOP s 0",
            "SADD s x y",
            "SPOP s 5",
            "SADD s a b",
            "SMOVE s t a",
            "SMOVE s t zz",
            "SMOVE s t b",
            "SMOVE t t a",
            "SADD u a",
            "SINTERSTORE d t u",
            "SINTERSTORE d t nokey",
            "SINTERSTORE d t nokey",
            "SUNIONSTORE d t u",
            "SDIFFSTORE d t u",
            "SDIFFSTORE d2 t t",
            "SUNIONSTORE d3 nokey",
            "SINTERCARD 1 t",
            "SADD p 1",
            "SPOP p 1",
        ],
        &[
            ("sadd", "s"),
            ("srem", "s"),
            ("spop", "s"),
            ("sadd", "s"),
            ("spop", "s"),
            ("del", "s"),
            ("sadd", "s"),
            ("srem", "s"),
            ("sadd", "t"),
            ("srem", "s"),
            ("del", "s"),
            ("sadd", "t"),
            ("sadd", "u"),
            ("sinterstore", "d"),
            ("del", "d"),
            ("sunionstore", "d"),
            ("sdiffstore", "d"),
            ("sadd", "p"),
            ("spop", "p"),
            ("del", "p"),
        ],
    )
    .await;
}

#[tokio::test]
async fn sorted_set_and_geo_events() {
    let server = start().await;
    check(
        &server,
        "EA",
        &[
            "ZADD z 1 a 2 b 3 c 4 d",
            "ZADD z 1 a",
            "ZADD z XX 5 zz",
            "ZADD z INCR 1 a",
            "ZADD z NX INCR 1 a",
            "ZINCRBY z 1 b",
            "ZREM z a zz",
            "ZREM z zz",
            "ZREMRANGEBYSCORE z 0 0",
            "ZREMRANGEBYSCORE z 3 3",
            "ZREMRANGEBYRANK z 0 0",
            "ZADD z 0 a 0 b 0 c",
            "ZREMRANGEBYLEX z [a [a",
            "ZPOPMIN z",
            "ZPOPMAX z 1",
            "ZMPOP 1 z MIN COUNT 9",
            "ZADD y 1 a 2 b",
            "ZADD x 1 a",
            "ZINTERSTORE o 2 x y",
            "ZUNIONSTORE o 2 x y",
            "ZDIFFSTORE o 2 y x",
            "ZDIFFSTORE o 2 x y",
            "ZINTERSTORE o2 1 nokey",
            "ZRANGESTORE o y 0 -1",
            "ZRANGESTORE o y 5 6",
            "BZPOPMIN y 0",
            "BZPOPMAX y 0",
            "BZMPOP 0 1 x MAX",
        ],
        &[
            ("zadd", "z"),
            ("zincr", "z"),
            ("zincr", "z"),
            ("zrem", "z"),
            ("zremrangebyscore", "z"),
            ("zremrangebyrank", "z"),
            ("del", "z"),
            ("zadd", "z"),
            ("zremrangebylex", "z"),
            ("zpopmin", "z"),
            ("zpopmax", "z"),
            ("del", "z"),
            ("zadd", "y"),
            ("zadd", "x"),
            ("zinterstore", "o"),
            ("zunionstore", "o"),
            ("zdiffstore", "o"),
            ("del", "o"),
            ("zrangestore", "o"),
            ("del", "o"),
            ("zpopmin", "y"),
            ("zpopmax", "y"),
            ("del", "y"),
            ("zpopmax", "x"),
            ("del", "x"),
        ],
    )
    .await;
    check(
        &server,
        "EA",
        &[
            "GEOADD g 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
            "GEOADD g 13.361389 38.115556 Palermo",
            "GEOSEARCHSTORE gs g FROMLONLAT 15 37 BYRADIUS 200 km ASC",
            "GEORADIUS g 15 37 200 km STORE gr",
            "GEORADIUS g 15 37 200 km STOREDIST gd",
            "GEORADIUSBYMEMBER g Palermo 1 km STORE gr",
            "GEOSEARCHSTORE gs g FROMLONLAT 0 0 BYRADIUS 1 km",
            "GEOSEARCHSTORE gs g FROMLONLAT 0 0 BYRADIUS 1 km",
        ],
        &[
            ("zadd", "g"),
            ("geosearchstore", "gs"),
            ("georadiusstore", "gr"),
            ("georadiusstore", "gd"),
            ("georadiusstore", "gr"),
            ("del", "gs"),
        ],
    )
    .await;
}

#[tokio::test]
async fn stream_events() {
    let server = start().await;
    check(
        &server,
        "EA",
        &[
            "XADD st 1-0 f v",
            "XADD st MAXLEN 1 2-0 f v",
            "XADD st MAXLEN 5 3-0 f v",
            "XADD st NOMKSTREAM 3-5 f v",
            "XADD nost NOMKSTREAM * f v",
            "XTRIM st MAXLEN 1",
            "XTRIM st MAXLEN 1",
            "XADD st 4-0 f v",
            "XDEL st 3-5 9-0",
            "XDEL st 9-0",
            "XADD st 5-0 f v",
            "XGROUP CREATE st g 0",
            "XGROUP CREATE st2 g $ MKSTREAM",
            "XGROUP CREATECONSUMER st g c1",
            "XGROUP CREATECONSUMER st g c1",
            "XREADGROUP GROUP g c2 COUNT 1 STREAMS st >",
            "XREADGROUP GROUP g c2 COUNT 1 STREAMS st >",
            "XREADGROUP GROUP g c2 COUNT 1 STREAMS st >",
            "XCLAIM st g c3 0 4-0",
            "XCLAIM st g c3 0 4-0",
            "XAUTOCLAIM st g c4 0 0",
            "XAUTOCLAIM st g c4 0 0",
            "XGROUP SETID st g 0",
            "XSETID st 10-0",
            "XGROUP DELCONSUMER st g c1",
            "XGROUP DELCONSUMER st g c9",
            "XACK st g 4-0",
            "XGROUP DESTROY st g",
            "XGROUP DESTROY st g",
            "XDEL st 5-0",
            "XTRIM st MAXLEN 0",
        ],
        &[
            ("xadd", "st"),
            ("xadd", "st"),
            ("xtrim", "st"),
            ("xadd", "st"),
            ("xadd", "st"),
            ("xtrim", "st"),
            ("xadd", "st"),
            ("xdel", "st"),
            ("xadd", "st"),
            ("xgroup-create", "st"),
            ("xgroup-create", "st2"),
            ("xgroup-createconsumer", "st"),
            ("xgroup-createconsumer", "st"),
            ("xgroup-createconsumer", "st"),
            ("xgroup-createconsumer", "st"),
            ("xgroup-setid", "st"),
            ("xsetid", "st"),
            ("xgroup-delconsumer", "st"),
            ("xgroup-destroy", "st"),
            ("xdel", "st"),
            ("xtrim", "st"),
        ],
    )
    .await;
}

/// Blocked clients served by a push raise their pops' events right after the
/// pusher's own; after an EXEC (or a script) they follow all of its events.
#[tokio::test]
async fn served_blocked_clients_raise_their_events() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _w1 = block_raw(&server, &mut con, "BLPOP bl 0\r\n", 1).await;
    let _w2 = block_raw(&server, &mut con, "BLMOVE bm bl2 LEFT RIGHT 0\r\n", 2).await;
    let _w3 = block_raw(&server, &mut con, "BRPOP bl2 0\r\n", 3).await;
    check(
        &server,
        "EA",
        &[
            "RPUSH bl x y",
            "RPUSH bm x",
            "MULTI",
            "RPUSH bl z",
            "RPUSH bl w",
            "EXEC",
        ],
        &[
            ("rpush", "bl"),
            ("lpop", "bl"),
            ("rpush", "bm"),
            ("rpush", "bl2"),
            ("lpop", "bm"),
            ("del", "bm"),
            ("rpop", "bl2"),
            ("del", "bl2"),
            ("rpush", "bl"),
            ("rpush", "bl"),
        ],
    )
    .await;
    let _ = common::cmd(&mut con, &["DEL", "bl"]).await;
    let _w4 = block_raw(&server, &mut con, "BLPOP bl 0\r\n", 1).await;
    check(
        &server,
        "EA",
        &["MULTI", "RPUSH bl z", "RPUSH bl w", "LPOP bl", "EXEC"],
        &[
            ("rpush", "bl"),
            ("rpush", "bl"),
            ("lpop", "bl"),
            ("lpop", "bl"),
            ("del", "bl"),
        ],
    )
    .await;
    let _w5 = block_raw(&server, &mut con, "BLPOP bl 0\r\n", 1).await;
    check(
        &server,
        "EA",
        &["EVAL redis.call('rpush','bl','a','b') 0", "LPOP bl"],
        &[
            ("rpush", "bl"),
            ("lpop", "bl"),
            ("lpop", "bl"),
            ("del", "bl"),
        ],
    )
    .await;
    let _ = common::cmd(&mut con, &["XGROUP", "CREATE", "xs", "g", "$", "MKSTREAM"]).await;
    let _w6 = block_raw(&server, &mut con, "BZPOPMIN bz 0\r\n", 1).await;
    let _w7 = block_raw(
        &server,
        &mut con,
        "XREADGROUP GROUP g newc BLOCK 0 STREAMS xs >\r\n",
        2,
    )
    .await;
    check_with(
        &server,
        "EA",
        &["ZADD bz 1 a 2 b", "XADD xs 1-0 f v"],
        &[
            ("zadd", "bz"),
            ("zpopmin", "bz"),
            ("xadd", "xs"),
            ("xgroup-createconsumer", "xs"),
        ],
        false,
    )
    .await;
}

/// `keymiss` for each key read by a notifying lookup and not there; write
/// lookups and OBJECT raise none, XREAD raises two per key.
#[tokio::test]
async fn key_misses() {
    let server = start().await;
    check(
        &server,
        "Em",
        &[
            "GET k1",
            "MGET k2 k3",
            "EXISTS k4",
            "TYPE k5",
            "TTL k6",
            "PTTL k7",
            "STRLEN k8",
            "GETRANGE k9 0 1",
            "GETDEL k10",
            "GETEX k11",
            "GETBIT k12 0",
            "BITCOUNT k13",
            "BITPOS k14 1",
            "BITFIELD_RO k15 GET u8 0",
            "LCS k16 k17",
            "OBJECT ENCODING k19",
            "TOUCH k20",
            "EXPIRETIME k21",
            "SETRANGE k22 0 ",
            "INCR k23",
            "APPEND k24 x",
            "SET k25 v GET",
            "GETSET k26 v",
            "PFCOUNT k27",
            "PFCOUNT k28 k29",
            "COPY k30 k31",
            "RENAME k32 k33",
            "MOVE k34 1",
            "SORT k35",
            "SORT_RO k36",
            "RANDOMKEY",
            "DEL k37",
            "PERSIST k38",
            "EXPIRE k39 1",
            "BITOP OR k40 k41",
            "PFMERGE k42 k43",
            "SUBSTR k44 0 1",
        ],
        &[
            ("keymiss", "k1"),
            ("keymiss", "k2"),
            ("keymiss", "k3"),
            ("keymiss", "k4"),
            ("keymiss", "k5"),
            ("keymiss", "k6"),
            ("keymiss", "k7"),
            ("keymiss", "k8"),
            ("keymiss", "k9"),
            ("keymiss", "k10"),
            ("keymiss", "k11"),
            ("keymiss", "k12"),
            ("keymiss", "k13"),
            ("keymiss", "k14"),
            ("keymiss", "k15"),
            ("keymiss", "k16"),
            ("keymiss", "k17"),
            ("keymiss", "k20"),
            ("keymiss", "k21"),
            ("keymiss", "k25"),
            ("keymiss", "k26"),
            ("keymiss", "k27"),
            ("keymiss", "k28"),
            ("keymiss", "k29"),
            ("keymiss", "k30"),
            ("keymiss", "k35"),
            ("keymiss", "k36"),
            ("keymiss", "k41"),
            ("keymiss", "k42"),
            ("keymiss", "k43"),
            ("keymiss", "k44"),
        ],
    )
    .await;
    check(
        &server,
        "Em",
        &[
            "LRANGE l1 0 1",
            "LLEN l2",
            "LINDEX l3 0",
            "LPOS l4 a",
            "LPOP l5",
            "RPOP l6",
            "LMPOP 1 l7 LEFT",
            "LMOVE l8 l9 LEFT LEFT",
            "LREM l10 0 a",
            "LTRIM l11 0 1",
            "LSET l12 0 a",
            "LINSERT l13 BEFORE a b",
            "LPUSHX l14 a",
            "HGET h1 a",
            "HMGET h2 a",
            "HGETALL h3",
            "HLEN h4",
            "HEXISTS h5 a",
            "HKEYS h6",
            "HVALS h7",
            "HSTRLEN h8 a",
            "HRANDFIELD h9",
            "HSCAN h10 0",
            "HDEL h11 a",
            "HINCRBY h12 a 1",
            "SMEMBERS s1",
            "SISMEMBER s2 a",
            "SMISMEMBER s3 a",
            "SCARD s4",
            "SRANDMEMBER s5",
            "SINTER s6 s7",
            "SUNION s8",
            "SDIFF s9 s10",
            "SINTERCARD 1 s11",
            "SINTERSTORE s12 s13",
            "SUNIONSTORE s14 s15",
            "SDIFFSTORE s16 s17 s18",
            "SPOP s19",
            "SREM s20 a",
            "SMOVE s21 s22 a",
            "SSCAN s23 0",
        ],
        &[
            ("keymiss", "l1"),
            ("keymiss", "l2"),
            ("keymiss", "l3"),
            ("keymiss", "l4"),
            ("keymiss", "h1"),
            ("keymiss", "h2"),
            ("keymiss", "h3"),
            ("keymiss", "h4"),
            ("keymiss", "h5"),
            ("keymiss", "h6"),
            ("keymiss", "h7"),
            ("keymiss", "h8"),
            ("keymiss", "h9"),
            ("keymiss", "h10"),
            ("keymiss", "s1"),
            ("keymiss", "s2"),
            ("keymiss", "s3"),
            ("keymiss", "s4"),
            ("keymiss", "s5"),
            ("keymiss", "s6"),
            ("keymiss", "s7"),
            ("keymiss", "s8"),
            ("keymiss", "s9"),
            ("keymiss", "s10"),
            ("keymiss", "s11"),
            ("keymiss", "s13"),
            ("keymiss", "s15"),
            ("keymiss", "s17"),
            ("keymiss", "s18"),
            ("keymiss", "s23"),
        ],
    )
    .await;
    check(
        &server,
        "Em",
        &[
            "ZSCORE z1 a",
            "ZMSCORE z2 a",
            "ZCARD z3",
            "ZCOUNT z4 0 1",
            "ZLEXCOUNT z5 - +",
            "ZRANGE z6 0 1",
            "ZRANGEBYSCORE z7 0 1",
            "ZREVRANGE z8 0 1",
            "ZRANK z9 a",
            "ZREVRANK z10 a",
            "ZRANDMEMBER z11",
            "ZSCAN z12 0",
            "ZUNION 2 z13 z14",
            "ZINTER 1 z15",
            "ZDIFF 2 z16 z17",
            "ZINTERCARD 1 z18",
            "ZUNIONSTORE z19 2 z20 z21",
            "ZINTERSTORE z22 1 z23",
            "ZDIFFSTORE z24 2 z25 z26",
            "ZRANGESTORE z27 z28 0 1",
            "ZREM z29 a",
            "ZPOPMIN z30",
            "ZMPOP 1 z31 MIN",
            "ZINCRBY z32 1 a",
            "ZREMRANGEBYRANK z33 0 1",
            "ZRANGEBYLEX z34 - +",
            "ZREVRANGEBYSCORE z35 1 0",
            "ZREVRANGEBYLEX z36 + -",
        ],
        &[
            ("keymiss", "z1"),
            ("keymiss", "z2"),
            ("keymiss", "z3"),
            ("keymiss", "z4"),
            ("keymiss", "z5"),
            ("keymiss", "z6"),
            ("keymiss", "z7"),
            ("keymiss", "z8"),
            ("keymiss", "z9"),
            ("keymiss", "z10"),
            ("keymiss", "z11"),
            ("keymiss", "z12"),
            ("keymiss", "z13"),
            ("keymiss", "z14"),
            ("keymiss", "z15"),
            ("keymiss", "z16"),
            ("keymiss", "z17"),
            ("keymiss", "z18"),
            ("keymiss", "z20"),
            ("keymiss", "z21"),
            ("keymiss", "z23"),
            ("keymiss", "z25"),
            ("keymiss", "z26"),
            ("keymiss", "z28"),
            ("keymiss", "z34"),
            ("keymiss", "z35"),
            ("keymiss", "z36"),
        ],
    )
    .await;
    check(
        &server,
        "Em",
        &[
            "XRANGE x1 - +",
            "XREVRANGE x2 + -",
            "XLEN x3",
            "XREAD STREAMS x4 x5 0 0",
            "XINFO STREAM x6",
            "XPENDING x7 g",
            "XADD x8 NOMKSTREAM * f v",
            "XTRIM x9 MAXLEN 1",
            "XDEL x10 1-0",
            "XACK x11 g 1-0",
            "XCLAIM x12 g c 0 1-0",
            "XAUTOCLAIM x13 g c 0 0",
            "XGROUP CREATE x14 g $",
            "XSETID x15 1-0",
            "XINFO GROUPS x16",
            "XREADGROUP GROUP g c STREAMS x17 >",
            "GEOPOS g1 a",
            "GEODIST g2 a b",
            "GEOHASH g3 a",
            "GEOSEARCH g4 FROMLONLAT 0 0 BYRADIUS 1 km",
            "GEOSEARCHSTORE g5 g6 FROMLONLAT 0 0 BYRADIUS 1 km",
            "GEORADIUS g7 0 0 1 km",
            "GEORADIUS g8 0 0 1 km STORE g9",
            "GEORADIUSBYMEMBER g10 a 1 km",
            "GEORADIUS_RO g11 0 0 1 km",
            "SORT s1 BY w_* GET o_*",
            "HRANDFIELD h1 1",
            "SRANDMEMBER s3 2",
            "OBJECT FREQ s4",
            "OBJECT IDLETIME s5",
            "LPOS s7 a",
            "HGETALL s8",
            "STRLEN s9",
        ],
        &[
            ("keymiss", "x1"),
            ("keymiss", "x2"),
            ("keymiss", "x3"),
            ("keymiss", "x4"),
            ("keymiss", "x5"),
            ("keymiss", "x4"),
            ("keymiss", "x5"),
            ("keymiss", "x6"),
            ("keymiss", "x7"),
            ("keymiss", "x11"),
            ("keymiss", "x12"),
            ("keymiss", "x13"),
            ("keymiss", "x16"),
            ("keymiss", "x17"),
            ("keymiss", "g1"),
            ("keymiss", "g2"),
            ("keymiss", "g3"),
            ("keymiss", "g4"),
            ("keymiss", "g6"),
            ("keymiss", "g7"),
            ("keymiss", "g8"),
            ("keymiss", "g10"),
            ("keymiss", "g11"),
            ("keymiss", "s1"),
            ("keymiss", "h1"),
            ("keymiss", "s3"),
            ("keymiss", "s7"),
            ("keymiss", "s8"),
            ("keymiss", "s9"),
        ],
    )
    .await;
    check(
        &server,
        "Em",
        &[
            "BITFIELD k1 GET u8 0",
            "BITFIELD k2 SET u8 0 1",
            "XINFO CONSUMERS k3 g",
            "GEORADIUSBYMEMBER k4 a 1 km STORE k5",
            "EXISTS k6 k6",
            "SET k7 v NX GET",
            "XREAD STREAMS k8 $",
            "GEORADIUSBYMEMBER_RO k9 a 1 km",
            "ZRANGE k10 0 1 BYSCORE",
            "LMOVE k11 k12 LEFT LEFT",
            "SMOVE k13 k14 a",
            "RENAME k15 k16",
            "BITFIELD_RO k17 GET u8 0",
            "ZADD k18 XX 1 a",
            "GETRANGE k19 0 1",
            "HSTRLEN k20 a",
            "SINTERSTORE k21 k21",
        ],
        &[
            ("keymiss", "k1"),
            ("keymiss", "k3"),
            ("keymiss", "k4"),
            ("keymiss", "k6"),
            ("keymiss", "k6"),
            ("keymiss", "k7"),
            ("keymiss", "k8"),
            ("keymiss", "k8"),
            ("keymiss", "k9"),
            ("keymiss", "k10"),
            ("keymiss", "k17"),
            ("keymiss", "k19"),
            ("keymiss", "k20"),
            ("keymiss", "k21"),
        ],
    )
    .await;
    // SORT's BY and GET patterns look their keys up too (a key of another
    // type is no miss).
    check(
        &server,
        "Em",
        &[
            "RPUSH s2 1 2",
            "SET w_2 5",
            "HSET o_1 f x",
            "SORT s2 BY w_* GET o_*->f GET # GET o_*",
            "SORT s2 BY nosort GET o_*",
            "SORT s2 BY w_*->f LIMIT 0 1 GET o_* STORE dst",
        ],
        &[
            ("keymiss", "w_1"),
            ("keymiss", "o_2"),
            ("keymiss", "o_2"),
            ("keymiss", "o_2"),
            ("keymiss", "w_1"),
        ],
    )
    .await;
}

/// Events raised by a script's commands arrive, in order, when it ends.
#[tokio::test]
async fn events_of_scripts() {
    let server = start().await;
    check(&server, "EA", &["EVAL redis.call('set',KEYS[1],'v');redis.call('expire',KEYS[1],100);redis.call('del',KEYS[1]) 1 sk", "EVAL redis.call('get','nokey') 0"], &[("set", "sk"), ("expire", "sk"), ("del", "sk")]).await;
    check(
        &server,
        "KEm",
        &["EVAL redis.call('get','nokey') 0"],
        &[("keymiss", "nokey")],
    )
    .await;
}

#[tokio::test]
async fn rename_and_copy_over_a_key_raise_new_as_redis_does() {
    // Redis deletes the old value and adds the new one: `new` for the
    // destination whether it existed or not.
    let server = start().await;
    check(
        &server,
        "EAn",
        &[
            "SET a 1",
            "SET b 2",
            "RENAME a b",
            "SET c 1",
            "COPY b c REPLACE",
            "RENAME c z",
            "COPY z y",
        ],
        &[
            ("new", "a"),
            ("set", "a"),
            ("new", "b"),
            ("set", "b"),
            ("new", "b"),
            ("rename_from", "a"),
            ("rename_to", "b"),
            ("new", "c"),
            ("set", "c"),
            ("new", "c"),
            ("copy_to", "c"),
            ("new", "z"),
            ("rename_from", "c"),
            ("rename_to", "z"),
            ("new", "y"),
            ("copy_to", "y"),
        ],
    )
    .await;
}
