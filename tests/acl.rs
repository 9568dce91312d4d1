//! ACL users as clients meet them: logging in with a username (raw AUTH, the
//! `redis` crate's URL, redis-cli `--user`/`--pass`), what a restricted user may
//! and may not touch (a lock-only user), ACL DELUSER closing the user's
//! clients, the ACL log, requirepass as the default user's password, the ACL
//! file, `user` lines, acl-pubsub-default. Redis's replies to the rule
//! language and NOPERM texts are in redis-tests/acl.txt and acl_perms.txt.

mod common;

use std::time::Duration;

use common::{cmd, connect, raw};
use latchkey::{Server, ServerHandle};
use redis::Value;

fn url_as(server: &ServerHandle, user: &str, pass: &str) -> String {
    server
        .url()
        .replace("redis://", &format!("redis://{user}:{pass}@"))
}

async fn connect_as(
    server: &ServerHandle,
    user: &str,
    pass: &str,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(url_as(server, user, pass))?
        .get_multiplexed_async_connection()
        .await
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Okay => "OK".into(),
        Value::Int(n) => n.to_string(),
        Value::Nil => "(nil)".into(),
        other => format!("{other:?}"),
    }
}

async fn err(con: &mut redis::aio::MultiplexedConnection, words: &[&str]) -> String {
    common::err_line(con, words).await
}

#[tokio::test]
async fn a_lock_only_user_takes_and_releases_locks_under_its_prefix_only() {
    let server = Server::builder()
        .user("locker on >pw ~lock:* +@lock +@connection")
        .start()
        .await
        .unwrap();
    let mut con = connect_as(&server, "locker", "pw").await.unwrap();
    let token = cmd(&mut con, &["LOCK.ACQUIRE", "lock:a", "me", "10000"])
        .await
        .unwrap();
    assert!(matches!(token, Value::Int(t) if t > 0), "{token:?}");
    assert_eq!(
        cmd(&mut con, &["LOCK.EXTEND", "lock:a", "me", "20000"])
            .await
            .unwrap(),
        Value::Int(1)
    );
    assert_eq!(
        cmd(&mut con, &["LOCK.RELEASE", "lock:a", "me"])
            .await
            .unwrap(),
        Value::Int(1)
    );
    assert_eq!(
        err(&mut con, &["LOCK.ACQUIRE", "other", "me", "10000"]).await,
        "NOPERM this user has no permissions to access one of the keys used as arguments"
    );
    assert_eq!(
        err(&mut con, &["GET", "lock:a"]).await,
        "NOPERM this user has no permissions to run the 'get' command"
    );
    assert_eq!(
        err(&mut con, &["FLUSHALL"]).await,
        "NOPERM this user has no permissions to run the 'flushall' command"
    );
    assert_eq!(
        text(&cmd(&mut con, &["PING"]).await.unwrap()),
        "PONG",
        "@connection is allowed"
    );
    // The same rules given at run time.
    let mut admin = connect(&server).await;
    assert_eq!(
        text(
            &cmd(
                &mut admin,
                &[
                    "ACL",
                    "SETUSER",
                    "l2",
                    "on",
                    ">pw",
                    "~lock:*",
                    "+@lock",
                    "+@connection"
                ]
            )
            .await
            .unwrap()
        ),
        "OK"
    );
    let mut con = connect_as(&server, "l2", "pw").await.unwrap();
    assert!(matches!(
        cmd(&mut con, &["LOCK.ACQUIRE", "lock:b", "me", "10000"]).await,
        Ok(Value::Int(_))
    ));
    assert_eq!(
        err(&mut con, &["ACL", "WHOAMI"]).await,
        "NOPERM this user has no permissions to run the 'acl|whoami' command",
        "acl|whoami is not in @connection"
    );
}

#[tokio::test]
async fn hello_auth_logs_in_as_a_user_and_switches_protocol() {
    let server = Server::builder()
        .user("h on >pw +@all ~*")
        .start()
        .await
        .unwrap();
    let got = raw(&server, b"HELLO 3 AUTH h pw\r\nACL WHOAMI\r\n", 10_000).await;
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("%7\r\n"), "{got}");
    assert!(got.ends_with("$1\r\nh\r\n"), "{got}");
    let got = raw(&server, b"HELLO 3 AUTH h nope\r\nACL WHOAMI\r\n", 10_000).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n$7\r\ndefault\r\n",
        "a refused HELLO leaves RESP2 and the default user"
    );
}

