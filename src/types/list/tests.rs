use std::collections::VecDeque;

use super::*;

fn list_of(n: usize, len: usize, fill: i64) -> List {
    let mut l = List::new();
    for _ in 0..n {
        l.push(End::Right, &vec![b'x'; len], fill);
    }
    l
}

#[test]
fn ranges_read_as_redis_reads_them() {
    assert_eq!(index_range(0, -1, 4), Some((0, 3)));
    assert_eq!(index_range(-2, -1, 4), Some((2, 3)));
    assert_eq!(index_range(5, 10, 4), None);
    assert_eq!(index_range(2, 1, 4), None);
    assert_eq!(index_range(-100, 100, 4), Some((0, 3)));
    assert_eq!(index_range(i64::MIN, i64::MAX, 4), Some((0, 3)));
    assert_eq!(index_range(0, i64::MIN, 4), None);
    assert_eq!(index_range(0, 0, 0), None);
}

#[test]
fn entries_read_back_from_either_end_at_every_varint_width() {
    for len in [0, 1, 127, 128, 16_383, 16_384, 70_000] {
        let data = vec![b'a'; len];
        let mut buf = vec![0; entry_len(len)];
        write_entry(&mut buf, &data);
        let (d, e, next) = read_forward(&buf, 0).unwrap();
        assert_eq!((e - d, next), (len, buf.len()));
        let (start, d, e) = read_backward(&buf, buf.len()).unwrap();
        assert_eq!((start, e - d), (0, len));
    }
}

#[test]
fn a_list_is_a_listpack_until_a_push_would_overflow_one_node() {
    // 8 KB at -2: 100-byte elements take 103 listpack bytes each, and Redis
    // adds the raw length of what is pushed to the listpack's bytes.
    assert_eq!(list_of(79, 100, -2).encoding_name(), "listpack");
    assert_eq!(list_of(80, 100, -2).encoding_name(), "quicklist");
    assert_eq!(list_of(80, 100, -3).encoding_name(), "listpack");
    assert_eq!(list_of(5, 1, 5).encoding_name(), "listpack");
    assert_eq!(list_of(6, 1, 5).encoding_name(), "quicklist");
    // 0 is read as 1 element per node.
    assert_eq!(list_of(1, 1, 0).encoding_name(), "listpack");
    assert_eq!(list_of(2, 1, 0).encoding_name(), "quicklist");
    // A positive fill still keeps a node within 8 KB.
    assert_eq!(list_of(1, 9000, 5).encoding_name(), "quicklist");
    assert_eq!(list_of(1, 1, i64::MIN).encoding_name(), "listpack");
    assert_eq!(list_of(3, 1, i64::MAX).encoding_name(), "listpack");
    assert_eq!(listpack_entry_size(b"12"), 2);
    assert_eq!(listpack_entry_size(b"1000"), 3);
}

#[test]
fn one_push_of_many_elements_converts_before_it_adds_them() {
    let mut l = List::new();
    let values: Vec<&[u8]> = vec![b"a"; 6];
    l.push_all(End::Left, values.iter().copied(), 5);
    assert_eq!(l.encoding_name(), "quicklist");
    assert_eq!(l.len(), 6);
}

#[test]
fn a_quicklist_turns_listpack_again_only_at_half_the_limit() {
    // Redis 7.2: one packed node of at most half the size (4096 at -2).
    let mut l = list_of(80, 100, -2);
    for _ in 0..40 {
        l.pop(End::Right, -2);
        assert_eq!(l.encoding_name(), "quicklist", "{} left", l.len());
    }
    // 39 elements: 7 + 39 * 103 = 4024 bytes.
    l.pop(End::Right, -2);
    assert_eq!(l.len(), 39);
    assert_eq!(l.encoding_name(), "listpack");
    // Count limits halve too: 5 -> 2. Nodes of 5 and 1 elements.
    let mut l = list_of(6, 1, 5);
    for _ in 0..4 {
        l.pop(End::Left, 5);
    }
    // Two nodes of one element each: still a quicklist.
    assert_eq!((l.len(), l.encoding_name()), (2, "quicklist"));
    let mut l = list_of(6, 1, 5);
    for _ in 0..3 {
        l.pop(End::Right, 5);
    }
    assert_eq!((l.len(), l.encoding_name()), (3, "quicklist"));
    l.pop(End::Right, 5);
    assert_eq!((l.len(), l.encoding_name()), (2, "listpack"));
}

