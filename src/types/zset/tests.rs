//! Unit tests of the sorted set, and a randomized comparison with a simple
//! model (a `BTreeSet` of (score, member) and a `HashMap`) across conversions.

use std::collections::{BTreeSet, HashMap};

use super::*;

const SMALL: Limits = Limits {
    entries: 128,
    value: 64,
};

fn members(z: &ZSet) -> Vec<(String, f64)> {
    z.iter()
        .map(|(m, s)| (String::from_utf8_lossy(m).into_owned(), s))
        .collect()
}

fn set_of(pairs: &[(&str, f64)], limits: Limits) -> ZSet {
    let mut z = ZSet::new();
    for (m, s) in pairs {
        z.insert(m.as_bytes(), *s, limits);
    }
    z
}

#[test]
fn orders_by_score_then_member() {
    let z = set_of(&[("b", 1.0), ("a", 1.0), ("c", 0.5), ("d", -1.0)], SMALL);
    assert_eq!(
        members(&z),
        [
            ("d".into(), -1.0),
            ("c".into(), 0.5),
            ("a".into(), 1.0),
            ("b".into(), 1.0)
        ]
    );
    assert_eq!(z.encoding_name(), "listpack");
    assert_eq!(z.rank(b"a", false), Some((2, 1.0)));
    assert_eq!(z.rank(b"a", true), Some((1, 1.0)));
    assert_eq!(z.rank(b"zz", false), None);
}

#[test]
fn add_flags_follow_zadd() {
    let mut z = ZSet::new();
    let nx = AddFlags {
        nx: true,
        ..Default::default()
    };
    let xx = AddFlags {
        xx: true,
        ..Default::default()
    };
    let gt = AddFlags {
        gt: true,
        ..Default::default()
    };
    let lt = AddFlags {
        lt: true,
        ..Default::default()
    };
    let incr = AddFlags {
        incr: true,
        ..Default::default()
    };
    assert_eq!(z.add(b"m", 1.0, xx, SMALL), Ok(Added::Refused));
    assert_eq!(z.add(b"m", 1.0, nx, SMALL), Ok(Added::New(1.0)));
    assert_eq!(z.add(b"m", 2.0, nx, SMALL), Ok(Added::Refused));
    assert_eq!(z.add(b"m", 2.0, xx, SMALL), Ok(Added::Updated(2.0)));
    assert_eq!(z.add(b"m", 1.0, gt, SMALL), Ok(Added::Refused));
    assert_eq!(z.add(b"m", 3.0, gt, SMALL), Ok(Added::Updated(3.0)));
    assert_eq!(z.add(b"m", 3.0, lt, SMALL), Ok(Added::Refused));
    assert_eq!(z.add(b"m", 0.0, lt, SMALL), Ok(Added::Updated(0.0)));
    assert_eq!(
        z.add(b"m", -0.0, AddFlags::default(), SMALL),
        Ok(Added::Same(0.0))
    );
    assert_eq!(z.add(b"m", 2.5, incr, SMALL), Ok(Added::Updated(2.5)));
    assert_eq!(
        z.add(b"m", f64::INFINITY, incr, SMALL),
        Ok(Added::Updated(f64::INFINITY))
    );
    assert_eq!(
        z.add(b"m", f64::NEG_INFINITY, incr, SMALL),
        Err(ZSetError::NaN)
    );
    assert_eq!(z.score(b"m"), Some(f64::INFINITY));
}

#[test]
fn converts_to_skiplist_past_the_limits_and_back_only_when_asked() {
    let limits = Limits {
        entries: 4,
        value: 8,
    };
    let mut z = set_of(&[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)], limits);
    assert_eq!(z.encoding_name(), "listpack");
    z.insert(b"e", 5.0, limits);
    assert_eq!(z.encoding_name(), "skiplist");
    z.remove(b"e");
    z.remove(b"d");
    assert_eq!(z.encoding_name(), "skiplist");
    z.shrink_if_small(limits);
    assert_eq!(z.encoding_name(), "listpack");
    assert_eq!(members(&z).len(), 3);
    let mut long = set_of(&[("a", 1.0)], limits);
    long.insert(b"123456789", 1.0, limits);
    assert_eq!(long.encoding_name(), "skiplist");
    long.shrink_if_small(limits);
    assert_eq!(long.encoding_name(), "skiplist");
}