#[tokio::test]
async fn acl_cat_lists_redis_categories_then_lock() {
    let server = common::start().await;
    let mut con = connect(&server).await;
    let Value::Array(cats) = cmd(&mut con, &["ACL", "CAT"]).await.unwrap() else {
        panic!("not an array")
    };
    let cats: Vec<String> = cats.iter().map(text).collect();
    assert_eq!(cats.len(), 22);
    assert_eq!(cats[0], "keyspace");
    assert_eq!(cats[20], "scripting");
    assert_eq!(cats[21], "lock");
    let Value::Array(locks) = cmd(&mut con, &["ACL", "CAT", "LOCK"]).await.unwrap() else {
        panic!("not an array")
    };
    let mut locks: Vec<String> = locks.iter().map(text).collect();
    locks.sort();
    assert_eq!(
        locks,
        [
            "lock.acquire",
            "lock.extend",
            "lock.info",
            "lock.list",
            "lock.release",
            "lock.validate"
        ]
    );
    let Value::Array(geo) = cmd(&mut con, &["ACL", "CAT", "geo"]).await.unwrap() else {
        panic!("not an array")
    };
    assert!(geo.iter().map(text).any(|c| c == "geoadd"));
}

#[tokio::test]
async fn wrong_passwords_and_disabled_users_get_wrongpass_and_are_logged() {
    let server = Server::builder()
        .user("u on >pw +@all ~*")
        .user("off1 off >pw +@all ~*")
        .start()
        .await
        .unwrap();
    let got = raw(
        &server,
        b"AUTH u nope\r\nAUTH off1 pw\r\nAUTH nosuch x\r\nAUTH u pw\r\nACL WHOAMI\r\n",
        10_000,
    )
    .await;
    let wrong = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    assert_eq!(
        String::from_utf8_lossy(&got),
        format!("{wrong}{wrong}{wrong}+OK\r\n$1\r\nu\r\n")
    );
    let mut con = connect(&server).await;
    let Value::Array(log) = cmd(&mut con, &["ACL", "LOG"]).await.unwrap() else {
        panic!("not an array")
    };
    assert_eq!(log.len(), 3);
    let Value::Array(first) = &log[0] else {
        panic!("entry not an array")
    };
    let fields: Vec<String> = first.iter().map(text).collect();
    assert_eq!(
        fields[..12],
        [
            "count",
            "1",
            "reason",
            "auth",
            "context",
            "toplevel",
            "object",
            "AUTH",
            "username",
            "nosuch",
            "age-seconds",
            fields[11].as_str()
        ]
    );
    assert_eq!(fields[12], "client-info");
    assert!(fields[13].contains(" user=default "), "{}", fields[13]);
    assert_eq!(
        text(&cmd(&mut con, &["ACL", "LOG", "RESET"]).await.unwrap()),
        "OK"
    );
    assert_eq!(
        cmd(&mut con, &["ACL", "LOG"]).await.unwrap(),
        Value::Array(vec![])
    );
}

#[tokio::test]
async fn refusals_are_logged_with_their_object_and_like_ones_counted() {
    let server = Server::builder()
        .user("u on >pw -@all +get ~k*")
        .start()
        .await
        .unwrap();
    let mut u = connect_as(&server, "u", "pw").await.unwrap();
    err(&mut u, &["SET", "k", "v"]).await;
    err(&mut u, &["SET", "k", "v"]).await;
    err(&mut u, &["GET", "x"]).await;
    let mut admin = connect(&server).await;
    let Value::Array(log) = cmd(&mut admin, &["ACL", "LOG", "5"]).await.unwrap() else {
        panic!("not an array")
    };
    let entry = |i: usize| -> Vec<String> {
        let Value::Array(e) = &log[i] else { panic!() };
        e.iter().map(text).collect()
    };
    let key = entry(0);
    assert_eq!(
        key[..10],
        ["count", "1", "reason", "key", "context", "toplevel", "object", "x", "username", "u"]
    );
    let command = entry(1);
    assert_eq!(
        command[..10],
        [
            "count", "2", "reason", "command", "context", "toplevel", "object", "set", "username",
            "u"
        ]
    );
    assert!(command[13].contains(" user=u "), "{}", command[13]);
    let Value::Array(one) = cmd(&mut admin, &["ACL", "LOG", "1"]).await.unwrap() else {
        panic!()
    };
    assert_eq!(one.len(), 1);
}

