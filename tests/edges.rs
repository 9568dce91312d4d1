//! Small defects found by outside probes, one regression test each: CLIENT KILL
//! filters, unsigned SCAN cursors, SELECT's range error, and how error lines quote
//! client bytes (NUL cuts a name, CR/LF must not end the line early).

mod common;

use common::{cmd, connect, err_line, raw, start};
use redis::Value;

fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[tokio::test]
async fn client_kill_with_an_unknown_type_is_an_error_not_zero() {
    let server = start().await;
    let mut con = connect(&server).await;
    assert_eq!(
        err_line(&mut con, &["CLIENT", "KILL", "TYPE", "wrong_type"]).await,
        "ERR Unknown client type 'wrong_type'"
    );
    assert_eq!(
        err_line(&mut con, &["CLIENT", "KILL", "USER", "nobody"]).await,
        "ERR No such user 'nobody'"
    );
}

#[tokio::test]
async fn client_kill_type_master_does_not_kill_normal_clients() {
    let server = start().await;
    let mut killer = connect(&server).await;
    let mut other = connect(&server).await;
    for t in ["master", "replica", "slave", "pubsub"] {
        assert_eq!(
            cmd(&mut killer, &["CLIENT", "KILL", "TYPE", t])
                .await
                .unwrap(),
            Value::Int(0),
            "TYPE {t}"
        );
    }
    assert_eq!(
        cmd(&mut other, &["PING"]).await.unwrap(),
        Value::SimpleString("PONG".into())
    );
    assert_eq!(
        cmd(&mut killer, &["CLIENT", "KILL", "TYPE", "normal"])
            .await
            .unwrap(),
        Value::Int(1)
    );
}

#[tokio::test]
async fn scan_negative_cursor_is_read_as_unsigned() {
    let server = start().await;
    let mut con = connect(&server).await;
    for cursor in ["-1", "18446744073709551615", "", "-0", "+0"] {
        assert!(
            matches!(cmd(&mut con, &["SCAN", cursor]).await, Ok(Value::Array(_))),
            "SCAN {cursor:?}"
        );
    }
    for cursor in ["18446744073709551616", " 1", "1 ", "0x10", "-"] {
        assert_eq!(
            err_line(&mut con, &["SCAN", cursor]).await,
            "ERR invalid cursor",
            "SCAN {cursor:?}"
        );
    }
}

#[tokio::test]
async fn select_past_i32_gets_the_range_error_not_db_index() {
    let server = start().await;
    let mut con = connect(&server).await;
    assert_eq!(
        err_line(&mut con, &["SELECT", "9223372036854775807"]).await,
        "ERR value is out of range, value must between -2147483648 and 2147483647"
    );
    assert_eq!(
        err_line(&mut con, &["SELECT", "2147483647"]).await,
        "ERR DB index is out of range"
    );
}

#[tokio::test]
async fn unknown_command_name_is_cut_at_a_nul_byte() {
    let server = start().await;
    let want = b"-ERR unknown command 'NO', with args beginning with: 'a' 'c' \r\n";
    let got = raw(&server, &resp(&[b"NO\0SUCH", b"a\0b", b"c"]), want.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
}

#[tokio::test]
async fn unknown_command_quotes_arguments_up_to_128_bytes_in_all() {
    let server = start().await;
    let a = vec![b'a'; 100];
    let b = vec![b'b'; 100];
    let want = format!(
        "-ERR unknown command 'NOSUCH', with args beginning with: '{}' '{}' \r\n",
        "a".repeat(100),
        "b".repeat(25)
    );
    let got = raw(&server, &resp(&[b"NOSUCH", &a, &b, b"c"]), want.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), want);
}

#[tokio::test]
async fn error_quoting_a_crlf_argument_stays_one_line() {
    let server = start().await;
    let mut req = resp(&[b"SET", b"k", b"v"]);
    req.extend(resp(&[b"EXPIRE", b"k", b"1", b"a\r\nb"]));
    req.extend(resp(&[b"CONFIG", b"SET", b"x\ny", b"1"]));
    req.extend(resp(&[b"PING"]));
    let want = "+OK\r\n-ERR Unsupported option a  b\r\n\
                -ERR Unknown option or number of arguments for CONFIG SET - 'x y'\r\n+PONG\r\n";
    let got = raw(&server, &req, want.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), want);
}
