//! Set commands through the `redis` crate: RESP3 shapes, Redis 7.2's listpack
//! order (which the recorded cases, from a 7.0 server, cannot show), MULTI/EXEC,
//! Lua conversions, and the properties of the random commands.

mod common;

use std::collections::HashSet;

use common::{cmd, connect, connect_resp3, err_line, raw, start};
use redis::{AsyncCommands, Value};

fn strings(v: &Value) -> Vec<String> {
    let items = match v {
        Value::Array(items) | Value::Set(items) => items,
        other => panic!("not a collection: {other:?}"),
    };
    items
        .iter()
        .map(|i| match i {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("not a bulk string: {other:?}"),
        })
        .collect()
}

async fn members(con: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<String> {
    strings(&cmd(con, &["SMEMBERS", key]).await.unwrap())
}

#[tokio::test]
async fn resp3_replies_are_sets_where_redis_sends_sets() {
    let server = start().await;
    let mut con = connect_resp3(&server).await;
    let _: i64 = con.sadd("s", &["2", "1"]).await.unwrap();
    for words in [
        &["SMEMBERS", "s"][..],
        &["SINTER", "s", "s"],
        &["SUNION", "s"],
        &["SDIFF", "s", "nokey"],
        &["SMEMBERS", "nokey"],
        &["SPOP", "nokey", "3"],
    ] {
        let v = cmd(&mut con, words).await.unwrap();
        assert!(matches!(v, Value::Set(_)), "{words:?}: {v:?}");
    }
    let v = cmd(&mut con, &["SRANDMEMBER", "s", "5"]).await.unwrap();
    assert!(matches!(v, Value::Array(_)), "{v:?}");
    let v = cmd(&mut con, &["SPOP", "s", "1"]).await.unwrap();
    assert!(matches!(&v, Value::Set(m) if m.len() == 1), "{v:?}");
    let got = raw(
        &server,
        b"HELLO 3\r\nSADD t 1 2\r\nSMEMBERS t\r\n",
        usize::MAX,
    )
    .await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.ends_with(":2\r\n~2\r\n$1\r\n1\r\n$1\r\n2\r\n"),
        "{text}"
    );
    let got = raw(&server, b"SMEMBERS t\r\nSPOP nokey 1\r\n", usize::MAX).await;
    assert_eq!(&got[..], b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n*0\r\n");
}

#[tokio::test]
async fn small_sets_of_strings_keep_insertion_order_as_redis_7_2_listpacks() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _: i64 = con.sadd("l", &["c", "a", "b", "a"]).await.unwrap();
    assert_eq!(members(&mut con, "l").await, ["c", "a", "b"]);
    let _: i64 = con.srem("l", "a").await.unwrap();
    let _: i64 = con.sadd("l", "a").await.unwrap();
    assert_eq!(members(&mut con, "l").await, ["c", "b", "a"]);
    // An intset meeting a string: its integers in order, then the string.
    let _: i64 = con.sadd("m", &["5", "1"]).await.unwrap();
    let _: i64 = con.sadd("m", &["z", "3"]).await.unwrap();
    assert_eq!(members(&mut con, "m").await, ["1", "5", "z", "3"]);
    // SRANDMEMBER with a count above the size: the whole set in its order.
    let v = cmd(&mut con, &["SRANDMEMBER", "m", "10"]).await.unwrap();
    assert_eq!(strings(&v), ["1", "5", "z", "3"]);
}