#[tokio::test]
async fn deluser_closes_the_users_connections_and_only_theirs() {
    let server = Server::builder()
        .user("gone on >pw +@all ~*")
        .start()
        .await
        .unwrap();
    let mut victim = connect_as(&server, "gone", "pw").await.unwrap();
    let mut admin = connect(&server).await;
    assert_eq!(
        text(&cmd(&mut admin, &["CLIENT", "LIST"]).await.unwrap())
            .matches(" user=gone ")
            .count(),
        1
    );
    assert_eq!(
        cmd(&mut admin, &["ACL", "DELUSER", "gone", "nosuch"])
            .await
            .unwrap(),
        Value::Int(1)
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(cmd(&mut victim, &["PING"]).await.is_err(), "closed");
    assert_eq!(text(&cmd(&mut admin, &["PING"]).await.unwrap()), "PONG");
    assert!(connect_as(&server, "gone", "pw").await.is_err());
}

#[tokio::test]
async fn client_kill_user_closes_that_users_clients() {
    let server = Server::builder()
        .user("k on >pw +@all ~*")
        .start()
        .await
        .unwrap();
    let mut victim = connect_as(&server, "k", "pw").await.unwrap();
    let mut admin = connect(&server).await;
    assert_eq!(
        cmd(&mut admin, &["CLIENT", "KILL", "USER", "k"])
            .await
            .unwrap(),
        Value::Int(1)
    );
    assert_eq!(
        err(&mut admin, &["CLIENT", "KILL", "USER", "nosuch"]).await,
        "ERR No such user 'nosuch'"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(cmd(&mut victim, &["PING"]).await.is_err());
    assert_eq!(text(&cmd(&mut admin, &["PING"]).await.unwrap()), "PONG");
}

#[tokio::test]
async fn deluser_of_ones_own_user_replies_then_closes() {
    let server = Server::builder()
        .user("me on >pw +@all ~*")
        .start()
        .await
        .unwrap();
    let got = raw(&server, b"AUTH me pw\r\nACL DELUSER me\r\nPING\r\n", 10_000).await;
    assert_eq!(got, b"+OK\r\n:1\r\n");
}

#[tokio::test]
async fn requirepass_is_the_default_users_password_and_config_set_changes_it() {
    let server = Server::builder().requirepass("one").start().await.unwrap();
    let mut con = connect_as(&server, "default", "one").await.unwrap();
    let Value::Array(list) = cmd(&mut con, &["ACL", "LIST"]).await.unwrap() else {
        panic!()
    };
    let hash = "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed";
    assert_eq!(
        text(&list[0]),
        format!("user default on #{hash} ~* &* +@all")
    );
    cmd(&mut con, &["CONFIG", "SET", "requirepass", "two"])
        .await
        .unwrap();
    assert!(connect_as(&server, "default", "one").await.is_err());
    assert!(connect_as(&server, "default", "two").await.is_ok());
    cmd(&mut con, &["CONFIG", "SET", "requirepass", ""])
        .await
        .unwrap();
    // No password: a new connection needs no AUTH.
    let mut open = connect(&server).await;
    assert_eq!(text(&cmd(&mut open, &["PING"]).await.unwrap()), "PONG");
    assert_eq!(
        err(&mut open, &["AUTH", "x"]).await,
        "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
    );
}

#[tokio::test]
async fn a_client_waiting_for_auth_is_let_in_once_the_password_is_removed() {
    let server = Server::builder().requirepass("pw").start().await.unwrap();
    let mut waiting = common::open(&server).await;
    common::send(&mut waiting, &["GET k"]).await;
    common::expect_reply(&mut waiting, "-NOAUTH Authentication required.\r\n").await;
    let mut admin = connect_as(&server, "default", "pw").await.unwrap();
    cmd(&mut admin, &["CONFIG", "SET", "requirepass", ""])
        .await
        .unwrap();
    common::send(&mut waiting, &["GET k"]).await;
    common::expect_reply(&mut waiting, "$-1\r\n").await;
}

#[tokio::test]
async fn default_user_given_a_password_by_acl_makes_new_clients_authenticate() {
    let server = common::start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["ACL", "SETUSER", "default", "resetpass", ">pw"])
        .await
        .unwrap();
    let got = raw(&server, b"GET k\r\nAUTH pw\r\nGET k\r\n", 10_000).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-NOAUTH Authentication required.\r\n+OK\r\n$-1\r\n"
    );
    // RESET goes back to the default user, not authenticated.
    let got = raw(&server, b"AUTH pw\r\nRESET\r\nGET k\r\n", 10_000).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "+OK\r\n+RESET\r\n-NOAUTH Authentication required.\r\n"
    );
}

