//! Point-in-time snapshots (`persist::Snapshot`) into an in-memory sink: the
//! image equals the keyspace at the instant while clients keep writing, for
//! every type, across databases; expiry, FLUSHALL, RENAME, MOVE and new keys
//! after the instant leave it alone; one snapshot at a time.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use latchkey::keyspace::{Keyspace, Value};
use latchkey::persist::{Snapshot, SnapshotError, SnapshotSink};
use latchkey::{Server, ServerHandle};

/// A key's content in a form two servers can be compared by.
type Image = BTreeMap<(usize, Vec<u8>), (String, Option<u64>)>;

/// Keeps everything it is handed; optionally sleeps now and then so that a
/// concurrent writer gets plenty of turns during the walk.
#[derive(Default)]
struct MemorySink {
    db: Option<usize>,
    fencing: Vec<u64>,
    dbs: Vec<(usize, u64, u64)>,
    keys: Image,
    duplicates: Vec<(usize, Vec<u8>)>,
    pause_every: usize,
    seen: usize,
}

impl SnapshotSink for MemorySink {
    fn fencing_high_water(&mut self, token: u64) -> io::Result<()> {
        self.fencing.push(token);
        Ok(())
    }

    fn select_db(&mut self, db: usize, keys: u64, expires: u64) -> io::Result<()> {
        self.db = Some(db);
        self.dbs.push((db, keys, expires));
        Ok(())
    }

    fn entry(&mut self, key: &[u8], value: &Value, expire_at_ms: Option<u64>) -> io::Result<()> {
        let db = self.db.expect("select_db comes first");
        let old = self
            .keys
            .insert((db, key.to_vec()), (render(value), expire_at_ms));
        if old.is_some() {
            self.duplicates.push((db, key.to_vec()));
        }
        self.seen += 1;
        if self.pause_every > 0 && self.seen.is_multiple_of(self.pause_every) {
            std::thread::sleep(Duration::from_micros(300));
        }
        Ok(())
    }
}

/// A value as text: its type and content (members sorted where the type has
/// no order; a lock's holders without their tokens and leases, which follow
/// each server's own clock).
fn render(value: &Value) -> String {
    match value {
        Value::Str(s) => format!("string {:?}", s.as_slice()),
        Value::List(l) => format!("list {:?}", l.iter().collect::<Vec<_>>()),
        Value::Hash(h) => {
            let mut pairs: Vec<_> = h.iter().collect();
            pairs.sort();
            format!("hash {pairs:?}")
        }
        Value::Set(s) => {
            let mut members: Vec<Vec<u8>> =
                s.iter().map(|m| m.with_bytes(<[u8]>::to_vec)).collect();
            members.sort();
            format!("set {members:?}")
        }
        Value::ZSet(z) => format!("zset {:?}", z.iter().collect::<Vec<_>>()),
        Value::Stream(s) => {
            use latchkey::types::stream::StreamId;
            let entries: Vec<_> = s
                .range(StreamId::MIN, StreamId::MAX, false, None)
                .into_iter()
                .map(|(id, f)| (id, f.iter().map(<[u8]>::to_vec).collect::<Vec<_>>()))
                .collect();
            // Groups without their times, which follow each server's clock.
            let groups: Vec<_> = s
                .groups
                .iter()
                .map(|(name, g)| {
                    let pel: Vec<_> = g
                        .pel
                        .iter()
                        .map(|(id, p)| (id, p.consumer.clone(), p.count))
                        .collect();
                    let consumers: Vec<_> = g.consumers.iter().map(|(c, v)| (c, &v.pel)).collect();
                    format!(
                        "{name:?} {:?} {:?} {pel:?} {consumers:?}",
                        g.last_id, g.entries_read
                    )
                })
                .collect();
            format!(
                "stream {entries:?} last {:?} deleted {:?} added {} groups {groups:?}",
                s.last_id, s.max_deleted, s.entries_added
            )
        }
        Value::Lock(l) => {
            let info = l.info();
            let mut holders: Vec<_> = info
                .holders
                .iter()
                .map(|h| (h.owner.as_slice().to_vec(), h.shared))
                .collect();
            holders.sort();
            format!(
                "lock {:?} {:?} waiters {}",
                info.mode, holders, info.waiters
            )
        }
    }
}