#[test]
fn a_large_element_has_a_plain_node_which_never_turns_listpack() {
    let mut l = List::new();
    l.push(End::Right, b"a", -2);
    l.push(End::Right, &[b'x'; 9000], -2);
    assert_eq!(l.encoding_name(), "quicklist");
    l.pop(End::Left, -2);
    assert_eq!(l.encoding_name(), "quicklist");
    assert_eq!(l.len(), 1);
    l.push(End::Left, b"b", -2);
    l.pop(End::Right, -2);
    assert_eq!(l.encoding_name(), "listpack");
}

#[test]
fn lrem_ltrim_and_lset_shrink_a_quicklist_back() {
    let mut l = list_of(10, 1, 5);
    assert_eq!(l.encoding_name(), "quicklist");
    l.trim(0, 1, 5);
    assert_eq!((l.len(), l.encoding_name()), (2, "listpack"));
    let mut l = list_of(10, 1, 5);
    assert_eq!(l.remove(b"x", -8, 5), 8);
    assert_eq!((l.len(), l.encoding_name()), (2, "listpack"));
    let mut l = List::new();
    l.push(End::Right, &[b'x'; 9000], -2);
    assert!(l.set(0, b"small", -2));
    assert_eq!(l.encoding_name(), "listpack");
    assert!(l.set(-1, &[b'y'; 9000], -2));
    assert_eq!(l.encoding_name(), "quicklist");
}

#[test]
fn push_and_pop_at_either_end() {
    let mut l = List::new();
    l.push(End::Left, b"a", -2);
    l.push(End::Right, b"b", -2);
    l.push(End::Left, b"c", -2);
    assert_eq!(l.pop(End::Right, -2).as_deref(), Some(&b"b"[..]));
    assert_eq!(l.pop(End::Left, -2).as_deref(), Some(&b"c"[..]));
    assert_eq!(l.pop(End::Left, -2).as_deref(), Some(&b"a"[..]));
    assert_eq!(l.pop(End::Left, -2), None);
    assert!(l.is_empty());
}

#[test]
fn lpos_ranks_counts_and_maxlen() {
    let mut l = List::new();
    for v in [b"a", b"b", b"c", b"1", b"2", b"3", b"c", b"c"] {
        l.push(End::Right, v, -2);
    }
    assert_eq!(l.positions(b"c", 1, 1, 0), vec![2]);
    assert_eq!(l.positions(b"c", 2, 1, 0), vec![6]);
    assert_eq!(l.positions(b"c", -1, 0, 0), vec![7, 6, 2]);
    assert_eq!(l.positions(b"c", 1, 0, 0), vec![2, 6, 7]);
    assert_eq!(l.positions(b"c", 1, 0, 3), vec![2]);
    assert_eq!(l.positions(b"c", -1, 0, 1), vec![7]);
    assert_eq!(l.positions(b"c", i64::MIN, 0, 0), Vec::<usize>::new());
    assert_eq!(l.positions(b"z", 1, 0, 0), Vec::<usize>::new());
}

/// The node structure agrees with itself, and the encoding with Redis's rule
/// for a listpack (it fits one node).
fn check_shape(l: &List, fill: Fill) {
    let total: usize = l.nodes.iter().map(Node::count).sum();
    assert_eq!(total, l.len());
    for node in &l.nodes {
        assert!(node.count > 0);
        assert_eq!(node.iter().count(), node.count());
        let lp: usize = LISTPACK_EMPTY + node.iter().map(listpack_entry_size).sum::<usize>();
        assert_eq!(lp, node.lp_bytes());
        assert!(node.buf.capacity() <= (node.buf.len() * 2).max(node_limit(-5).0));
        assert!(!node.plain || node.count == 1);
        // A plain node holds an element too large for a packed one.
        assert!(!node.plain || node.iter().all(|e| is_large(e.len(), fill)));
    }
    if !l.is_quicklist() {
        assert!(l.nodes.len() <= 1);
        assert!(l.nodes.iter().all(|n| !n.plain));
        let _ = fill;
    }
}

fn check(l: &List, model: &VecDeque<Vec<u8>>, fill: Fill) {
    check_shape(l, fill);
    assert_eq!(l.len(), model.len());
    assert!(l.iter().eq(model.iter().map(Vec::as_slice)));
    assert!(l.iter().rev().eq(model.iter().rev().map(Vec::as_slice)));
}

