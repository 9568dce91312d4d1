//! `cargo +nightly fuzz run resp --features libfuzzer`: client bytes, split
//! at any points, parse to the same commands as a plain reading of Redis's
//! rules, limits included, within bounded buffers (see
//! `latchkey_fuzz::resp`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    latchkey_fuzz::resp::check(data);
});