fn start() -> ServerHandle {
    Server::builder()
        .paused_time()
        .start_blocking()
        .expect("server starts")
}

fn connect(server: &ServerHandle) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

fn run(con: &mut redis::Connection, words: &[String]) -> redis::Value {
    let mut c = redis::cmd(&words[0]);
    for w in &words[1..] {
        c.arg(w);
    }
    c.query::<redis::Value>(con)
        .unwrap_or_else(|e| redis::Value::SimpleString(e.to_string()))
}

fn words(s: &str) -> Vec<String> {
    s.split(' ').map(str::to_owned).collect()
}

fn snapshot(server: &ServerHandle, sink: &mut MemorySink, slice: usize) {
    let shared = server.shared();
    Snapshot::begin(&shared.keyspace, &shared.gate, &shared.clock)
        .expect("no other snapshot")
        .with_slice(slice)
        .write_to(sink)
        .unwrap();
}

/// Far in the future on any clock: 2100-01-01.
const FAR: u64 = 4_102_444_800_000;
const DBS: usize = 4;
const KEYS: usize = 1500;

/// Thousands of keys of every type across four databases, some with a TTL.
fn populate() -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for db in 0..DBS {
        out.push(words(&format!("SELECT {db}")));
        for i in 0..KEYS {
            out.push(words(&match i % 7 {
                0 => format!("SET s{i} v{i}"),
                1 => format!("RPUSH l{i} a b c{i}"),
                2 => format!("HSET h{i} f v{i} g w"),
                3 => format!("SADD t{i} a {i} b"),
                4 => format!("ZADD z{i} 1 a 2.5 b{i}"),
                5 => format!("XADD x{i} 1-1 f v{i}"),
                _ => format!("LOCK.ACQUIRE L{i} owner{i} 100000000"),
            }));
            let key = out.last().unwrap()[1].clone();
            if i % 7 == 5 && i % 3 == 0 {
                // Some streams with a group, a pending entry and a consumer.
                out.push(words(&format!("XADD {key} 2-0 f w g x")));
                out.push(words(&format!("XGROUP CREATE {key} grp 0")));
                out.push(words(&format!(
                    "XREADGROUP GROUP grp c{i} COUNT 1 STREAMS {key} >"
                )));
            }
            if i % 5 == 0 {
                out.push(vec!["PEXPIREAT".into(), key, (FAR + i as u64).to_string()]);
            }
        }
    }
    out
}

/// The `n`th write of the concurrent writer (deterministic): its database
/// and command.
fn op(n: u64) -> (usize, Vec<String>) {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    let r = |m: u64, salt: u64| ((x >> (salt * 7)) % m) as usize;
    let db = r(DBS as u64, 1);
    let i = r(KEYS as u64 + 300, 2); // some beyond the populated range: new keys
    let j = r(KEYS as u64 + 300, 3);
    let prefix = ["s", "l", "h", "t", "z", "x", "L"][i % 7];
    let cmd = match r(14, 4) {
        0 => format!("SET s{i} n{n}"),
        1 => format!("DEL {prefix}{i}"),
        2 => format!("RPUSH l{i} e{n}"),
        3 => format!("HSET h{i} f n{n}"),
        4 => format!("SADD t{i} m{n}"),
        5 => format!("ZADD z{i} {n} m{n}"),
        6 => format!("XADD x{i} {}-0 f n{n}", 1000 + n),
        7 => format!(
            "PEXPIREAT {prefix}{i} {}",
            if n.is_multiple_of(3) { 1000 } else { FAR + n }
        ),
        8 => format!("RENAME {prefix}{i} {prefix}{j}"),
        9 => format!("MOVE {prefix}{i} {}", (db + 1) % DBS),
        10 if n.is_multiple_of(40) => "FLUSHDB".to_owned(),
        10 => format!("LOCK.ACQUIRE L{i} w{n} 100000000"),
        11 => format!("LOCK.RELEASE L{i} owner{i}"),
        // Past 22 bytes a string is shared by reference count, and APPEND
        // edits it in place when nothing else holds it: one the walk copied
        // out must keep its instant's bytes.
        12 => format!("APPEND s{i} {n:->30}"),
        _ => format!("PERSIST {prefix}{i}"),
    };
    (db, words(&cmd))
}

