//! Bitmap commands through the `redis` crate: Redis 7.2's argument checks on a
//! missing key (the recorded cases come from a 7.0 server), and a randomized run
//! of SETBIT, GETBIT, BITCOUNT, BITPOS, BITFIELD and SETRANGE against a bit
//! vector.

mod common;

use common::{cmd, connect, start};
use redis::Value;

async fn int(con: &mut redis::aio::MultiplexedConnection, words: &[&str]) -> i64 {
    match cmd(con, words).await.unwrap() {
        Value::Int(n) => n,
        other => panic!("{words:?}: {other:?}"),
    }
}

/// Redis 7.2 checks BITCOUNT's and BITPOS's arguments before it looks the key
/// up, so a missing key no longer hides a bad range (7.0 replied 0 or -1).
#[tokio::test]
async fn bitcount_and_bitpos_check_arguments_even_for_a_missing_key() {
    let server = start().await;
    let mut con = connect(&server).await;
    for (words, want) in [
        (&["BITCOUNT", "nokey", "0"][..], "ERR syntax error"),
        (
            &["BITCOUNT", "nokey", "a", "1"],
            "ERR value is not an integer or out of range",
        ),
        (&["BITCOUNT", "nokey", "0", "1", "FOO"], "ERR syntax error"),
        (
            &["BITPOS", "nokey", "1", "a"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["BITPOS", "nokey", "1", "0", "a"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["BITPOS", "nokey", "0", "0", "-1", "FOO"],
            "ERR syntax error",
        ),
        (
            &["BITPOS", "nokey", "0", "0", "-1", "BIT", "x"],
            "ERR syntax error",
        ),
    ] {
        assert_eq!(common::err_line(&mut con, words).await, want, "{words:?}");
    }
    assert_eq!(
        int(&mut con, &["BITCOUNT", "nokey", "0", "-1", "BIT"]).await,
        0
    );
    assert_eq!(
        int(&mut con, &["BITPOS", "nokey", "0", "5", "9", "BIT"]).await,
        0
    );
    assert_eq!(
        int(&mut con, &["BITPOS", "nokey", "1", "5", "9", "BIT"]).await,
        -1
    );
}

/// The model: a string as bits, most significant bit of byte 0 first.
#[derive(Default)]
struct Model(Vec<bool>);

impl Model {
    fn grow_to_bit(&mut self, bit: usize) {
        let bytes = bit / 8 + 1;
        if self.0.len() < bytes * 8 {
            self.0.resize(bytes * 8, false);
        }
    }

    fn bit(&self, i: usize) -> bool {
        self.0.get(i).copied().unwrap_or(false)
    }

    /// Redis's range resolution over `len` units, inclusive, or `None`.
    fn range(len: i64, start: i64, end: i64) -> Option<(i64, i64)> {
        let fix = |i: i64| if i < 0 { len + i } else { i }.max(0);
        let (s, e) = (fix(start), fix(end).min(len - 1));
        (s <= e).then_some((s, e))
    }
}

#[tokio::test]
async fn random_bit_commands_agree_with_a_bit_vector() {
    let server = start().await;
    let mut con = connect(&server).await;
    let mut rng = fastrand::Rng::with_seed(42);
    let mut model = Model::default();
    for step in 0..1500 {
        let bytes = (model.0.len() / 8) as i64;
        let any_bit = || 0..(bytes as usize * 8 + 40);
        match rng.u8(0..7) {
            0 => {
                let off = rng.usize(any_bit());
                let on = rng.bool();
                model.grow_to_bit(off);
                let old = std::mem::replace(&mut model.0[off], on);
                let got = int(
                    &mut con,
                    &["SETBIT", "k", &off.to_string(), if on { "1" } else { "0" }],
                )
                .await;
                assert_eq!(got, i64::from(old), "step {step}");
            }
            1 => {
                let off = rng.usize(any_bit());
                let got = int(&mut con, &["GETBIT", "k", &off.to_string()]).await;
                assert_eq!(got, i64::from(model.bit(off)), "step {step}");
            }
            2 => {
                let bit_unit = rng.bool();
                let len = if bit_unit { bytes * 8 } else { bytes };
                let (s, e) = (rng.i64(-len - 5..=len + 5), rng.i64(-len - 5..=len + 5));
                let want = if s < 0 && e < 0 && s > e {
                    0
                } else {
                    Model::range(len, s, e).map_or(0, |(s, e)| {
                        let (s, e) = if bit_unit { (s, e) } else { (s * 8, e * 8 + 7) };
                        (s..=e).filter(|i| model.bit(*i as usize)).count() as i64
                    })
                };
                let unit = if bit_unit { "BIT" } else { "BYTE" };
                let got = int(
                    &mut con,
                    &["BITCOUNT", "k", &s.to_string(), &e.to_string(), unit],
                )
                .await;
                if !model.0.is_empty() {
                    assert_eq!(got, want, "step {step}: BITCOUNT {s} {e} {unit}");
                }
            }
            3 => {
                let bit = rng.bool();
                let bit_unit = rng.bool();
                let len = if bit_unit { bytes * 8 } else { bytes };
                let s = rng.i64(-len - 3..=len + 3);
                let e = rng.i64(-len - 3..=len + 3);
                let with_end = bit_unit || rng.bool();
                let mut words = vec![
                    "BITPOS".to_string(),
                    "k".into(),
                    u8::from(bit).to_string(),
                    s.to_string(),
                ];
                if with_end {
                    words.push(e.to_string());
                    words.push(if bit_unit { "BIT" } else { "BYTE" }.into());
                }
                let words: Vec<&str> = words.iter().map(String::as_str).collect();
                let got = int(&mut con, &words).await;
                if model.0.is_empty() {
                    continue;
                }
                let end = if with_end { e } else { len - 1 };
                let want = match Model::range(len, s, end) {
                    None => -1,
                    Some((s, e)) => {
                        let (s, e) = if bit_unit { (s, e) } else { (s * 8, e * 8 + 7) };
                        match (s..=e).find(|i| model.bit(*i as usize) == bit) {
                            Some(p) => p,
                            None if !bit && !with_end => e + 1,
                            None => -1,
                        }
                    }
                };
                assert_eq!(got, want, "step {step}: {words:?}");
            }
            4 => {
                let signed = rng.bool();
                let width = rng.u32(1..=if signed { 64 } else { 63 });
                let off = rng.usize(any_bit());
                let ty = format!("{}{width}", if signed { 'i' } else { 'u' });
                let value = rng.i64(..) >> rng.u32(0..64);
                model.grow_to_bit(off + width as usize - 1);
                let old: Vec<bool> = model.0[off..off + width as usize].to_vec();
                // Wrap: the low `width` bits of the value.
                for k in 0..width as usize {
                    model.0[off + k] = (value as u64 >> (width as usize - 1 - k)) & 1 == 1;
                }
                let got = match cmd(
                    &mut con,
                    &[
                        "BITFIELD",
                        "k",
                        "SET",
                        &ty,
                        &off.to_string(),
                        &value.to_string(),
                    ],
                )
                .await
                .unwrap()
                {
                    Value::Array(v) => v,
                    other => panic!("{other:?}"),
                };
                let raw = old.iter().fold(0u128, |acc, b| (acc << 1) | u128::from(*b));
                let want = if signed && old[0] {
                    raw as i128 - (1i128 << width)
                } else {
                    raw as i128
                };
                assert_eq!(
                    got,
                    [Value::Int(want as i64)],
                    "step {step}: SET {ty} {off}"
                );
            }
            5 => {
                let off = rng.usize(0..(bytes as usize + 4));
                let patch: Vec<u8> = (0..rng.usize(1..6)).map(|_| rng.u8(..)).collect();
                model.grow_to_bit((off + patch.len()) * 8 - 1);
                for (i, byte) in patch.iter().enumerate() {
                    for k in 0..8 {
                        model.0[(off + i) * 8 + k] = byte & (0x80 >> k) != 0;
                    }
                }
                let got: i64 = redis::cmd("SETRANGE")
                    .arg("k")
                    .arg(off)
                    .arg(&patch[..])
                    .query_async(&mut con)
                    .await
                    .unwrap();
                assert_eq!(got as usize * 8, model.0.len(), "step {step}");
            }
            _ => {
                let got: Vec<u8> = redis::cmd("GET")
                    .arg("k")
                    .query_async(&mut con)
                    .await
                    .unwrap_or_default();
                let want: Vec<u8> = model
                    .0
                    .chunks(8)
                    .map(|c| c.iter().fold(0u8, |acc, b| (acc << 1) | u8::from(*b)))
                    .collect();
                assert_eq!(got, want, "step {step}");
            }
        }
    }
}

/// BITOP of big bitmaps stores exactly the combined bytes, and SETBIT on the
/// result changes one bit of it.
#[tokio::test]
async fn bitop_over_large_bitmaps_combines_every_byte() {
    let server = start().await;
    let mut con = connect(&server).await;
    let a: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let b: Vec<u8> = (0..70_000u32).map(|i| (i * 13 % 253) as u8).collect();
    let _: () = redis::cmd("SET")
        .arg("a")
        .arg(&a[..])
        .query_async(&mut con)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("b")
        .arg(&b[..])
        .query_async(&mut con)
        .await
        .unwrap();
    for (op, f) in [
        ("AND", (|x, y| x & y) as fn(u8, u8) -> u8),
        ("OR", |x, y| x | y),
        ("XOR", |x, y| x ^ y),
    ] {
        assert_eq!(int(&mut con, &["BITOP", op, "d", "a", "b"]).await, 100_000);
        let got: Vec<u8> = redis::cmd("GET")
            .arg("d")
            .query_async(&mut con)
            .await
            .unwrap();
        let want: Vec<u8> = (0..a.len())
            .map(|i| f(a[i], b.get(i).copied().unwrap_or(0)))
            .collect();
        assert!(got == want, "BITOP {op}");
        let ones: u64 = want.iter().map(|x| u64::from(x.count_ones())).sum();
        assert_eq!(int(&mut con, &["BITCOUNT", "d"]).await as u64, ones);
    }
    assert_eq!(
        int(&mut con, &["SETBIT", "d", "799999", "1"]).await,
        i64::from(a[99_999] & 1)
    );
    assert_eq!(int(&mut con, &["STRLEN", "d"]).await, 100_000);
}
