//! Geo commands: what the recorded cases (redis-tests/geo.txt) cannot show —
//! exact RESP3 bytes, WATCH across connections, keys in different shards, and
//! large inputs.

mod common;

use common::{cmd, connect, err_line, raw, start};
use redis::Value;

const SICILY: &[&str] = &[
    "GEOADD",
    "Sicily",
    "13.361389",
    "38.115556",
    "Palermo",
    "15.087269",
    "37.502669",
    "Catania",
];

#[tokio::test]
async fn resp3_positions_are_doubles_and_missing_ones_null() {
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, SICILY).await.unwrap();
    let request = b"HELLO 3\r\nGEOPOS Sicily Palermo nope\r\nGEODIST Sicily Palermo nope\r\nGEOHASH Sicily nope\r\n";
    let want: &[u8] =
        b"*2\r\n*2\r\n,13.36138933897018433\r\n,38.11555639549629859\r\n_\r\n_\r\n*1\r\n_\r\n";
    let got = raw(&server, request, usize::MAX).await;
    assert!(got.ends_with(want), "{}", String::from_utf8_lossy(&got));
    let request = b"GEOPOS Sicily Palermo nope\r\nGEODIST Sicily Palermo nope\r\n";
    let want: &[u8] =
        b"*2\r\n*2\r\n$20\r\n13.36138933897018433\r\n$20\r\n38.11555639549629859\r\n*-1\r\n$-1\r\n";
    assert_eq!(raw(&server, request, want.len()).await, want);
}

#[tokio::test]
async fn geoadd_and_a_stored_search_break_watches() {
    let server = start().await;
    let mut watcher = connect(&server).await;
    let mut other = connect(&server).await;
    cmd(&mut other, SICILY).await.unwrap();
    for (watched, write) in [
        ("Sicily", vec!["GEOADD", "Sicily", "1", "1", "new"]),
        (
            "dest",
            vec![
                "GEOSEARCHSTORE",
                "dest",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
            ],
        ),
        (
            "dest2",
            vec![
                "GEORADIUS",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "STORE",
                "dest2",
            ],
        ),
    ] {
        cmd(&mut watcher, &["WATCH", watched]).await.unwrap();
        cmd(&mut other, &write).await.unwrap();
        cmd(&mut watcher, &["MULTI"]).await.unwrap();
        cmd(&mut watcher, &["GEOPOS", "Sicily", "Palermo"])
            .await
            .unwrap();
        let exec = cmd(&mut watcher, &["EXEC"]).await.unwrap();
        assert_eq!(exec, Value::Nil, "a write to {watched} aborts EXEC");
    }
}

/// The destination named last wins, and is written whichever shard holds it
/// (every word after STORE or STOREDIST is locked up front).
#[tokio::test]
async fn store_writes_the_last_destination_named() {
    let server = start().await;
    let mut con = connect(&server).await;
    cmd(&mut con, SICILY).await.unwrap();
    for i in 0..20 {
        let dest = format!("out{i}");
        let words = [
            "GEORADIUS",
            "Sicily",
            "15",
            "37",
            "200",
            "km",
            "STORE",
            "store",
            "STOREDIST",
            "store",
            "STORE",
            &dest,
        ];
        assert_eq!(cmd(&mut con, &words).await.unwrap(), Value::Int(2));
        let found = cmd(
            &mut con,
            &[
                "GEOSEARCH",
                &dest,
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
                "ASC",
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            found,
            Value::Array(vec![
                Value::BulkString(b"Catania".to_vec()),
                Value::BulkString(b"Palermo".to_vec()),
            ])
        );
    }
    assert_eq!(
        cmd(&mut con, &["EXISTS", "store", "STORE"]).await.unwrap(),
        Value::Int(0)
    );
}

/// Thousands of points at one spot: a bounded COUNT, ANY, and the same
/// member set as a whole search, without trouble.
#[tokio::test]
async fn many_points_search_and_count() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut words: Vec<String> = vec!["GEOADD".into(), "many".into()];
    for i in 0..5000 {
        let lon = format!("{}", 2.0 + f64::from(i % 100) * 0.001);
        let lat = format!("{}", 48.0 + f64::from(i / 100) * 0.001);
        words.extend([lon, lat, format!("m{i}")]);
    }
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    assert_eq!(cmd(&mut con, &refs).await.unwrap(), Value::Int(5000));
    let all = cmd(
        &mut con,
        &[
            "GEOSEARCH",
            "many",
            "FROMLONLAT",
            "2.05",
            "48.025",
            "BYBOX",
            "50",
            "50",
            "km",
        ],
    )
    .await
    .unwrap();
    assert!(matches!(all, Value::Array(ref v) if v.len() == 5000));
    for extra in [&[][..], &["ANY"][..]] {
        let mut words = vec![
            "GEOSEARCH",
            "many",
            "FROMLONLAT",
            "2.05",
            "48.025",
            "BYRADIUS",
            "100",
            "km",
            "COUNT",
            "9223372036854775807",
        ];
        words.extend_from_slice(extra);
        let found = cmd(&mut con, &words).await.unwrap();
        assert!(matches!(found, Value::Array(ref v) if v.len() == 5000));
    }
    let three = cmd(
        &mut con,
        &[
            "GEOSEARCH",
            "many",
            "FROMLONLAT",
            "2",
            "48",
            "BYRADIUS",
            "100",
            "km",
            "COUNT",
            "3",
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        three,
        Value::Array(vec![
            Value::BulkString(b"m0".to_vec()),
            Value::BulkString(b"m1".to_vec()),
            Value::BulkString(b"m100".to_vec()),
        ])
    );
    assert_eq!(
        err_line(
            &mut con,
            &[
                "GEOSEARCH",
                "many",
                "FROMLONLAT",
                "2",
                "48",
                "BYRADIUS",
                "1e-300",
                "km",
                "COUNT",
                "-9223372036854775808"
            ]
        )
        .await,
        "ERR COUNT must be > 0"
    );
    let tiny = cmd(
        &mut con,
        &[
            "GEOSEARCH",
            "many",
            "FROMLONLAT",
            "2",
            "48",
            "BYRADIUS",
            "1e-300",
            "km",
        ],
    )
    .await
    .unwrap();
    assert_eq!(tiny, Value::Array(vec![]));
}
