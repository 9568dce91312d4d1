//! SLOWLOG entries as Redis 7.0 writes them: `[id, unix time, µs, argv,
//! "ip:port", name]`, newest first; a transaction's commands and a script's
//! `redis.call`s are logged (the latter as Redis's Lua client, `?:0`), EXEC
//! is not; passwords are redacted. (Errors, HELP and the settings are in
//! redis-tests/slowlog.txt, recorded from redis-server.)

mod common;

use common::{cmd, connect, start};
use redis::Value;

fn argv(entry: &Value) -> Vec<String> {
    let Value::Array(fields) = entry else {
        panic!("{entry:?}")
    };
    let Value::Array(args) = &fields[3] else {
        panic!("{entry:?}")
    };
    args.iter()
        .map(|a| match a {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            v => panic!("{v:?}"),
        })
        .collect()
}

#[tokio::test]
async fn entries_have_redis_shape_and_cover_transactions_and_scripts() {
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, &["CLIENT", "SETNAME", "me"]).await.unwrap();
    cmd(&mut con, &["CONFIG", "SET", "slowlog-log-slower-than", "0"])
        .await
        .unwrap();
    cmd(&mut con, &["SLOWLOG", "RESET"]).await.unwrap();
    let _ = cmd(&mut con, &["AUTH", "user", "secret"]).await;
    let pipe_results: Value = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("a")
        .arg("1")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(matches!(pipe_results, Value::Array(_)));
    cmd(
        &mut con,
        &["EVAL", "return redis.call('SET', KEYS[1], 'x')", "1", "s"],
    )
    .await
    .unwrap();
    let long = "y".repeat(300);
    cmd(&mut con, &["SET", "long", &long]).await.unwrap();
    let Value::Array(entries) = cmd(&mut con, &["SLOWLOG", "GET", "-1"]).await.unwrap() else {
        panic!()
    };
    let logged: Vec<Vec<String>> = entries.iter().map(argv).collect();
    let long_kept = format!("{}... (172 more bytes)", "y".repeat(128));
    assert_eq!(
        logged,
        vec![
            vec!["SET".to_string(), "long".into(), long_kept],
            vec![
                "EVAL".into(),
                "return redis.call('SET', KEYS[1], 'x')".into(),
                "1".into(),
                "s".into()
            ],
            vec!["SET".into(), "s".into(), "x".into()],
            vec!["SET".into(), "a".into(), "1".into()],
            vec!["MULTI".into()],
            vec!["AUTH".into(), "(redacted)".into(), "(redacted)".into()],
            vec!["SLOWLOG".into(), "RESET".into()],
        ]
    );
    // Newest first, ids counting up, the client's address and name; the
    // script's own call on Redis's Lua client.
    let field = |e: &Value, i: usize| match e {
        Value::Array(f) => f[i].clone(),
        _ => panic!(),
    };
    let ids: Vec<Value> = entries.iter().map(|e| field(e, 0)).collect();
    // The CONFIG SET was entry 0: RESET empties the log, not the count.
    assert_eq!(ids.first(), Some(&Value::Int(7)));
    assert_eq!(ids.last(), Some(&Value::Int(1)));
    let Value::Int(t) = field(&entries[0], 1) else {
        panic!()
    };
    let now = server.now_ms() as i64 / 1000;
    assert!((now - 2..=now).contains(&t), "{t} {now}");
    assert!(matches!(field(&entries[0], 2), Value::Int(d) if d >= 0));
    assert_eq!(field(&entries[0], 5), Value::BulkString(b"me".to_vec()));
    assert_eq!(field(&entries[2], 4), Value::BulkString(b"?:0".to_vec()));
    assert_eq!(field(&entries[2], 5), Value::BulkString(Vec::new()));
    let Value::BulkString(peer) = field(&entries[0], 4) else {
        panic!()
    };
    assert!(String::from_utf8(peer).unwrap().starts_with("127.0.0.1:"));
    // GET 2: the last two, the previous SLOWLOG GET (logged) first.
    let Value::Array(two) = cmd(&mut con, &["SLOWLOG", "GET", "2"]).await.unwrap() else {
        panic!()
    };
    assert_eq!(argv(&two[0]), ["SLOWLOG", "GET", "-1"]);
    assert_eq!(two[1], entries[0]);
}
