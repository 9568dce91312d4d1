//! `cargo +nightly fuzz run rdb --features libfuzzer`: RESTORE payloads
//! and RDB files load or fail cleanly, without a huge allocation, and what
//! loads DUMPs and loads back the same (see `latchkey_fuzz::rdb`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    latchkey_fuzz::rdb::check(data);
});
