//! COPY and MOVE beyond what `redis-tests/copy_move.txt` records: locks (which
//! latchkey refuses to copy or move), WATCH from another client, clients
//! blocked on the destination, and two commands crossing the same databases in
//! opposite directions at once. Also DBSIZE, KEYS, SCAN and RANDOMKEY over a
//! lock key, and SWAPDB (swapdb.txt records its replies): it serves clients
//! blocked in either database, touches WATCHes from other clients, runs
//! alongside COPY and MOVE without deadlock, and refuses a database holding
//! a lock.

mod common;

use std::time::Duration;

use common::{block_raw, cmd, connect, err_line, expect_reply, start, until_blocked};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, Value};

async fn int(con: &mut MultiplexedConnection, words: &[&str]) -> i64 {
    match cmd(con, words).await.unwrap() {
        Value::Int(n) => n,
        other => panic!("{words:?}: expected an integer, got {other:?}"),
    }
}

/// Takes the lock at `key` for `owner`; its fencing token, as text.
async fn acquire(con: &mut MultiplexedConnection, key: &str, owner: &str) -> String {
    int(con, &["LOCK.ACQUIRE", key, owner, "100000"])
        .await
        .to_string()
}

const NOT_SUPPORTED: &str = "ERR not supported for this module key";

#[tokio::test]
async fn copy_of_a_lock_is_refused_and_the_lock_is_untouched() {
    let server = start().await;
    let mut con = connect(&server).await;
    let token = acquire(&mut con, "L", "me").await;
    assert_eq!(
        err_line(&mut con, &["COPY", "L", "L2"]).await,
        NOT_SUPPORTED
    );
    assert_eq!(
        err_line(&mut con, &["COPY", "L", "L", "DB", "1"]).await,
        NOT_SUPPORTED
    );
    assert_eq!(int(&mut con, &["EXISTS", "L2"]).await, 0);
    // An existing destination without REPLACE answers 0 first, as Redis checks
    // the destination before it copies.
    let _: () = con.set("taken", "x").await.unwrap();
    assert_eq!(int(&mut con, &["COPY", "L", "taken"]).await, 0);
    assert_eq!(
        err_line(&mut con, &["COPY", "L", "taken", "REPLACE"]).await,
        NOT_SUPPORTED
    );
    let kept: String = con.get("taken").await.unwrap();
    assert_eq!(kept, "x");
    // The lock is still held by its owner.
    assert_eq!(int(&mut con, &["LOCK.VALIDATE", "L", &token]).await, 1);
    assert_eq!(int(&mut con, &["LOCK.RELEASE", "L", "me"]).await, 1);
}

#[tokio::test]
async fn move_of_a_lock_is_refused_and_the_lock_stays_in_its_database() {
    let server = start().await;
    let mut con = connect(&server).await;
    let token = acquire(&mut con, "L", "me").await;
    assert_eq!(err_line(&mut con, &["MOVE", "L", "1"]).await, NOT_SUPPORTED);
    assert_eq!(int(&mut con, &["LOCK.VALIDATE", "L", &token]).await, 1);
    assert_eq!(server.dbsize(1), 0);
    // A key already there answers 0 before the lock is looked at.
    let _: () = cmd(&mut con, &["SELECT", "1"]).await.map(|_| ()).unwrap();
    let _: () = con.set("L", "x").await.unwrap();
    let _: () = cmd(&mut con, &["SELECT", "0"]).await.map(|_| ()).unwrap();
    assert_eq!(int(&mut con, &["MOVE", "L", "1"]).await, 0);
    // A value copied onto a lock's key needs REPLACE, which overwrites the
    // lock as SET does.
    let _: () = con.set("s", "v").await.unwrap();
    assert_eq!(int(&mut con, &["COPY", "s", "L"]).await, 0);
    assert_eq!(int(&mut con, &["COPY", "s", "L", "REPLACE"]).await, 1);
    let now: String = con.get("L").await.unwrap();
    assert_eq!(now, "v");
}