#[test]
fn hints_pick_the_representation_as_zadd_does() {
    assert_eq!(ZSet::with_hint(128, 64, SMALL).encoding_name(), "listpack");
    assert_eq!(ZSet::with_hint(129, 1, SMALL).encoding_name(), "skiplist");
    assert_eq!(ZSet::with_hint(1, 65, SMALL).encoding_name(), "skiplist");
    let mut z = set_of(&[("a", 1.0)], SMALL);
    z.reserve_hint(128, SMALL);
    assert_eq!(z.encoding_name(), "listpack");
    z.reserve_hint(129, SMALL);
    assert_eq!(z.encoding_name(), "skiplist");
    assert_eq!(members(&z), [("a".into(), 1.0)]);
}

fn incl(v: f64) -> ScoreBound {
    ScoreBound {
        value: v,
        exclusive: false,
    }
}

fn excl(v: f64) -> ScoreBound {
    ScoreBound {
        value: v,
        exclusive: true,
    }
}

#[test]
fn score_and_lex_bounds_give_rank_ranges() {
    let z = set_of(&[("a", 1.0), ("b", 2.0), ("c", 2.0), ("d", 3.0)], SMALL);
    let r = |min, max| z.score_bounds(&ScoreRange { min, max });
    assert_eq!(r(incl(2.0), incl(2.0)), (1, 3));
    assert_eq!(r(excl(2.0), incl(3.0)), (3, 4));
    assert_eq!(r(incl(f64::NEG_INFINITY), excl(2.0)), (0, 1));
    assert_eq!(r(incl(3.0), incl(1.0)).1 - r(incl(3.0), incl(1.0)).0, 0);
    assert_eq!(r(excl(2.0), excl(2.0)).1 - r(excl(2.0), excl(2.0)).0, 0);
    let lex = set_of(&[("a", 0.0), ("b", 0.0), ("c", 0.0), ("d", 0.0)], SMALL);
    let l = |min, max| lex.lex_bounds(&LexRange { min, max });
    let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
    assert_eq!(l(LexBound::Min, LexBound::Max), (0, 4));
    assert_eq!(
        l(LexBound::Inclusive(b("b")), LexBound::Exclusive(b("d"))),
        (1, 3)
    );
    assert_eq!(
        l(LexBound::Exclusive(b("b")), LexBound::Inclusive(b("d"))),
        (2, 4)
    );
    assert_eq!(l(LexBound::Max, LexBound::Max), (4, 4));
    assert_eq!(l(LexBound::Min, LexBound::Min), (0, 0));
}

#[test]
fn pop_and_remove_ranks() {
    let mut z = set_of(&[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)], SMALL);
    let popped = z.pop(2, true);
    assert_eq!(
        popped,
        [
            (Bytes::from_static(b"d"), 4.0),
            (Bytes::from_static(b"c"), 3.0)
        ]
    );
    assert_eq!(z.pop(10, false).len(), 2);
    assert!(z.is_empty());
    let mut z = set_of(&[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)], SMALL);
    assert_eq!(z.remove_ranks(1, 3), 2);
    assert_eq!(members(&z), [("a".into(), 1.0), ("d".into(), 4.0)]);
    assert_eq!(z.remove_ranks(5, 9), 0);
}