fn random_value(rng: &mut fastrand::Rng) -> Vec<u8> {
    match rng.u8(0..20) {
        0 => vec![b'L'; rng.usize(3000..10_000)],
        1 => vec![b'm'; rng.usize(100..600)],
        2 => rng.i64(-70_000..70_000).to_string().into_bytes(),
        _ => vec![b'a' + rng.u8(0..4); rng.usize(0..3)],
    }
}

fn model_run(seed: u64, fill: impl Into<Fill>, steps: usize) -> (usize, usize) {
    let fill = fill.into();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut l = List::new();
    let mut model: VecDeque<Vec<u8>> = VecDeque::new();
    let mut seen = (0, 0);
    for _ in 0..steps {
        let len = model.len() as i64;
        let index = rng.i64(-len - 2..len + 2);
        match rng.u8(0..14) {
            0..=3 => {
                let end = if rng.bool() { End::Left } else { End::Right };
                let values: Vec<Vec<u8>> = (0..rng.usize(1..6))
                    .map(|_| random_value(&mut rng))
                    .collect();
                l.push_all(end, values.iter().map(Vec::as_slice), fill);
                for v in values {
                    match end {
                        End::Left => model.push_front(v),
                        End::Right => model.push_back(v),
                    }
                }
            }
            4 | 5 => {
                let (got, want) = if rng.bool() {
                    (l.pop(End::Left, fill), model.pop_front())
                } else {
                    (l.pop(End::Right, fill), model.pop_back())
                };
                assert_eq!(got.as_deref(), want.as_deref());
            }
            6 => {
                let v = random_value(&mut rng);
                let pos = l.position(index);
                assert_eq!(l.set(index, &v, fill), pos.is_some());
                if let Some(p) = pos {
                    model[p] = v;
                }
            }
            7 => {
                let pivot = random_value(&mut rng);
                let v = random_value(&mut rng);
                let after = rng.bool();
                let at = model.iter().position(|e| *e == pivot);
                let got = l.insert(&pivot, &v, after, fill);
                if let Some(at) = at {
                    model.insert(at + usize::from(after), v);
                    assert_eq!(got, Some(model.len()));
                } else {
                    assert_eq!(got, None);
                }
            }
            8 => {
                let v = random_value(&mut rng);
                let count = rng.i64(-3..4);
                let removed = l.remove(&v, count, fill);
                let mut idx: Vec<usize> = (0..model.len()).filter(|&i| model[i] == v).collect();
                if count < 0 {
                    idx.reverse();
                }
                if count != 0 {
                    idx.truncate(count.unsigned_abs() as usize);
                }
                idx.sort_unstable();
                for i in idx.iter().rev() {
                    model.remove(*i);
                }
                assert_eq!(removed, idx.len());
            }
            9 => {
                let stop = rng.i64(-len - 2..len + 2);
                l.trim(index, stop, fill);
                match index_range(index, stop, model.len()) {
                    Some((a, b)) => {
                        model.truncate(b + 1);
                        model.drain(..a);
                    }
                    None => model.clear(),
                }
            }
            10 => {
                let v = random_value(&mut rng);
                let rank: i64 = [1, 2, -1, -2, 3][rng.usize(0..5)];
                let count = rng.usize(0..3);
                let maxlen = rng.usize(0..6);
                let mut want = Vec::new();
                let order: Vec<usize> = if rank > 0 {
                    (0..model.len()).collect()
                } else {
                    (0..model.len()).rev().collect()
                };
                let mut matched = 0;
                for (k, i) in order.into_iter().enumerate() {
                    if maxlen != 0 && k >= maxlen || count != 0 && want.len() == count {
                        break;
                    }
                    if model[i] == v {
                        matched += 1;
                        if matched >= rank.unsigned_abs() as usize {
                            want.push(i);
                        }
                    }
                }
                assert_eq!(l.positions(&v, rank, count, maxlen), want);
            }
            11 => {
                assert_eq!(l.get(index), l.position(index).map(|p| model[p].as_slice()));
            }
            _ => {
                let stop = rng.i64(-len - 2..len + 2);
                let got: Vec<&[u8]> = match index_range(index, stop, l.len()) {
                    Some((a, b)) => l.range(a, b).collect(),
                    None => Vec::new(),
                };
                let want: Vec<&[u8]> = match index_range(index, stop, model.len()) {
                    Some((a, b)) => model.range(a..=b).map(Vec::as_slice).collect(),
                    None => Vec::new(),
                };
                assert_eq!(got, want);
            }
        }
        if model.is_empty() {
            // An emptied list is deleted: the next write starts a new one.
            l = List::new();
        }
        check(&l, &model, fill);
        match l.encoding_name() {
            "listpack" => seen.0 += 1,
            _ => seen.1 += 1,
        }
    }
    seen
}