#[tokio::test]
async fn dbsize_keys_scan_and_randomkey_see_a_lock() {
    let server = start().await;
    let mut con = connect(&server).await;
    acquire(&mut con, "L", "me").await;
    let _: () = con.set("s", "v").await.unwrap();
    assert_eq!(int(&mut con, &["DBSIZE"]).await, 2);
    let mut keys: Vec<String> = con.keys("*").await.unwrap();
    keys.sort();
    assert_eq!(keys, ["L", "s"]);
    let (cursor, found): (String, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("TYPE")
        .arg("lock")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!((cursor.as_str(), found), ("0", vec!["L".to_string()]));
    let _: () = con.del("s").await.unwrap();
    let random: Option<String> = redis::cmd("RANDOMKEY").query_async(&mut con).await.unwrap();
    assert_eq!(random.as_deref(), Some("L"));
    assert_eq!(int(&mut con, &["LOCK.RELEASE", "L", "me"]).await, 1);
    assert_eq!(int(&mut con, &["DBSIZE"]).await, 0);
}

/// Runs MULTI / PING / EXEC on `con` and says whether EXEC ran (false: a
/// watched key changed).
async fn exec_runs(con: &mut MultiplexedConnection) -> bool {
    let _: () = redis::cmd("MULTI").query_async(con).await.unwrap();
    let _: () = redis::cmd("PING").query_async(con).await.unwrap();
    let r: Value = redis::cmd("EXEC").query_async(con).await.unwrap();
    !matches!(r, Value::Nil)
}

#[tokio::test]
async fn copy_touches_the_watched_destination_in_its_database_only() {
    let server = start().await;
    let mut writer = connect(&server).await;
    let mut watcher = connect(&server).await;
    let _: () = writer.set("src", "v").await.unwrap();

    // Watching the destination in database 1.
    let _: () = cmd(&mut watcher, &["SELECT", "1"])
        .await
        .map(|_| ())
        .unwrap();
    let _: () = cmd(&mut watcher, &["WATCH", "dst"])
        .await
        .map(|_| ())
        .unwrap();
    assert_eq!(
        int(&mut writer, &["COPY", "src", "dst", "DB", "1"]).await,
        1
    );
    assert!(!exec_runs(&mut watcher).await);

    // The source is not modified by a copy.
    let _: () = cmd(&mut watcher, &["SELECT", "0"])
        .await
        .map(|_| ())
        .unwrap();
    let _: () = cmd(&mut watcher, &["WATCH", "src"])
        .await
        .map(|_| ())
        .unwrap();
    assert_eq!(int(&mut writer, &["COPY", "src", "other"]).await, 1);
    assert!(exec_runs(&mut watcher).await);

    // The same name in another database is another key.
    let _: () = cmd(&mut watcher, &["WATCH", "dst"])
        .await
        .map(|_| ())
        .unwrap();
    assert_eq!(
        int(&mut writer, &["COPY", "src", "dst", "DB", "2"]).await,
        1
    );
    assert!(exec_runs(&mut watcher).await);
}

#[tokio::test]
async fn move_touches_the_key_in_both_databases() {
    let server = start().await;
    let mut writer = connect(&server).await;
    let mut watcher = connect(&server).await;
    for (watch_db, _) in [("0", "source"), ("3", "destination")] {
        let _: () = writer.set("k", "v").await.unwrap();
        let _: () = cmd(&mut watcher, &["SELECT", watch_db])
            .await
            .map(|_| ())
            .unwrap();
        let _: () = cmd(&mut watcher, &["WATCH", "k"])
            .await
            .map(|_| ())
            .unwrap();
        assert_eq!(int(&mut writer, &["MOVE", "k", "3"]).await, 1);
        assert!(!exec_runs(&mut watcher).await, "watched in db {watch_db}");
        let _: () = cmd(&mut writer, &["FLUSHALL"]).await.map(|_| ()).unwrap();
    }
    // A refused MOVE (the key exists there) touches nothing.
    let _: () = writer.set("k", "v").await.unwrap();
    let _: () = cmd(&mut watcher, &["SELECT", "3"])
        .await
        .map(|_| ())
        .unwrap();
    let _: () = watcher.set("k", "there").await.unwrap();
    let _: () = cmd(&mut watcher, &["WATCH", "k"])
        .await
        .map(|_| ())
        .unwrap();
    assert_eq!(int(&mut writer, &["MOVE", "k", "3"]).await, 0);
    assert!(exec_runs(&mut watcher).await);
}

#[tokio::test]
async fn copy_into_a_waited_key_serves_the_blocked_client() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _: () = con.rpush("src", &["a", "b"]).await.unwrap();
    let mut s = block_raw(&server, &mut con, "BLPOP dst 0\r\n", 1).await;
    assert_eq!(int(&mut con, &["COPY", "src", "dst"]).await, 1);
    expect_reply(&mut s, "*2\r\n$3\r\ndst\r\n$1\r\na\r\n").await;
    let rest: Vec<String> = con.lrange("dst", 0, -1).await.unwrap();
    assert_eq!(rest, ["b"]);
    let src: Vec<String> = con.lrange("src", 0, -1).await.unwrap();
    assert_eq!(src, ["a", "b"]);
}