#[test]
fn set_operations_weight_and_aggregate_as_redis() {
    let a = set_of(&[("x", 1.0), ("y", f64::INFINITY)], SMALL);
    let b = set_of(&[("y", f64::NEG_INFINITY), ("z", 3.0)], SMALL);
    let inputs = [
        Input {
            set: Some(&a),
            weight: 1.0,
        },
        Input {
            set: Some(&b),
            weight: 1.0,
        },
    ];
    let u = union(&inputs, Aggregate::Sum, SMALL);
    assert_eq!(
        members(&u),
        [("y".into(), 0.0), ("x".into(), 1.0), ("z".into(), 3.0)]
    );
    let i = inter(&inputs, Aggregate::Max, SMALL);
    assert_eq!(members(&i), [("y".into(), f64::INFINITY)]);
    assert_eq!(inter_card(&inputs, 0), 1);
    let d = diff(&inputs, SMALL);
    assert_eq!(members(&d), [("x".into(), 1.0)]);
    // inf * 0 is 0, not NaN.
    let zero = [Input {
        set: Some(&a),
        weight: 0.0,
    }];
    assert_eq!(
        members(&union(&zero, Aggregate::Sum, SMALL)),
        [("x".into(), 0.0), ("y".into(), 0.0)]
    );
    let missing = [
        inputs[0],
        Input {
            set: None,
            weight: 1.0,
        },
    ];
    assert!(inter(&missing, Aggregate::Sum, SMALL).is_empty());
    assert_eq!(union(&missing, Aggregate::Sum, SMALL).len(), 2);
}

#[test]
fn scan_visits_every_member_of_a_big_set() {
    let limits = Limits {
        entries: 2,
        value: 64,
    };
    let mut z = ZSet::new();
    for i in 0..1000 {
        z.insert(format!("m{i}").as_bytes(), i as f64, limits);
    }
    for i in (0..1000).step_by(3) {
        z.remove(format!("m{i}").as_bytes());
    }
    let mut seen = std::collections::HashSet::new();
    let mut cursor = 0;
    for _ in 0..10_000 {
        let (next, items) = z.scan(cursor, 10);
        for (m, _) in items {
            seen.insert(m.to_vec());
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen.len(), z.len());
}

/// Scores in a model: ordered as Redis orders them (never NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ordered(f64);
impl Eq for Ordered {}
impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_score(self.0, other.0)
    }
}

struct Model {
    order: BTreeSet<(Ordered, Vec<u8>)>,
    scores: HashMap<Vec<u8>, f64>,
}

impl Model {
    fn all(&self) -> Vec<(Vec<u8>, f64)> {
        self.order.iter().map(|(s, m)| (m.clone(), s.0)).collect()
    }
    fn remove(&mut self, m: &[u8]) -> Option<f64> {
        let s = self.scores.remove(m)?;
        self.order.remove(&(Ordered(s), m.to_vec()));
        Some(s)
    }
    fn set(&mut self, m: &[u8], s: f64) {
        self.remove(m);
        self.scores.insert(m.to_vec(), s);
        self.order.insert((Ordered(s), m.to_vec()));
    }
}

fn check(z: &ZSet, model: &Model, rng: &mut fastrand::Rng) {
    let want = model.all();
    assert_eq!(z.len(), want.len());
    let got: Vec<(Vec<u8>, f64)> = z.iter().map(|(m, s)| (m.to_vec(), s)).collect();
    assert_eq!(got, want);
    for _ in 0..5 {
        if want.is_empty() {
            break;
        }
        let r = rng.usize(..want.len());
        let (m, s) = &want[r];
        assert_eq!(z.rank(m, false), Some((r, *s)));
        assert_eq!(z.rank(m, true), Some((want.len() - 1 - r, *s)));
        assert_eq!(z.get(r), Some((&m[..], *s)));
        let a = rng.usize(..=want.len());
        let b = rng.usize(..=want.len());
        let rev: Vec<(Vec<u8>, f64)> = z.range(a, b, true).map(|(m, s)| (m.to_vec(), s)).collect();
        let mut expect: Vec<_> = want[a.min(b)..b.max(a).min(b)].to_vec();
        if a > b {
            expect.clear();
        }
        let mut walked = Vec::new();
        z.each_in_range(a, b, false, |m, s| walked.push((m.to_vec(), s)));
        let mut forward = expect.clone();
        assert_eq!(walked, forward);
        walked.clear();
        z.each_in_range(a, b, true, |m, s| walked.push((m.to_vec(), s)));
        forward.reverse();
        assert_eq!(walked, forward);
        expect.reverse();
        assert_eq!(rev, expect);
    }
    let lo = rng.i32(-5..25) as f64;
    let hi = rng.i32(-5..25) as f64;
    let range = ScoreRange {
        min: ScoreBound {
            value: lo,
            exclusive: rng.bool(),
        },
        max: ScoreBound {
            value: hi,
            exclusive: rng.bool(),
        },
    };
    let count = want
        .iter()
        .filter(|(_, s)| !below_min(*s, range.min) && within_max(*s, range.max))
        .count();
    assert_eq!(z.count_in_score(&range), count);
}