/// Runs write `n` and records it as the last applied in database 15, in one
/// transaction: a snapshot's `__seq` says exactly which writes it includes.
fn apply(con: &mut redis::Connection, n: u64) {
    let (db, cmd) = op(n);
    let mut pipe = redis::pipe();
    pipe.atomic().cmd("SELECT").arg(db);
    let mut c = redis::cmd(&cmd[0]);
    for w in &cmd[1..] {
        c.arg(w);
    }
    pipe.add_command(c)
        .cmd("SELECT")
        .arg(15)
        .cmd("SET")
        .arg("__seq")
        .arg(n);
    let _ = pipe.query::<redis::Value>(con);
}

#[test]
fn snapshot_equals_the_keyspace_at_its_instant_under_concurrent_writes() {
    let server = start();
    let setup = populate();
    let mut con = connect(&server);
    for w in &setup {
        run(&mut con, w);
    }
    run(&mut con, &words("SELECT 15"));
    run(&mut con, &words("SET __seq 0"));

    const OPS: u64 = 6000;
    let done = Arc::new(AtomicU64::new(0));
    let writer = {
        let done = done.clone();
        std::thread::spawn(move || {
            for n in 1..=OPS {
                apply(&mut con, n);
                done.store(n, Ordering::Release);
            }
        })
    };
    while done.load(Ordering::Acquire) < 200 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut sink = MemorySink {
        pause_every: 32,
        ..MemorySink::default()
    };
    let before = done.load(Ordering::Acquire);
    snapshot(&server, &mut sink, 16);
    let after = done.load(Ordering::Acquire);
    writer.join().unwrap();
    assert!(
        after > before + 100,
        "the writer ran during the walk ({before} → {after})"
    );
    assert!(sink.duplicates.is_empty(), "{:?}", &sink.duplicates[..]);
    let seq = match sink.keys.get(&(15, b"__seq".to_vec())) {
        Some((text, None)) => text.clone(),
        other => panic!("__seq: {other:?}"),
    };
    let n = (0..=OPS)
        .find(|n| format!("string {:?}", n.to_string().as_bytes()) == seq)
        .expect("__seq is a write number");

    // The keyspace at the instant: the same writes up to __seq, on a fresh
    // server, snapshotted at rest.
    let replay = start();
    let mut con = connect(&replay);
    for w in &setup {
        run(&mut con, w);
    }
    run(&mut con, &words("SELECT 15"));
    run(&mut con, &words("SET __seq 0"));
    for i in 1..=n {
        apply(&mut con, i);
    }
    let mut expected = MemorySink::default();
    snapshot(&replay, &mut expected, 1000);
    assert!((200..OPS).contains(&n), "instant inside the run: {n}");
    assert_eq!(
        sink.keys.len(),
        expected.keys.len(),
        "key count at write {n}"
    );
    for (key, want) in &expected.keys {
        assert_eq!(sink.keys.get(key), Some(want), "{key:?} at write {n}");
    }
    // The live server has moved on since.
    let mut now = MemorySink::default();
    snapshot(&server, &mut now, 1000);
    assert_ne!(now.keys, sink.keys);
}