#[tokio::test]
async fn copy_to_another_database_serves_a_client_blocked_there() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _: () = con.zadd("z", "m", 5).await.unwrap();
    let mut s = block_raw(&server, &mut con, "SELECT 4\r\nBZPOPMIN z 0\r\n", 1).await;
    assert_eq!(int(&mut con, &["COPY", "z", "z", "DB", "4"]).await, 1);
    expect_reply(&mut s, "+OK\r\n*3\r\n$1\r\nz\r\n$1\r\nm\r\n$1\r\n5\r\n").await;
    assert_eq!(server.dbsize(4), 0);
    assert_eq!(int(&mut con, &["ZCARD", "z"]).await, 1);
}

#[tokio::test]
async fn move_serves_a_client_blocked_in_the_destination_database() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _: () = con.rpush("q", &["x"]).await.unwrap();
    let mut s = block_raw(&server, &mut con, "SELECT 2\r\nBRPOP q 0\r\n", 1).await;
    // The same key in the source database does not wake it.
    let _: () = con.rpush("other", &["y"]).await.unwrap();
    assert_eq!(int(&mut con, &["MOVE", "q", "2"]).await, 1);
    expect_reply(&mut s, "+OK\r\n*2\r\n$1\r\nq\r\n$1\r\nx\r\n").await;
    assert_eq!(server.dbsize(2), 0);
    assert_eq!(server.dbsize(0), 1);
    until_blocked(&mut con, 0).await;
}

