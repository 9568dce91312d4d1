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
            // command_info.txt and command_docs.txt list every Redis command,
            // some of which latchkey lacks: tests/command_info.rs compares them
            // with the table instead.
            let known = [$(stringify!($name),)* "command_info", "command_docs"];
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
    flush_watch,
    server,
    slowlog,
    latency,
    module,
    swapdb,
    client_pause,
    function_flags,
    client_unblock,
    debug,
    memory,
    replication,
    persistence,
    scripting,
    scripting_functions,
    script_numbers,
    script_shebang,
    lists,
    lists_more,
    extremes,
    edges,
    config,
    sandbox,
    chunks,
    nesting,
    cjson,
    cjson_config,
    cmsgpack,
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
    streams_autoclaim,
    notify_config,
    tracking,
    security,
    acl,
    acl_perms,
);
