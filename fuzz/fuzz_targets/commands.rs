//! `cargo +nightly fuzz run commands --features libfuzzer`: argument
//! vectors, mostly rows of the command table with extreme arguments, run
//! through the dispatcher; every reply one well-formed frame, no panic, no
//! huge allocation (see `latchkey_fuzz::commands`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    latchkey_fuzz::commands::check(data);
});
