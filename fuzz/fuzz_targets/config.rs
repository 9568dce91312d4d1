//! `cargo +nightly fuzz run config --features libfuzzer`: config files,
//! option setters and CONFIG SET; whatever CONFIG GET shows after a
//! successful SET is accepted again (see `latchkey_fuzz::config`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    latchkey_fuzz::config::check(data);
});
