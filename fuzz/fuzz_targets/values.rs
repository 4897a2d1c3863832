//! The value renderers of both sources, and MySQL binary JSON: no input may panic, and every document rendered must be valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let docs = cdcd::fuzz::values(data);
    if let Err(e) = cdcd::fuzz::check_json(&docs) {
        panic!("{e}");
    }
});
