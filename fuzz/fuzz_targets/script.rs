//! `cargo +nightly fuzz run script --features libfuzzer`: scripts returning
//! generated values (see `latchkey_fuzz::Input`) must always get exactly one
//! well-formed reply, in RESP2 and RESP3, without a panic or an abort.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: latchkey_fuzz::Input| {
    latchkey_fuzz::check(&input);
});
