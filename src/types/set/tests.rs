//! Unit tests of [`Set`]: encodings and conversions as Redis 7.2 makes them, and a
//! randomized model test against `std::collections::HashSet`.

use std::collections::HashSet;

use super::*;

fn limits() -> SetLimits {
    SetLimits::default()
}

fn set_of(members: &[&str]) -> Set {
    let mut s = Set::default();
    if let Some(first) = members.first() {
        s.prepare(first.as_bytes(), members.len(), &limits());
    }
    for m in members {
        s.add(m.as_bytes(), &limits());
    }
    s
}

fn strings(s: &Set) -> Vec<String> {
    s.iter()
        .map(|m| m.with_bytes(|b| String::from_utf8_lossy(b).into_owned()))
        .collect()
}

fn refs_to_strings(v: &[MemberRef<'_>]) -> Vec<String> {
    v.iter()
        .map(|m| m.with_bytes(|b| String::from_utf8_lossy(b).into_owned()))
        .collect()
}

#[test]
fn canonical_integers_are_what_string2ll_accepts() {
    assert_eq!(canonical_int(b"0"), Some(0));
    assert_eq!(canonical_int(b"-12"), Some(-12));
    assert_eq!(canonical_int(b"9223372036854775807"), Some(i64::MAX));
    assert_eq!(canonical_int(b"-9223372036854775808"), Some(i64::MIN));
    for bad in [
        &b""[..],
        b"+1",
        b"01",
        b"-0",
        b" 1",
        b"1 ",
        b"9223372036854775808",
        b"1.0",
        b"abc",
    ] {
        assert_eq!(
            canonical_int(bad),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn integers_make_an_intset_kept_sorted() {
    let s = set_of(&["3", "-1", "2", "3"]);
    assert_eq!(s.encoding_name(), "intset");
    assert_eq!(s.len(), 3);
    assert_eq!(strings(&s), ["-1", "2", "3"]);
    assert!(s.contains(b"2"));
    assert!(!s.contains(b"02"));
    assert!(!s.contains(b"x"));
}

#[test]
fn intset_widens_as_needed_and_keeps_every_value() {
    let mut s = Set::default();
    let values = [1i64, -40_000, 70_000, i64::MAX, i64::MIN, 5, 0];
    for v in values {
        assert!(s.add(v.to_string().as_bytes(), &limits()));
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let expect: Vec<String> = sorted.iter().map(|v| v.to_string()).collect();
    assert_eq!(strings(&s), expect);
    assert!(s.remove(b"70000"));
    assert!(!s.remove(b"70000"));
    assert!(s.contains(&i64::MIN.to_string().into_bytes()));
}

#[test]
fn a_small_intset_uses_two_bytes_a_member_in_one_exact_allocation() {
    assert_eq!(std::mem::size_of::<Set>(), 16);
    let seven: Vec<String> = (1..=7).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = seven.iter().map(|s| s.as_str()).collect();
    let s = set_of(&refs);
    let Repr::Ints(all) = &s.0 else {
        panic!("intset")
    };
    assert_eq!(all.len(), 1 + 7 * 2);
    assert_eq!(strings(&s), seven);
    let mut s = s;
    s.add(b"8", &limits());
    let Repr::Ints(all) = &s.0 else {
        panic!("an intset of its own allocation")
    };
    // One width byte, then eight 16-bit members.
    assert_eq!(all.len(), 17);
    // A 64-bit member widens every member; removing it leaves the width.
    s.add(b"-9223372036854775808", &limits());
    assert!(s.remove(b"-9223372036854775808"));
    let Repr::Ints(all) = &s.0 else {
        panic!("intset")
    };
    assert_eq!(all.len(), 1 + 8 * 8);
    assert!(s.contains(b"8") && s.contains(b"1"));
    for i in 2..=8 {
        s.remove(i.to_string().as_bytes());
    }
    let Repr::Ints(all) = &s.0 else {
        panic!("intset")
    };
    assert_eq!(all.len(), 1 + 8, "still 64 bits wide, as Redis's");
    assert_eq!(strings(&s), ["1"]);
}

#[test]
fn a_string_turns_a_small_intset_into_a_listpack_in_sorted_then_insertion_order() {
    let mut s = set_of(&["5", "1"]);
    assert!(s.add(b"b", &limits()));
    assert_eq!(s.encoding_name(), "listpack");
    assert_eq!(strings(&s), ["1", "5", "b"]);
    assert!(s.add(b"a", &limits()));
    assert_eq!(strings(&s), ["1", "5", "b", "a"]);
    assert!(!s.add(b"5", &limits()));
}

#[test]
fn a_string_turns_a_big_intset_into_a_hashtable() {
    let members: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = members.iter().map(|s| s.as_str()).collect();
    let mut s = set_of(&refs);
    assert_eq!(s.encoding_name(), "intset");
    s.add(b"x", &limits());
    assert_eq!(s.encoding_name(), "hashtable");
    assert_eq!(s.len(), 201);
}

#[test]
fn a_long_string_or_long_integers_skip_the_listpack() {
    let mut s = set_of(&["1"]);
    s.add(&[b'a'; 65], &limits());
    assert_eq!(s.encoding_name(), "hashtable");
    // 20 digits is short enough; a limit of 3 is not.
    let tight = SetLimits {
        value: 3,
        ..limits()
    };
    let mut s = set_of(&["1", "12345"]);
    s.add(b"a", &tight);
    assert_eq!(s.encoding_name(), "hashtable");
}

#[test]
fn intset_turns_into_a_hashtable_past_its_entries() {
    let mut s = Set::default();
    for i in 0..512 {
        s.add(i.to_string().as_bytes(), &limits());
    }
    assert_eq!(s.encoding_name(), "intset");
    s.add(b"512", &limits());
    assert_eq!(s.encoding_name(), "hashtable");
    assert_eq!(s.len(), 513);
}

#[test]
fn listpack_turns_into_a_hashtable_past_its_limits() {
    let mut s = Set::packed();
    for i in 0..128 {
        s.add(format!("m{i}").as_bytes(), &limits());
    }
    assert_eq!(s.encoding_name(), "listpack");
    s.add(b"one more", &limits());
    assert_eq!(s.encoding_name(), "hashtable");
    let mut s = set_of(&["a"]);
    s.add(&[b'x'; 64], &limits());
    assert_eq!(s.encoding_name(), "listpack");
    s.add(&[b'x'; 65], &limits());
    assert_eq!(s.encoding_name(), "hashtable");
}

#[test]
fn prepare_picks_the_start_encoding_from_the_first_member_and_the_count() {
    let mut s = Set::default();
    s.prepare(b"1", 2, &limits());
    assert_eq!(s.encoding_name(), "intset");
    let mut s = Set::default();
    s.prepare(b"a", 128, &limits());
    assert_eq!(s.encoding_name(), "listpack");
    let mut s = Set::default();
    s.prepare(b"a", 129, &limits());
    assert_eq!(s.encoding_name(), "hashtable");
    let mut s = Set::default();
    s.prepare(b"1", 513, &limits());
    assert_eq!(s.encoding_name(), "hashtable");
    let mut s = Set::default();
    s.prepare(b"1", 100, &limits());
    assert_eq!(s.encoding_name(), "intset");
    let mut s = set_of(&["a"]);
    s.prepare(b"b", 129, &limits());
    assert_eq!(s.encoding_name(), "hashtable");
    let mut s = set_of(&["1"]);
    s.prepare(b"2", 513, &limits());
    assert_eq!(s.encoding_name(), "hashtable");
}

#[test]
fn listpack_removal_keeps_order() {
    let mut s = set_of(&["c", "a", "b"]);
    assert!(s.remove(b"a"));
    assert!(!s.remove(b"zz"));
    assert_eq!(strings(&s), ["c", "b"]);
}

#[test]
fn hashtable_remove_and_pop_keep_the_index_right() {
    let mut s = Set::default();
    s.prepare(b"a", 1000, &limits());
    for i in 0..300 {
        s.add(format!("k{i}").as_bytes(), &limits());
    }
    for i in (0..300).step_by(3) {
        assert!(s.remove(format!("k{i}").as_bytes()));
    }
    for i in 0..300 {
        assert_eq!(s.contains(format!("k{i}").as_bytes()), i % 3 != 0);
    }
    let mut rng = fastrand::Rng::with_seed(7);
    let mut popped = HashSet::new();
    while let Some(m) = s.pop_random(&mut rng) {
        assert!(popped.insert(m.as_slice().to_vec()));
        assert!(!s.contains(m.as_slice()));
    }
    assert_eq!(popped.len(), 200);
}

#[test]
fn pop_many_takes_distinct_members_and_rebuilds_small_sets() {
    let mut rng = fastrand::Rng::with_seed(3);
    for (members, keep) in [
        (vec!["1", "2", "3", "4", "5", "6"], 1),
        (vec!["a", "b", "c", "d"], 3),
    ] {
        let mut s = set_of(&members);
        let before: HashSet<String> = strings(&s).into_iter().collect();
        let popped = s.pop_many(members.len() - keep, &limits(), &mut rng);
        assert_eq!(popped.len(), members.len() - keep);
        assert_eq!(s.len(), keep);
        let mut all: HashSet<String> = strings(&s).into_iter().collect();
        for p in &popped {
            assert!(all.insert(String::from_utf8_lossy(p).into_owned()));
        }
        assert_eq!(all, before);
    }
    // Most of a hashtable popped: what stays is rebuilt as a listpack.
    let mut s = Set::default();
    s.prepare(b"a", 300, &limits());
    for i in 0..300 {
        s.add(format!("k{i}").as_bytes(), &limits());
    }
    let popped = s.pop_many(290, &limits(), &mut rng);
    assert_eq!(popped.len(), 290);
    assert_eq!(s.encoding_name(), "listpack");
    assert_eq!(s.len(), 10);
}

#[test]
fn random_members_have_the_requested_shape() {
    let mut rng = fastrand::Rng::with_seed(11);
    let s = set_of(&["a", "b", "c", "d", "e"]);
    assert_eq!(s.random_distinct(10, &mut rng).len(), 5);
    for n in 0..=5 {
        let picks = refs_to_strings(&s.random_distinct(n, &mut rng));
        let unique: HashSet<&String> = picks.iter().collect();
        assert_eq!((picks.len(), unique.len()), (n, n));
        // A listpack's picks come in its order.
        let mut sorted = picks.clone();
        sorted.sort();
        assert_eq!(picks, sorted);
    }
    let rep = s.random_repeated(50, &mut rng);
    assert_eq!(rep.len(), 50);
    assert!(rep.iter().all(|m| m.with_bytes(|b| s.contains(b))));
    assert!(Set::default().random_repeated(5, &mut rng).is_empty());
    assert!(Set::default().random(&mut rng).is_none());
}

#[test]
fn scan_of_a_small_set_is_one_step() {
    let s = set_of(&["1", "2"]);
    let (cursor, items) = s.scan(12345, 1);
    assert_eq!(cursor, 0);
    assert_eq!(items.len(), 2);
}

#[test]
fn scan_of_a_hashtable_returns_every_stable_member_once() {
    let mut s = Set::default();
    s.prepare(b"a", 500, &limits());
    for i in 0..500 {
        s.add(format!("m{i}").as_bytes(), &limits());
    }
    let mut seen = HashSet::new();
    let mut cursor = 0;
    let mut steps = 0;
    loop {
        let (next, items) = s.scan(cursor, 10);
        let items = refs_to_strings(&items);
        steps += 1;
        assert!(items.len() < 20);
        let owned: Vec<String> = items;
        // Change the set while iterating: members removed and added.
        for m in &owned {
            seen.insert(m.clone());
        }
        s.add(format!("new{steps}").as_bytes(), &limits());
        if next == 0 {
            break;
        }
        cursor = next;
        assert!(steps < 1000);
    }
    for i in 0..500 {
        assert!(seen.contains(&format!("m{i}")), "m{i} missed");
    }
    assert!(steps > 10);
}

#[test]
fn intersection_walks_the_smallest_set() {
    let a = set_of(&["c", "b", "a", "x"]);
    let b = set_of(&["a", "b", "c"]);
    let c = set_of(&["b", "c", "a", "z", "y"]);
    assert_eq!(
        refs_to_strings(&intersection(&[&a, &c, &b])),
        ["a", "b", "c"]
    );
    assert_eq!(intersection_card(&[&a, &b, &c], 0), 3);
    assert_eq!(intersection_card(&[&a, &b, &c], 2), 2);
    assert_eq!(intersection_card(&[&a, &a], 0), 4);
    let stored = intersection_set(&[&a, &c], &limits());
    assert_eq!(stored.encoding_name(), "listpack");
    // Built in the order of the smaller set, `a`.
    assert_eq!(strings(&stored), ["c", "b", "a"]);
}

#[test]
fn stored_intersection_of_integers_is_an_intset() {
    let a = set_of(&["3", "1", "2", "x"]);
    let b = set_of(&["2", "3", "y"]);
    let stored = intersection_set(&[&a, &b], &limits());
    assert_eq!(stored.encoding_name(), "intset");
    assert_eq!(strings(&stored), ["2", "3"]);
}

#[test]
fn union_and_difference_grow_from_an_intset() {
    let a = set_of(&["b", "3", "1"]);
    let b = set_of(&["3", "1"]);
    let u = union(&[Some(&a), None, Some(&b)], &limits());
    assert_eq!(u.encoding_name(), "listpack");
    assert_eq!(strings(&u), ["b", "3", "1"]);
    let u = union(&[Some(&b), Some(&a)], &limits());
    assert_eq!(strings(&u), ["1", "3", "b"]);
    let d = difference(&[Some(&a), Some(&b)], false, &limits());
    assert_eq!(strings(&d), ["b"]);
    let d = difference(&[Some(&b), None], false, &limits());
    assert_eq!(d.encoding_name(), "intset");
    assert_eq!(strings(&d), ["1", "3"]);
    assert!(difference(&[None, Some(&a)], false, &limits()).is_empty());
    assert!(difference(&[Some(&a), Some(&a)], true, &limits()).is_empty());
}

#[test]
fn difference_by_removal_keeps_a_hashtable_result_a_hashtable() {
    // Four sets, the first of five members (a hashtable for its long member):
    // walking the first (4 * 5 / 2 = 10) costs more than visiting all (5 + 3),
    // so Redis copies the first and removes; the result stays a hashtable.
    let long = "l".repeat(65);
    let first = set_of(&[&long, "a", "b", "c", "d"]);
    assert_eq!(first.encoding_name(), "hashtable");
    let (x, y, z) = (set_of(&[&long]), set_of(&["x"]), set_of(&["y"]));
    let d = difference(
        &[Some(&first), Some(&x), Some(&y), Some(&z)],
        false,
        &limits(),
    );
    assert_eq!(d.len(), 4);
    assert_eq!(d.encoding_name(), "hashtable");
    // With two sets walking the first is cheaper: only survivors are added.
    let d = difference(&[Some(&first), Some(&x)], false, &limits());
    assert_eq!(d.encoding_name(), "listpack");
    assert_eq!(d.len(), 4);
}

/// Random operations on a set and on a `HashSet` model, with small limits so
/// every conversion happens, checking contents and the encoding rules after
/// each step.
#[test]
fn randomized_against_a_hashset_model() {
    let tight = SetLimits {
        intset_entries: 20,
        entries: 10,
        value: 6,
    };
    for seed in 0..200u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut s = Set::default();
        let mut model: HashSet<Vec<u8>> = HashSet::new();
        for _ in 0..200 {
            let member: Vec<u8> = match rng.u8(..4) {
                0 => rng.i64(-300..300).to_string().into_bytes(),
                1 => format!("s{}", rng.u8(..30)).into_bytes(),
                2 => format!("0{}", rng.u8(..5)).into_bytes(),
                _ => format!("long-{}", rng.u8(..5)).into_bytes(),
            };
            match rng.u8(..10) {
                0..=4 => {
                    if s.is_empty() {
                        s.prepare(&member, 1, &tight);
                    }
                    assert_eq!(s.add(&member, &tight), model.insert(member.clone()));
                }
                5..=7 => assert_eq!(s.remove(&member), model.remove(&member)),
                8 => {
                    if let Some(m) = s.pop_random(&mut rng) {
                        assert!(model.remove(m.as_slice()));
                    }
                }
                _ => {
                    if s.len() > 1 {
                        let n = rng.usize(1..s.len());
                        for m in s.pop_many(n, &tight, &mut rng) {
                            assert!(model.remove(m.as_slice()));
                        }
                    }
                }
            }
            assert_eq!(s.len(), model.len());
            assert_eq!(s.contains(&member), model.contains(&member));
            let members: HashSet<Vec<u8>> =
                s.iter().map(|m| m.with_bytes(|b| b.to_vec())).collect();
            assert_eq!(members, model);
            match s.encoding_name() {
                "intset" => {
                    assert!(s.len() <= tight.intset_entries);
                    assert!(model.iter().all(|m| canonical_int(m).is_some()));
                }
                "listpack" => {
                    assert!(s.len() <= tight.entries);
                    assert!(model.iter().all(|m| m.len() <= tight.value));
                }
                _ => {}
            }
        }
        let other: Set = {
            let mut o = Set::default();
            for i in -5..5 {
                o.add(i.to_string().as_bytes(), &tight);
            }
            o
        };
        let inter: HashSet<Vec<u8>> = intersection(&[&s, &other])
            .iter()
            .map(|m| m.with_bytes(|b| b.to_vec()))
            .collect();
        let other_model: HashSet<Vec<u8>> =
            (-5..5).map(|i: i32| i.to_string().into_bytes()).collect();
        assert_eq!(inter, &model & &other_model);
        let uni: HashSet<Vec<u8>> = union(&[Some(&s), Some(&other)], &tight)
            .iter()
            .map(|m| m.with_bytes(|b| b.to_vec()))
            .collect();
        assert_eq!(uni, &model | &other_model);
        let diff: HashSet<Vec<u8>> = difference(&[Some(&s), Some(&other)], false, &tight)
            .iter()
            .map(|m| m.with_bytes(|b| b.to_vec()))
            .collect();
        assert_eq!(diff, &model - &other_model);
    }
}