#[test]
fn a_list_behaves_as_a_deque_under_random_operations() {
    for (seed, fill) in [(1, -2), (2, -1), (3, 3), (4, 0), (5, 8), (6, -3), (7, 1)] {
        let (listpack, quicklist) = model_run(seed, fill, 3000);
        assert!(
            listpack > 0 && quicklist > 0,
            "fill {fill}: {listpack} {quicklist}"
        );
    }
}

/// DEBUG QUICKLIST-PACKED-THRESHOLD's override: with it low, most elements
/// of a quicklist sit in plain nodes, and every operation still agrees with
/// the model.
#[test]
fn a_low_plain_node_threshold_keeps_the_deque_right() {
    for (seed, size, plain_at) in [(11, -2, 1), (12, 2, 5), (13, -1, 600), (14, 3, 1)] {
        let (listpack, quicklist) = model_run(seed, Fill { size, plain_at }, 3000);
        assert!(quicklist > 0, "{size} {plain_at}: {listpack} {quicklist}");
    }
}

#[test]
fn the_plain_node_threshold_decides_which_elements_stand_alone() {
    let fill = Fill {
        size: 2,
        plain_at: 10,
    };
    let mut l = List::new();
    for v in [&b"a"[..], b"b", b"c"] {
        l.push(End::Right, v, fill);
    }
    assert!(l.is_quicklist());
    l.push(End::Right, &[b'x'; 10], fill);
    l.push(End::Right, &[b'y'; 9], fill);
    let plain: Vec<(bool, usize)> = l.nodes().map(|(p, e)| (p, e.count())).collect();
    assert_eq!(plain, vec![(false, 2), (false, 1), (true, 1), (false, 1)]);
    // 0 leaves it to the fill: a 10-byte element is not large.
    let mut l = List::new();
    for v in [&b"a"[..], b"b", b"c"] {
        l.push(End::Right, v, 2);
    }
    l.push(End::Right, &[b'x'; 10], 2);
    assert!(l.nodes().all(|(p, _)| !p));
}

#[test]
fn a_list_is_40_bytes_and_its_nodes_fill_their_buffers() {
    assert_eq!(std::mem::size_of::<List>(), 40);
    let mut l = List::new();
    for i in 0..20_000 {
        l.push(End::Right, format!("element:{i}").as_bytes(), -2);
    }
    let cap: usize = l.nodes.iter().map(|n| n.buf.capacity()).sum();
    let used: usize = l.nodes.iter().map(|n| n.buf.len()).sum();
    assert!(cap * 100 <= used * 102, "{cap} bytes held for {used}");
}

#[test]
fn a_full_node_takes_exactly_its_limit_from_the_allocator() {
    // A full node of an 8 KB limit must take an 8 KB chunk (its buffer plus
    // malloc's header), so two fit in a freed 16 KB read buffer; at 8 KB and
    // 16 bytes a tenth of a big list's RSS was such holes.
    for fill in [-1, -2, -3] {
        let limit = node_limit(fill).0;
        let mut l = List::new();
        for i in 0..50_000 {
            l.push(End::Right, format!("element:{i}").as_bytes(), fill);
        }
        // The first node was the listpack, which may go a few bytes over
        // the limit before it converts; the last is not full.
        for node in l.nodes.iter().skip(1).take(l.nodes.len() - 2) {
            assert_eq!(node.buf.capacity() + CHUNK_HEADER, limit, "fill {fill}");
        }
    }
    assert_eq!(node_capacity(1), 8);
    assert_eq!(node_capacity(8184), 8184);
    assert_eq!(node_capacity(8185), 16_376);
    assert_eq!(node_capacity(usize::MAX), usize::MAX);
}