#[tokio::test]
async fn rules_changed_by_setuser_apply_to_connected_clients_at_once() {
    let server = Server::builder()
        .user("u on >pw +@all ~*")
        .start()
        .await
        .unwrap();
    let mut u = connect_as(&server, "u", "pw").await.unwrap();
    assert_eq!(text(&cmd(&mut u, &["SET", "k", "v"]).await.unwrap()), "OK");
    let mut admin = connect(&server).await;
    cmd(&mut admin, &["ACL", "SETUSER", "u", "-set"])
        .await
        .unwrap();
    assert_eq!(
        err(&mut u, &["SET", "k", "v"]).await,
        "NOPERM this user has no permissions to run the 'set' command"
    );
    cmd(
        &mut admin,
        &["ACL", "SETUSER", "u", "+set", "resetkeys", "%R~k"],
    )
    .await
    .unwrap();
    assert_eq!(text(&cmd(&mut u, &["GET", "k"]).await.unwrap()), "v");
    assert_eq!(
        err(&mut u, &["SET", "k", "v"]).await,
        "NOPERM this user has no permissions to access one of the keys used as arguments"
    );
}

#[tokio::test]
async fn a_subscriber_whose_channel_is_revoked_is_closed_and_only_then() {
    let server = Server::builder()
        .user("s on >pw +@all ~* &news")
        .start()
        .await
        .unwrap();
    let got = raw(&server, b"AUTH s pw\r\nSUBSCRIBE other\r\n", 10_000).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "+OK\r\n-NOPERM this user has no permissions to access one of the channels used as arguments\r\n"
    );
    let mut sub = common::open(&server).await;
    common::send(&mut sub, &["AUTH s pw", "SUBSCRIBE news"]).await;
    common::expect_reply(
        &mut sub,
        "+OK\r\n*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n",
    )
    .await;
    let mut admin = connect(&server).await;
    let subscribed = |list: Value| text(&list).matches(" user=s ").count();
    assert_eq!(
        subscribed(cmd(&mut admin, &["CLIENT", "LIST"]).await.unwrap()),
        1
    );
    // Still allowed its channel: kept.
    cmd(&mut admin, &["ACL", "SETUSER", "s", "resetchannels", "&n*"])
        .await
        .unwrap();
    assert_eq!(
        subscribed(cmd(&mut admin, &["CLIENT", "LIST"]).await.unwrap()),
        1
    );
    cmd(
        &mut admin,
        &["ACL", "SETUSER", "s", "resetchannels", "&other"],
    )
    .await
    .unwrap();
    let rest = common::read_until(&mut sub, 1).await;
    assert!(rest.is_empty(), "closed without a message: {rest:?}");
    assert_eq!(
        subscribed(cmd(&mut admin, &["CLIENT", "LIST"]).await.unwrap()),
        0,
        "the subscriber is gone"
    );
}

