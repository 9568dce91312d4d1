//! List commands through the `redis` crate.

mod common;

use common::{cmd, connect, err_line, start};
use redis::AsyncCommands;

#[tokio::test]
async fn push_pop_and_range_keep_order() {
    let server = start().await;
    let mut con = connect(&server).await;
    let n: i64 = con.rpush("q", &["a", "b", "c"]).await.unwrap();
    assert_eq!(n, 3);
    let n: i64 = con.lpush("q", "z").await.unwrap();
    assert_eq!(n, 4);
    let all: Vec<String> = con.lrange("q", 0, -1).await.unwrap();
    assert_eq!(all, ["z", "a", "b", "c"]);
    let first: Option<String> = con.lpop("q", None).await.unwrap();
    assert_eq!(first.as_deref(), Some("z"));
    let last: Option<String> = con.rpop("q", None).await.unwrap();
    assert_eq!(last.as_deref(), Some("c"));
    let len: i64 = con.llen("q").await.unwrap();
    assert_eq!(len, 2);
}

#[tokio::test]
async fn popping_the_last_element_deletes_the_list() {
    let server = start().await;
    let mut con = connect(&server).await;
    let _: i64 = con.rpush("q", "only").await.unwrap();
    let _: Option<String> = con.lpop("q", None).await.unwrap();
    assert_eq!(server.dbsize(0), 0);
}

#[tokio::test]
async fn list_commands_on_other_types_are_wrongtype() {
    let server = start().await;
    let mut con = connect(&server).await;
    server.set("s", "v", None);
    cmd(&mut con, &["LOCK.ACQUIRE", "L", "me", "10000"])
        .await
        .unwrap();
    for key in ["s", "L"] {
        assert!(err_line(&mut con, &["LPUSH", key, "x"])
            .await
            .starts_with("WRONGTYPE"));
        assert!(err_line(&mut con, &["LLEN", key])
            .await
            .starts_with("WRONGTYPE"));
    }
    let _: i64 = con.rpush("q", "x").await.unwrap();
    assert!(err_line(&mut con, &["GET", "q"])
        .await
        .starts_with("WRONGTYPE"));
    assert!(err_line(&mut con, &["LOCK.ACQUIRE", "q", "me", "1000"])
        .await
        .starts_with("WRONGTYPE"));
}
