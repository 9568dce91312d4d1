//! `cargo +nightly fuzz run acl_rules --features libfuzzer`: ACL SETUSER rules
//! (see `latchkey_fuzz::acl::RulesInput`) never panic, and a user's
//! description parses back to a user that describes itself the same and
//! allows exactly the same commands, keys and channels.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: latchkey_fuzz::acl::RulesInput| {
    latchkey_fuzz::acl::check_rules(&input);
});