#[tokio::test]
async fn acl_pubsub_default_allchannels_gives_new_users_every_channel() {
    let server = Server::builder()
        .option("acl-pubsub-default", "allchannels")
        .unwrap()
        .start()
        .await
        .unwrap();
    let mut con = connect(&server).await;
    cmd(&mut con, &["ACL", "SETUSER", "n"]).await.unwrap();
    cmd(
        &mut con,
        &["CONFIG", "SET", "acl-pubsub-default", "resetchannels"],
    )
    .await
    .unwrap();
    cmd(&mut con, &["ACL", "SETUSER", "r"]).await.unwrap();
    let Value::Array(list) = cmd(&mut con, &["ACL", "LIST"]).await.unwrap() else {
        panic!()
    };
    let list: Vec<String> = list.iter().map(text).collect();
    assert_eq!(list[1], "user n off &* -@all");
    assert_eq!(list[2], "user r off resetchannels -@all");
    assert_eq!(
        err(&mut con, &["CONFIG", "SET", "acl-pubsub-default", "x"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'acl-pubsub-default') - argument(s) must be one of the following: allchannels, resetchannels"
    );
}

#[tokio::test]
async fn genpass_gives_hex_of_the_bits_asked() {
    let server = common::start().await;
    let mut con = connect(&server).await;
    for (bits, chars) in [
        (None, 64),
        (Some("1"), 1),
        (Some("5"), 2),
        (Some("4096"), 1024),
    ] {
        let mut words = vec!["ACL", "GENPASS"];
        words.extend(bits);
        let pass = text(&cmd(&mut con, &words).await.unwrap());
        assert_eq!(pass.len(), chars, "{bits:?}");
        assert!(pass
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
    let a = text(&cmd(&mut con, &["ACL", "GENPASS"]).await.unwrap());
    let b = text(&cmd(&mut con, &["ACL", "GENPASS"]).await.unwrap());
    assert_ne!(a, b);
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("latchkey-acl-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn acl_save_and_load_round_trip_through_the_acl_file() {
    let dir = temp_dir("file");
    let file = dir.join("users.acl");
    std::fs::write(
        &file,
        "user a on >pw ~a* +get\n\nuser default on nopass ~* &* +@all\n",
    )
    .unwrap();
    let server = Server::builder()
        .option("aclfile", file.to_str().unwrap())
        .unwrap()
        .start()
        .await
        .unwrap();
    let mut con = connect(&server).await;
    let hash = "30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4";
    let list = |v: Value| -> Vec<String> {
        let Value::Array(l) = v else { panic!() };
        l.iter().map(text).collect()
    };
    assert_eq!(
        list(cmd(&mut con, &["ACL", "LIST"]).await.unwrap()),
        [
            format!("user a on #{hash} ~a* resetchannels -@all +get"),
            "user default on nopass ~* &* +@all".into()
        ]
    );
    cmd(&mut con, &["ACL", "SETUSER", "b", "on", "nopass"])
        .await
        .unwrap();
    assert_eq!(text(&cmd(&mut con, &["ACL", "SAVE"]).await.unwrap()), "OK");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("user a on #{hash} ~a* resetchannels -@all +get\nuser b on nopass resetchannels -@all\nuser default on nopass ~* &* +@all\n")
    );
    // A client of a user replaced by ACL LOAD is closed.
    let mut a = connect_as(&server, "a", "pw").await.unwrap();
    std::fs::write(&file, "user c on nopass\n").unwrap();
    assert_eq!(text(&cmd(&mut con, &["ACL", "LOAD"]).await.unwrap()), "OK");
    assert_eq!(
        list(cmd(&mut con, &["ACL", "USERS"]).await.unwrap()),
        ["c", "default"]
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(cmd(&mut a, &["PING"]).await.is_err());
    // Errors load nothing.
    std::fs::write(&file, "user d on +nosuch\nnot a user\n").unwrap();
    let path = file.to_str().unwrap();
    assert_eq!(
        err(&mut con, &["ACL", "LOAD"]).await,
        format!("ERR {path}:1: Error in applying operation '+nosuch': Unknown command or category name in ACL. {path}:2 should start with user keyword followed by the username. WARNING: ACL errors detected, no change to the previously active ACL rules was performed")
    );
    assert_eq!(
        list(cmd(&mut con, &["ACL", "USERS"]).await.unwrap()),
        ["c", "default"]
    );
    std::fs::remove_file(&file).unwrap();
    assert_eq!(
        err(&mut con, &["ACL", "LOAD"]).await,
        format!("ERR Error loading ACLs, opening file '{path}': No such file or directory")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_bad_user_line_or_acl_file_stops_the_start() {
    let bad = Server::builder().user("u on +nosuch").start().await;
    assert_eq!(
        bad.err().map(|e| e.to_string()).as_deref(),
        Some("Error loading ACL rule '+nosuch' for the user named 'u': Unknown command or category name in ACL")
    );
    let dir = temp_dir("bad");
    let file = dir.join("users.acl");
    std::fs::write(&file, "user u on\n").unwrap();
    let both = Server::builder()
        .user("v on")
        .option("aclfile", file.to_str().unwrap())
        .unwrap()
        .start()
        .await;
    assert!(both.is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn config_file_user_lines_define_users_and_default_starts_from_reset() {
    let mut config = latchkey::config::Config::default();
    config
        .apply_file("user default on >pw ~* &* +@all\nuser worker on nopass ~jobs:* +@list\n")
        .unwrap();
    assert_eq!(config.users.len(), 2);
    let mut builder = Server::builder();
    for u in &config.users {
        builder = builder.user(&u.join(" "));
    }
    let server = builder.start().await.unwrap();
    let got = raw(
        &server,
        b"PING\r\nAUTH worker x\r\nLPUSH jobs:1 a\r\nGET jobs:1\r\n",
        10_000,
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-NOAUTH Authentication required.\r\n+OK\r\n:1\r\n-NOPERM this user has no permissions to run the 'get' command\r\n"
    );
    let mut con = connect_as(&server, "default", "pw").await.unwrap();
    let Value::Array(list) = cmd(&mut con, &["ACL", "LIST"]).await.unwrap() else {
        panic!()
    };
    assert!(text(&list[0]).starts_with("user default on sanitize-payload #"));
}

#[test]
fn redis_cli_logs_in_with_user_and_pass() {
    if std::process::Command::new("redis-cli")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("redis-cli not installed: skipped");
        return;
    }
    let server = Server::builder()
        .user("cli on >pw ~k* +@string +@connection")
        .start_blocking()
        .unwrap();
    let port = server.addr().port().to_string();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port, "--no-auth-warning"])
            .args(args)
            .output()
            .unwrap();
        let mut both = String::from_utf8_lossy(&out.stdout).trim().to_string();
        both.push_str(String::from_utf8_lossy(&out.stderr).trim());
        both
    };
    assert_eq!(
        run(&["--user", "cli", "--pass", "pw", "SET", "k1", "v"]),
        "OK"
    );
    assert_eq!(run(&["--user", "cli", "--pass", "pw", "GET", "k1"]), "v");
    assert_eq!(
        run(&["--user", "cli", "--pass", "pw", "SET", "x", "v"]),
        "NOPERM this user has no permissions to access one of the keys used as arguments"
    );
    // A failed AUTH leaves redis-cli on the default user; it says why.
    let failed = run(&["--user", "cli", "--pass", "bad", "ACL", "WHOAMI"]);
    assert!(
        failed.starts_with("default")
            && failed.contains(
                "AUTH failed: WRONGPASS invalid username-password pair or user is disabled."
            ),
        "{failed}"
    );
}

#[test]
fn the_binary_takes_users_on_its_command_line_as_redis_server_does() {
    use std::io::{Read, Write};
    let server = common::binary::spawn_on_socket(
        "acl-users",
        &[
            "--user", "a", "on", ">pw", "-@all", "+get", "~k*", "--user", "b", "on", "nopass",
        ],
    );
    let mut s = std::os::unix::net::UnixStream::connect(&server.1).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"AUTH a pw\r\nGET k1\r\nGET x\r\nACL WHOAMI\r\nAUTH b x\r\nACL WHOAMI\r\n")
        .unwrap();
    let want = "+OK\r\n$-1\r\n-NOPERM this user has no permissions to access one of the keys used as arguments\r\n-NOPERM this user has no permissions to run the 'acl|whoami' command\r\n+OK\r\n-NOPERM this user has no permissions to run the 'acl|whoami' command\r\n";
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while got.len() < want.len() {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(String::from_utf8_lossy(&got), want);
}