#[test]
fn changes_after_the_instant_leave_the_snapshot_alone() {
    let server = start();
    let mut con = connect(&server);
    for w in [
        "SET a 1",
        "SET b 2 PX 100",
        "RPUSH l x y",
        "HSET h f v",
        "SADD s 1 2 3",
        "ZADD z 1 m",
        "XADD x 1-1 f v",
        "SET c 3",
        "SET d 4",
        "SELECT 1",
        "SET e 5",
        "SELECT 0",
    ] {
        run(&mut con, &words(w));
    }
    let token = match run(&mut con, &words("LOCK.ACQUIRE L me 100000")) {
        redis::Value::Int(t) => t as u64,
        other => panic!("{other:?}"),
    };
    let instant = server.now_ms();
    let shared = server.shared();
    let snap = Snapshot::begin(&shared.keyspace, &shared.gate, &shared.clock).unwrap();
    assert_eq!(snap.instant_ms(), instant);
    for w in [
        "RENAME a a2",
        "MOVE c 1",
        "DEL d",
        "SET new 1",
        "RPUSH l z",
        "HSET h f2 v2",
        "SREM s 2",
        "ZADD z 2 m",
        "XADD x 2-1 f v",
        "LOCK.RELEASE L me",
        "LOCK.ACQUIRE L other 100000",
        "SELECT 1",
        "SET e 6",
        "FLUSHALL",
    ] {
        run(&mut con, &words(w));
    }
    // b's TTL runs out after the instant: it stays, with its deadline.
    server.advance_time(Duration::from_millis(200));
    assert_eq!(server.get("b"), None);
    let mut sink = MemorySink::default();
    let stats = snap.write_to(&mut sink).unwrap();
    assert_eq!(stats.live, 0, "every key was changed before the walk");
    let got: BTreeMap<_, _> = sink
        .keys
        .iter()
        .map(|((db, k), (v, ttl))| {
            (
                format!("{db} {}", String::from_utf8_lossy(k)),
                (v.as_str(), *ttl),
            )
        })
        .collect();
    let want: BTreeMap<String, (&str, Option<u64>)> = [
        ("0 a", "string [49]", None),
        ("0 b", "string [50]", Some(instant + 100)),
        ("0 c", "string [51]", None),
        ("0 d", "string [52]", None),
        ("0 l", "list [[120], [121]]", None),
        ("0 h", "hash [([102], [118])]", None),
        ("0 s", "set [[49], [50], [51]]", None),
        ("0 z", "zset [([109], 1.0)]", None),
        (
            "0 x",
            "stream [(StreamId { ms: 1, seq: 1 }, [[102], [118]])] last StreamId { ms: 1, seq: 1 } \
             deleted StreamId { ms: 0, seq: 0 } added 1 groups []",
            None,
        ),
        (
            "0 L",
            "lock Exclusive [([109, 101], false)] waiters 0",
            None,
        ),
        ("1 e", "string [53]", None),
    ]
    .into_iter()
    .map(|(k, v, t)| (k.to_owned(), (v, t)))
    .collect();
    assert_eq!(got, want);
    assert_eq!(sink.fencing, vec![token]);
    assert_eq!(sink.dbs, vec![(0, 10, 1), (1, 1, 0)]);
}

#[test]
fn a_key_moved_below_the_cursor_by_a_removal_is_still_emitted() {
    // A removal moves the table's last slot into the removed one's place:
    // when that carries a key not yet visited behind the walk's cursor, the
    // key must still reach the snapshot.
    let keyspace = Keyspace::new(1, 0);
    let db = keyspace.db(0).unwrap();
    for i in 0..400 {
        let key = format!("k{i}");
        db.lock(key.as_bytes()).insert(
            key.as_bytes(),
            latchkey::keyspace::Entry::persistent(Value::string(b"v")),
            0,
        );
    }
    let mut shard = db.shards()[0].lock();
    let all: Vec<Vec<u8>> = shard.keys(0).map(|(k, _)| k.to_vec()).collect();
    assert!(all.len() >= 4);
    assert!(shard.snapshot_mark());
    let mut emitted = Vec::new();
    let done = shard
        .snapshot_visit(2, |k, _| {
            emitted.push(k.to_vec());
            Ok::<_, ()>(true)
        })
        .unwrap();
    assert!(!done);
    // Remove the first (visited) key: the last, unvisited, moves to slot 0.
    shard.remove(&all[0], 0);
    while !shard
        .snapshot_visit(2, |k, _| {
            emitted.push(k.to_vec());
            Ok::<_, ()>(true)
        })
        .unwrap()
    {}
    emitted.extend(shard.snapshot_finish().map(|(k, _)| k.as_slice().to_vec()));
    emitted.sort();
    let mut want = all.clone();
    want.sort();
    assert_eq!(emitted, want);
}