#[tokio::test]
async fn multi_set_results_come_in_the_order_redis_builds_them() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _: i64 = con.sadd("a", &["b", "3", "1"]).await.unwrap();
    let _: i64 = con.sadd("b", &["3", "1"]).await.unwrap();
    let _: i64 = con.sadd("c", &["x", "b", "3", "1", "y"]).await.unwrap();
    // The result starts as an intset: integers sorted until a string arrives.
    let v = cmd(&mut con, &["SUNION", "a", "b"]).await.unwrap();
    assert_eq!(strings(&v), ["b", "3", "1"]);
    let v = cmd(&mut con, &["SUNION", "b", "a"]).await.unwrap();
    assert_eq!(strings(&v), ["1", "3", "b"]);
    let v = cmd(&mut con, &["SDIFF", "c", "b"]).await.unwrap();
    assert_eq!(strings(&v), ["x", "b", "y"]);
    // SINTER walks the smallest set.
    let v = cmd(&mut con, &["SINTER", "c", "a"]).await.unwrap();
    assert_eq!(strings(&v), ["b", "3", "1"]);
    let n: i64 = redis::cmd("SINTERSTORE")
        .arg(&["d", "c", "a"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(members(&mut con, "d").await, ["b", "3", "1"]);
    // Integers only: the stored intersection is sorted (an intset).
    let n: i64 = redis::cmd("SINTERSTORE")
        .arg(&["d", "c", "b"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(members(&mut con, "d").await, ["1", "3"]);
    // SPOP of the whole set replies in the order of its union.
    let v = cmd(&mut con, &["SPOP", "a", "3"]).await.unwrap();
    assert_eq!(strings(&v), ["b", "3", "1"]);
    assert_eq!(server.dbsize(0), 3);
}

#[tokio::test]
async fn big_sets_become_hashtables_and_stay_complete() {
    let server = start().await;
    let mut con = connect(&server).await;
    let many: Vec<String> = (0..1000).map(|i| format!("member:{i}")).collect();
    let n: i64 = con.sadd("h", &many).await.unwrap();
    assert_eq!(n, 1000);
    let got: HashSet<String> = members(&mut con, "h").await.into_iter().collect();
    assert_eq!(got, many.iter().cloned().collect());
    let ints: Vec<String> = (0..600).map(|i| i.to_string()).collect();
    let _: i64 = con.sadd("i", &ints).await.unwrap();
    let card: i64 = con.scard("i").await.unwrap();
    assert_eq!(card, 600);
    let inter: i64 = redis::cmd("SINTERCARD")
        .arg(&["2", "h", "i"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(inter, 0);
}

#[tokio::test]
async fn sscan_walks_a_hashtable_in_steps_and_returns_every_member() {
    let server = start().await;
    let mut con = connect(&server).await;
    let many: Vec<String> = (0..500).map(|i| format!("m{i}")).collect();
    let _: i64 = con.sadd("h", &many).await.unwrap();
    let (mut cursor, mut seen, mut steps) = ("0".to_string(), HashSet::new(), 0);
    loop {
        let v = cmd(&mut con, &["SSCAN", "h", &cursor, "COUNT", "20"])
            .await
            .unwrap();
        let Value::Array(parts) = v else {
            panic!("array")
        };
        let Value::BulkString(next) = &parts[0] else {
            panic!("cursor")
        };
        let batch = strings(&parts[1]);
        assert!(batch.len() < 60, "{}", batch.len());
        seen.extend(batch);
        steps += 1;
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor == "0" {
            break;
        }
        assert!(steps < 500);
    }
    assert!(steps > 5, "{steps}");
    assert_eq!(seen, many.iter().cloned().collect());
    let v = cmd(
        &mut con,
        &["SSCAN", "h", "0", "MATCH", "m1?", "COUNT", "1000"],
    )
    .await
    .unwrap();
    let Value::Array(parts) = v else {
        panic!("array")
    };
    let got: HashSet<String> = strings(&parts[1]).into_iter().collect();
    let want: HashSet<String> = (10..20).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn spop_and_srandmember_return_members_with_the_right_shape() {
    let server = start().await;
    let mut con = connect(&server).await;
    for size in [5usize, 100, 300, 700] {
        let all: Vec<String> = (0..size).map(|i| format!("v{i}")).collect();
        let all_set: HashSet<String> = all.iter().cloned().collect();
        let _: i64 = con.sadd("r", &all).await.unwrap();
        for count in [1usize, 2, size / 2, size - 1] {
            let v = cmd(&mut con, &["SRANDMEMBER", "r", &count.to_string()])
                .await
                .unwrap();
            let got = strings(&v);
            let distinct: HashSet<String> = got.iter().cloned().collect();
            assert_eq!((got.len(), distinct.len()), (count, count));
            assert!(distinct.is_subset(&all_set));
            let v = cmd(&mut con, &["SRANDMEMBER", "r", &format!("-{}", count * 3)])
                .await
                .unwrap();
            let got = strings(&v);
            assert_eq!(got.len(), count * 3);
            assert!(got.iter().all(|m| all_set.contains(m)));
        }
        // Pop a few, then most of what is left: distinct members of the set,
        // and the set keeps the rest.
        let mut left = all_set.clone();
        for count in [1, size / 2, size / 2 - 1] {
            let v = cmd(&mut con, &["SPOP", "r", &count.to_string()])
                .await
                .unwrap();
            let got = strings(&v);
            assert_eq!(got.len(), count);
            for m in got {
                assert!(left.remove(&m), "{m} popped twice or never a member");
            }
            let card: usize = con.scard("r").await.unwrap();
            assert_eq!(card, left.len());
        }
        let rest: HashSet<String> = members(&mut con, "r").await.into_iter().collect();
        assert_eq!(rest, left);
        let _: i64 = con.del("r").await.unwrap();
    }
    // A single SPOP empties a one-member set.
    let _: i64 = con.sadd("one", "x").await.unwrap();
    let popped: Option<String> = con.spop("one").await.unwrap();
    assert_eq!(popped.as_deref(), Some("x"));
    assert_eq!(server.dbsize(0), 0);
}

#[tokio::test]
async fn a_huge_negative_srandmember_count_is_clamped() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _: i64 = con.sadd("one", "x").await.unwrap();
    let v = cmd(&mut con, &["SRANDMEMBER", "one", "-9223372036854775807"])
        .await
        .unwrap();
    let Value::Array(items) = v else {
        panic!("array")
    };
    assert_eq!(items.len(), latchkey::commands::set::MAX_REPEATED_SAMPLE);
    let v = cmd(&mut con, &["SRANDMEMBER", "one", "9223372036854775807"])
        .await
        .unwrap();
    assert_eq!(strings(&v), ["x"]);
    let v = cmd(&mut con, &["SPOP", "one", "9223372036854775807"])
        .await
        .unwrap();
    assert_eq!(strings(&v), ["x"]);
}

#[tokio::test]
async fn commands_that_change_nothing_keep_a_watch_valid() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _: i64 = con.sadd("s", &["a", "b"]).await.unwrap();
    let mut other = connect(&server).await;
    cmd(&mut con, &["WATCH", "s"]).await.unwrap();
    let _: i64 = other.sadd("s", "a").await.unwrap();
    let _: i64 = other.srem("s", "zz").await.unwrap();
    cmd(&mut con, &["MULTI"]).await.unwrap();
    cmd(&mut con, &["SCARD", "s"]).await.unwrap();
    let v = cmd(&mut con, &["EXEC"]).await.unwrap();
    assert_eq!(v, Value::Array(vec![Value::Int(2)]));
    // A real change aborts it.
    cmd(&mut con, &["WATCH", "s"]).await.unwrap();
    let _: i64 = other.sadd("s", "c").await.unwrap();
    cmd(&mut con, &["MULTI"]).await.unwrap();
    cmd(&mut con, &["SCARD", "s"]).await.unwrap();
    let v = cmd(&mut con, &["EXEC"]).await.unwrap();
    assert_eq!(v, Value::Nil);
}

#[tokio::test]
async fn set_commands_run_inside_multi_exec() {
    let server = start().await;
    let mut con = connect(&server).await;
    let (added, moved, card, inter): (i64, i64, i64, Vec<String>) = redis::pipe()
        .atomic()
        .cmd("SADD")
        .arg(&["a", "1", "2", "3"])
        .cmd("SMOVE")
        .arg(&["a", "b", "2"])
        .cmd("SCARD")
        .arg("a")
        .cmd("SUNION")
        .arg(&["a", "b"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!((added, moved, card), (3, 1, 2));
    assert_eq!(inter, ["1", "2", "3"]);
    let line = err_line(&mut con, &["SINTERCARD", "0", "a"]).await;
    assert_eq!(line, "ERR numkeys should be greater than 0");
}

#[tokio::test]
async fn lua_sees_sets_as_arrays_and_in_resp3_as_sets() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _: i64 = con.sadd("s", &["3", "1", "2"]).await.unwrap();
    let got: Vec<String> = redis::cmd("EVAL")
        .arg("return redis.call('SMEMBERS', KEYS[1])")
        .arg(1)
        .arg("s")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(got, ["1", "2", "3"]);
    let got: i64 = redis::cmd("EVAL")
        .arg("return redis.call('SISMEMBER', KEYS[1], '2') + redis.call('SCARD', KEYS[1])")
        .arg(1)
        .arg("s")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(got, 4);
    // With RESP3 a set reaches Lua as {set = {member = true}} and goes back out
    // as a set.
    let script = "redis.setresp(3); local r = redis.call('SMEMBERS', KEYS[1]); \
                  local n = 0; for k, v in pairs(r.set) do n = n + 1 end; \
                  if ARGV[1] == 'count' then return n end; return r";
    let n: i64 = redis::cmd("EVAL")
        .arg(script)
        .arg(1)
        .arg("s")
        .arg("count")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 3);
    let mut con3 = connect_resp3(&server).await;
    let v: Value = redis::cmd("EVAL")
        .arg(script)
        .arg(1)
        .arg("s")
        .arg("set")
        .query_async(&mut con3)
        .await
        .unwrap();
    let Value::Set(items) = &v else {
        panic!("set: {v:?}")
    };
    let mut got = strings(&Value::Array(items.clone()));
    got.sort();
    assert_eq!(got, ["1", "2", "3"]);
}

#[tokio::test]
async fn store_commands_replace_other_types_and_lock_keys_together() {
    let server = start().await;
    let mut con = connect(&server).await;
    server.set("dst", "string", None);
    let _: i64 = con.sadd("a", &["1", "2"]).await.unwrap();
    let n: i64 = redis::cmd("SUNIONSTORE")
        .arg(&["dst", "a", "nokey"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let t: String = redis::cmd("TYPE")
        .arg("dst")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(t, "set");
    // Concurrent SMOVEs between two sets never lose or duplicate a member.
    let items: Vec<String> = (0..200).map(|i| format!("x{i}")).collect();
    let _: i64 = con.sadd("left", &items).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let mut c = connect(&server).await;
        let items = items.clone();
        tasks.push(tokio::spawn(async move {
            for (i, m) in items.iter().enumerate() {
                let (from, to) = if (i + t) % 2 == 0 {
                    ("left", "right")
                } else {
                    ("right", "left")
                };
                let _: i64 = redis::cmd("SMOVE")
                    .arg(&[from, to, m])
                    .query_async(&mut c)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let l: usize = con.scard("left").await.unwrap();
    let r: usize = con.scard("right").await.unwrap();
    assert_eq!(l + r, 200);
    let n: i64 = redis::cmd("SINTERCARD")
        .arg(&["2", "left", "right"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 0);
}