fn run_model(seed: u64, limits: Limits, steps: usize, keyspace: u32, every: usize) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut z = ZSet::new();
    let mut model = Model {
        order: BTreeSet::new(),
        scores: HashMap::new(),
    };
    for step in 0..steps {
        let m = if rng.u8(..10) == 0 {
            vec![b'x'; rng.usize(60..80)]
        } else {
            format!("m{}", rng.u32(..keyspace)).into_bytes()
        };
        let score = f64::from(rng.i32(-3..20)) / 2.0;
        match rng.u8(..10) {
            0..=4 => {
                z.insert(&m, score, limits);
                model.set(&m, score);
            }
            5 => {
                let flags = AddFlags {
                    incr: true,
                    ..Default::default()
                };
                let before = model.scores.get(&m).copied().unwrap_or(0.0);
                let added = z.add(&m, score, flags, limits);
                assert!(added.is_ok());
                model.set(&m, before + score);
            }
            6 | 7 => assert_eq!(z.remove(&m), model.remove(&m)),
            8 => {
                let n = rng.usize(..4);
                let max = rng.bool();
                let mut want = model.all();
                if max {
                    want.reverse();
                }
                want.truncate(n);
                let popped: Vec<(Vec<u8>, f64)> = z
                    .pop(n, max)
                    .into_iter()
                    .map(|(m, s)| (m.to_vec(), s))
                    .collect();
                assert_eq!(popped, want);
                for (pm, _) in &popped {
                    model.remove(pm);
                }
            }
            _ => {
                if !z.is_empty() {
                    let a = rng.usize(..z.len());
                    let b = (a + rng.usize(..5)).min(z.len());
                    let victims: Vec<Vec<u8>> =
                        z.range(a, b, false).map(|(m, _)| m.to_vec()).collect();
                    assert_eq!(z.remove_ranks(a, b), victims.len());
                    for v in victims {
                        model.remove(&v);
                    }
                }
            }
        }
        if step % every == 0 || z.len() < 10 {
            check(&z, &model, &mut rng);
        }
        if step % 500 == 0 {
            z.shrink_if_small(limits);
        }
    }
    check(&z, &model, &mut rng);
}

#[test]
fn random_operations_match_a_model_across_conversions() {
    for seed in 1..=6 {
        run_model(
            seed,
            Limits {
                entries: 16,
                value: 64,
            },
            4000,
            40,
            50,
        );
    }
}

#[test]
fn random_operations_match_a_model_over_many_chunks() {
    for seed in 10..=11 {
        run_model(seed, SMALL, 20_000, 5000, 1000);
    }
}

#[test]
fn a_large_set_keeps_ranks_through_appends_and_deletes() {
    let mut z = ZSet::new();
    let n = 20_000;
    for i in 0..n {
        z.insert(format!("{i:08}").as_bytes(), i as f64, SMALL);
    }
    for i in (0..n).rev().step_by(7) {
        z.remove(format!("{i:08}").as_bytes());
    }
    let all: Vec<f64> = z.iter().map(|(_, s)| s).collect();
    assert_eq!(all.len(), z.len());
    for (r, s) in all.iter().enumerate().step_by(97) {
        assert_eq!(z.get(r).map(|g| g.1), Some(*s));
        assert_eq!(
            z.rank(format!("{:08}", *s as i64).as_bytes(), false)
                .map(|x| x.0),
            Some(r)
        );
    }
    assert!(all.windows(2).all(|w| w[0] < w[1]));
}
