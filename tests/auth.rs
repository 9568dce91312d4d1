//! requirepass, AUTH and HELLO AUTH.

mod common;

use common::raw;
use latchkey::Server;

async fn secured() -> latchkey::ServerHandle {
    Server::builder()
        .requirepass("s3cret")
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn commands_before_auth_get_noauth() {
    let server = secured().await;
    let got = raw(&server, b"GET k\r\nPING\r\n", 1000).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n"
    );
}

#[tokio::test]
async fn auth_with_the_right_password_unlocks_the_connection() {
    let server = secured().await;
    let got = raw(&server, b"AUTH wrong\r\nAUTH s3cret\r\nPING\r\n", 1000).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n+PONG\r\n"
    );
}

#[tokio::test]
async fn auth_with_default_user_and_password_works() {
    let server = secured().await;
    let got = raw(&server, b"AUTH default s3cret\r\nPING\r\n", 1000).await;
    assert_eq!(got, b"+OK\r\n+PONG\r\n");
}

#[tokio::test]
async fn hello_auth_authenticates_and_switches_protocol() {
    let server = secured().await;
    let got = raw(
        &server,
        b"HELLO 3 AUTH default s3cret\r\nGET nokey\r\n",
        10_000,
    )
    .await;
    assert!(got.starts_with(b"%7\r\n"));
    assert!(got.ends_with(b"_\r\n"));
}

#[tokio::test]
async fn hello_without_auth_on_secured_server_is_refused() {
    let server = secured().await;
    let got = raw(&server, b"HELLO 3\r\n", 1000).await;
    assert!(got.starts_with(b"-NOAUTH HELLO must be called with the client already authenticated"));
}

#[tokio::test]
async fn auth_without_configured_password_is_an_error() {
    let server = common::start().await;
    let got = raw(&server, b"AUTH x\r\n", 1000).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n"
    );
}

#[tokio::test]
async fn unauthenticated_clients_cannot_send_big_requests() {
    let server = secured().await;
    let got = raw(&server, b"*20\r\n", 1000).await;
    assert_eq!(
        got,
        b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
}

#[tokio::test]
async fn redis_crate_connects_with_password_in_url() {
    let server = secured().await;
    let url = format!("redis://:s3cret@{}", server.addr());
    let mut con = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
    assert_eq!(pong, "PONG");
}
