//! The recorded compatibility cases in `redis-tests/`, replayed against latchkey.
//! Each file's expected replies came from a real redis-server (record.py); CI checks
//! they still match one.

mod compat;

macro_rules! case_files {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                compat::replay(stringify!($name)).await;
            }
        )*

        #[test]
        fn every_case_file_has_a_test() {
            // command_info.txt lists every Redis command, most of which latchkey
            // lacks: tests/command_info.rs compares it with the table instead.
            let known = [$(stringify!($name),)* "command_info"];
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("redis-tests");
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "txt") {
                    let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
                    assert!(known.contains(&stem.as_str()), "redis-tests/{stem}.txt has no test in tests/redis_compat.rs");
                }
            }
        }
    };
}

case_files!(
    written_replies,
    connection,
    strings,
    keys,
    dump_restore,
    dump_streams,
    transactions,
    server,
    replication,
    persistence,
    scripting,
    lists,
    lists_more,
    extremes,
    edges,
    config,
    sandbox,
    chunks,
    nesting,
    cjson,
    command,
    object,
    zsets,
    zset_ranges,
    zset_ops,
    zset_blocking,
    geo,
    geo_scores,
    sets,
    hashes,
    hyperloglog,
    sort,
    copy_move,
    bitmaps,
    lcs,
    streams,
    streams_groups,
    notify_config,
    tracking,
);
