// MySQL 8 event bodies (without the 19-byte common header), as published in the test fixtures
// of a public Rust CDC project built on mysql_common (found via code search; the index did not
// record the repository's name). Table `test_db4.entity_json` has columns
// (int, int, int, int, json); the partial update sets `$.season` to ["winter", "spring"].
pub const TABLE_MAP_ENTITY_JSON: &[u8] = &[
    233, 0, 0, 0, 0, 0, 1, 0, 8, 116, 101, 115, 116, 95, 100, 98, 52, 0, 11, 101, 110, 116, 105, 116, 121, 95, 106, 115,
    111, 110, 0, 5, 3, 3, 3, 3, 245, 1, 4, 16, 1, 1, 240,
];
pub const PARTIAL_UPDATE_ROWS_ENTITY_JSON: &[u8] = &[
    233, 0, 0, 0, 0, 0, 1, 0, 2, 0, 5, 1, 16, 0, 1, 0, 0, 0, 1, 1, 0, 36, 0, 0, 0, 1, 8, 36, 46, 115, 101, 97, 115, 111,
    110, 25, 2, 2, 0, 24, 0, 12, 10, 0, 12, 17, 0, 6, 119, 105, 110, 116, 101, 114, 6, 115, 112, 114, 105, 110, 103, 0, 2,
    0, 0, 0, 1, 1, 0, 36, 0, 0, 0, 1, 8, 36, 46, 115, 101, 97, 115, 111, 110, 25, 2, 2, 0, 24, 0, 12, 10, 0, 12, 17, 0, 6,
    119, 105, 110, 116, 101, 114, 6, 115, 112, 114, 105, 110, 103,
];
pub const TABLE_MAP_ENTITY_INT: &[u8] = &[
    90, 0, 0, 0, 0, 0, 1, 0, 7, 116, 101, 115, 116, 95, 100, 98, 0, 10, 101, 110, 116, 105, 116, 121, 95, 105, 110, 116,
    0, 5, 3, 3, 3, 3, 3, 0, 16, 1, 1, 240,
];
pub const DELETE_ROWS_V2_ENTITY_INT: &[u8] = &[
    111, 0, 0, 0, 0, 0, 1, 0, 2, 0, 5, 255, 224, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
];