#[test]
fn an_empty_keyspace_gives_only_the_fencing_mark() {
    let server = start();
    let mut sink = MemorySink::default();
    snapshot(&server, &mut sink, 256);
    assert_eq!(sink.fencing, vec![0]);
    assert!(sink.dbs.is_empty());
    assert!(sink.keys.is_empty());
}

#[test]
fn a_second_snapshot_is_refused_while_one_runs() {
    let server = start();
    server.set("k", "v", None);
    let shared = server.shared();
    let first = Snapshot::begin(&shared.keyspace, &shared.gate, &shared.clock).unwrap();
    let second = Snapshot::begin(&shared.keyspace, &shared.gate, &shared.clock);
    assert_eq!(second.err(), Some(SnapshotError::InProgress));
    assert_eq!(
        SnapshotError::InProgress.to_string(),
        "Background save already in progress"
    );
    // An abandoned snapshot lets go of its shards: writes no longer keep
    // before-images, and the next snapshot sees the new value.
    drop(first);
    server.set("k", "w", None);
    let mut sink = MemorySink::default();
    snapshot(&server, &mut sink, 256);
    assert_eq!(
        sink.keys.get(&(0, b"k".to_vec())).map(|(v, _)| v.as_str()),
        Some("string [119]")
    );
}

/// A snapshot walked into the RDB writer loads back as the same image: every
/// key (streams with their groups), its deadline, and the fencing-token
/// high-water mark.
#[test]
fn a_snapshot_written_as_rdb_loads_back_the_same() {
    let server = start();
    let mut con = connect(&server);
    for w in populate() {
        run(&mut con, &w);
    }
    let mut image = MemorySink::default();
    snapshot(&server, &mut image, 256);
    let shared = server.shared();
    let mut writer = latchkey::rdb::file::Writer::new(Vec::new(), Default::default()).unwrap();
    Snapshot::begin(&shared.keyspace, &shared.gate, &shared.clock)
        .unwrap()
        .write_to(&mut writer)
        .unwrap();
    let bytes = writer.finish().unwrap();
    let mut loaded = Image::new();
    let mut fencing = None;
    let mut db = 0;
    latchkey::rdb::file::load(&bytes, &Default::default(), &mut |item| {
        use latchkey::rdb::file::Loaded;
        match item {
            Loaded::Aux { key, value } if key == latchkey::rdb::lock::AUX_FENCING => {
                fencing = Some(String::from_utf8(value).unwrap().parse::<u64>().unwrap());
            }
            Loaded::Db { index } => db = index as usize,
            Loaded::Entry {
                db: entry_db,
                key,
                value,
                expire_at_ms,
            } => {
                // A lock names its own database; other keys are in the last selected.
                let at = if matches!(value, Value::Lock(_)) {
                    entry_db as usize
                } else {
                    db
                };
                loaded.insert((at, key), (render(&value), expire_at_ms));
            }
            _ => {}
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(image.keys.len(), DBS * KEYS);
    assert!(image.keys.values().any(|(v, _)| v.contains("c1020")));
    assert_eq!(fencing, Some(image.fencing[0]));
    assert!(fencing.unwrap() > 0);
    let differ: Vec<_> = image
        .keys
        .iter()
        .filter(|(k, v)| loaded.get(k) != Some(v))
        .take(3)
        .map(|(k, v)| (k.clone(), v.clone(), loaded.get(k).cloned()))
        .collect();
    assert!(differ.is_empty(), "the loaded image differs: {differ:?}");
    assert_eq!(loaded.len(), image.keys.len());
}

/// SWAPDB while a snapshot runs: each database's image is its content at
/// the instant, whatever the swap moved where.
#[test]
fn a_swapdb_after_the_instant_leaves_each_database_image_alone() {
    let server = start();
    let mut con = connect(&server);
    for w in ["SET a 1", "RPUSH l x", "SELECT 1", "SET e 5", "SELECT 0"] {
        run(&mut con, &words(w));
    }
    let shared = server.shared();
    let snap = Snapshot::begin(&shared.keyspace, &shared.gate, &shared.clock).unwrap();
    assert_eq!(run(&mut con, &words("SWAPDB 0 1")), redis::Value::Okay);
    run(&mut con, &words("SET after 1"));
    let mut sink = MemorySink::default();
    snap.write_to(&mut sink).unwrap();
    let got: Vec<String> = sink
        .keys
        .keys()
        .map(|(db, k)| format!("{db} {}", String::from_utf8_lossy(k)))
        .collect();
    assert_eq!(got, ["0 a", "0 l", "1 e"]);
    assert!(sink.duplicates.is_empty());
    // And the swap itself happened.
    assert_eq!(
        run(&mut con, &words("GET e")),
        redis::Value::BulkString(b"5".to_vec())
    );
}

/// Notes, for each key it is handed, whether its output was held and
/// whether the thread ran as `SCHED_IDLE` then; says it holds `held` bytes.
#[derive(Default)]
struct HoldSink {
    holding: bool,
    holds: usize,
    held: usize,
    /// (key, a string, held, idle)
    seen: Vec<(Vec<u8>, bool, bool, bool)>,
}

impl SnapshotSink for HoldSink {
    fn fencing_high_water(&mut self, _: u64) -> io::Result<()> {
        Ok(())
    }

    fn select_db(&mut self, _: usize, _: u64, _: u64) -> io::Result<()> {
        Ok(())
    }

    fn entry(&mut self, key: &[u8], value: &Value, _: Option<u64>) -> io::Result<()> {
        let string = matches!(value, Value::Str(_));
        let idle = latchkey::background::is_idle();
        self.seen.push((key.to_vec(), string, self.holding, idle));
        Ok(())
    }

    fn hold(&mut self, on: bool) -> io::Result<()> {
        assert_ne!(self.holding, on, "holds nest");
        self.holding = on;
        self.holds += usize::from(on);
        Ok(())
    }

    fn held(&self) -> usize {
        self.held
    }
}

/// What a walk encodes under a shard's lock (values other than strings) goes
/// to the sink's hold, never to the disk, and past `HELD_MAX` held bytes a
/// slice ends; strings are copied out and written after the lock, unheld.
/// On a `SCHED_IDLE` thread (where the process may leave that policy again),
/// the slices run at the normal policy and the rest idle.
#[test]
fn a_walk_holds_its_output_and_its_priority_while_it_holds_a_shard() {
    let server = start();
    let mut con = connect(&server);
    for i in 0..300 {
        run(&mut con, &words(&format!("SET s{i} v")));
        run(&mut con, &words(&format!("HSET h{i} f v")));
    }
    let walk = |held: usize| {
        let shared = server.shared();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // A window longer than the test: a starved walk is not
                    // raised meanwhile.
                    let background = latchkey::background::enter(Duration::from_secs(3600));
                    assert_eq!(background, latchkey::background::can_leave_idle(0));
                    let mut sink = HoldSink {
                        held,
                        ..HoldSink::default()
                    };
                    Snapshot::begin(&shared.keyspace, &shared.gate, &shared.clock)
                        .expect("no other snapshot")
                        .with_slice(1000)
                        .write_to(&mut sink)
                        .unwrap();
                    (sink, background)
                })
                .join()
                .unwrap()
        })
    };
    let (sink, background) = walk(0);
    assert_eq!(sink.seen.len(), 600);
    assert!(!sink.holding);
    for (key, string, held, idle) in &sink.seen {
        let key = String::from_utf8_lossy(key);
        assert_eq!(*held, !string, "{key}");
        if background {
            assert_eq!(*idle, *string, "{key}");
        }
    }
    if !background {
        eprintln!("the priority part is skipped: this process cannot leave SCHED_IDLE");
    }
    // Past HELD_MAX, each slice ends after the key that got there: a shard
    // of n keys takes n slices instead of one.
    let shards_with_keys = server.shared().keyspace.dbs()[0]
        .shards()
        .iter()
        .filter(|shard| shard.lock().keys(0).next().is_some())
        .count();
    let one_per_shard = sink.holds;
    let (sink, _) = walk(latchkey::persist::HELD_MAX);
    assert_eq!(sink.seen.len(), 600);
    assert_eq!(sink.holds, one_per_shard + 600 - shards_with_keys);
}