/// Clients copying and moving the same 50 keys between databases 0 and 1
/// in both directions (`directions`, `rounds` times over), beside `extra`;
/// every task must finish within a minute.
async fn cross_databases(
    server: &latchkey::ServerHandle,
    directions: &[(&'static str, &'static str)],
    rounds: usize,
    extra: Option<tokio::task::JoinHandle<()>>,
) {
    let mut setup = connect(server).await;
    for db in ["0", "1"] {
        cmd(&mut setup, &["SELECT", db]).await.unwrap();
        for i in 0..50 {
            let _: () = setup.set(format!("k{i}"), db).await.unwrap();
        }
    }
    let mut tasks: Vec<_> = extra.into_iter().collect();
    for &(from, to) in directions {
        let mut con = connect(server).await;
        tasks.push(tokio::spawn(async move {
            cmd(&mut con, &["SELECT", from]).await.unwrap();
            for round in 0..rounds {
                for i in 0..50 {
                    let (a, b) = (format!("k{i}"), format!("k{}", (i + round) % 50));
                    cmd(&mut con, &["COPY", &a, &b, "DB", to, "REPLACE"])
                        .await
                        .unwrap();
                    cmd(&mut con, &["MOVE", &a, to]).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("no deadlock")
            .unwrap();
    }
}

#[tokio::test]
async fn copies_and_moves_crossing_databases_both_ways_do_not_deadlock() {
    let server = start().await;
    let both_ways = [("0", "1"), ("1", "0"), ("0", "1"), ("1", "0")];
    cross_databases(&server, &both_ways, 20, None).await;
}

#[tokio::test]
async fn swapdb_serves_clients_blocked_in_either_database() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _: () = con.rpush("q", &["x"]).await.unwrap();
    let mut in_one = block_raw(&server, &mut con, "SELECT 1\r\nBLPOP q 0\r\n", 1).await;
    let mut in_zero = block_raw(&server, &mut con, "BLPOP r 0\r\n", 2).await;
    cmd(&mut con, &["SELECT", "1"]).await.unwrap();
    let _: () = con.rpush("r", &["y"]).await.unwrap();
    cmd(&mut con, &["SELECT", "0"]).await.unwrap();
    assert_eq!(
        cmd(&mut con, &["SWAPDB", "0", "1"]).await.unwrap(),
        Value::Okay
    );
    expect_reply(&mut in_one, "+OK\r\n*2\r\n$1\r\nq\r\n$1\r\nx\r\n").await;
    expect_reply(&mut in_zero, "*2\r\n$1\r\nr\r\n$1\r\ny\r\n").await;
    assert_eq!(server.dbsize(0), 0);
    assert_eq!(server.dbsize(1), 0);
    until_blocked(&mut con, 0).await;
}

#[tokio::test]
async fn swapdb_fails_another_clients_watch_on_a_key_in_either_database() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut watcher = connect(&server).await;
    cmd(&mut watcher, &["SELECT", "3"]).await.unwrap();
    cmd(&mut watcher, &["WATCH", "k"]).await.unwrap();
    let _: () = con.set("k", "v").await.unwrap();
    assert_eq!(
        cmd(&mut con, &["SWAPDB", "3", "0"]).await.unwrap(),
        Value::Okay
    );
    assert!(!exec_runs(&mut watcher).await, "k now exists in database 3");
    cmd(&mut watcher, &["WATCH", "nothing"]).await.unwrap();
    assert_eq!(
        cmd(&mut con, &["SWAPDB", "3", "0"]).await.unwrap(),
        Value::Okay
    );
    assert!(exec_runs(&mut watcher).await, "no such key on either side");
}

#[tokio::test]
async fn swapdb_refuses_a_database_holding_a_lock() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _: () = con.set("plain", "v").await.unwrap();
    cmd(&mut con, &["SELECT", "5"]).await.unwrap();
    let token = acquire(&mut con, "L", "me").await;
    for (a, b) in [("0", "5"), ("5", "0"), ("5", "5")] {
        let got = cmd(&mut con, &["SWAPDB", a, b]).await;
        if a == b {
            assert_eq!(
                got.unwrap(),
                Value::Okay,
                "a database with itself is no move"
            );
        } else {
            assert_eq!(
                err_line(&mut con, &["SWAPDB", a, b]).await,
                "ERR SWAPDB cannot move locks: a database to swap holds a LOCK key"
            );
        }
    }
    assert_eq!(int(&mut con, &["LOCK.VALIDATE", "L", &token]).await, 1);
    assert_eq!(server.dbsize(0), 1);
    assert_eq!(int(&mut con, &["LOCK.RELEASE", "L", "me"]).await, 1);
    assert_eq!(
        cmd(&mut con, &["SWAPDB", "0", "5"]).await.unwrap(),
        Value::Okay
    );
    assert_eq!(server.dbsize(5), 1);
}

#[tokio::test]
async fn swapdb_beside_copies_and_moves_does_not_deadlock() {
    let server = start().await;
    let mut swapper = connect(&server).await;
    let swaps = tokio::spawn(async move {
        for _ in 0..500 {
            cmd(&mut swapper, &["SWAPDB", "1", "0"]).await.unwrap();
        }
    });
    cross_databases(&server, &[("0", "1"), ("1", "0")], 10, Some(swaps)).await;
    // Nothing was doubled by the swaps: MOVE only moves, COPY only writes
    // over keys of the same names.
    assert!(server.dbsize(0) + server.dbsize(1) <= 100);
}

#[tokio::test]
async fn swapped_keys_expire_in_their_new_database() {
    let server = latchkey::Server::builder()
        .paused_time()
        .start()
        .await
        .unwrap();
    let mut con = connect(&server).await;
    let _: () = con.set("keep", "v").await.unwrap();
    cmd(&mut con, &["SET", "t", "v", "PX", "100"])
        .await
        .unwrap();
    assert_eq!(
        cmd(&mut con, &["SWAPDB", "0", "1"]).await.unwrap(),
        Value::Okay
    );
    assert_eq!(server.dbsize(1), 2);
    // The expiry task finds the deadline where the key now lives, without
    // anyone reading it.
    server.advance_time(Duration::from_millis(200));
    for _ in 0..100 {
        if server.dbsize(1) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.dbsize(1), 1);
    assert_eq!(server.dbsize(0), 0);
}
