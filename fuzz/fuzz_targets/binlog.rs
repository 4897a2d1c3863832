//! The binlog event parser (mysql_common, MariaDB's own events, table maps, rows) and the row renderer: no input may panic, and every document rendered must be valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let docs = cdcd::fuzz::binlog(data);
    if let Err(e) = cdcd::fuzz::check_json(&docs) {
        panic!("{e}");
    }
});
