//! `encoding = "debezium"` against real Debezium 3.6.3. The fixtures `tests/debezium/types-*.json`
//! are what Debezium's PostgreSQL connector emitted (captured with
//! tests/debezium/capture_types.py) for a table with every type of the README's value table
//! (tests/debezium/all_types_postgres.sql): snapshot rows, then the same rows as streamed
//! inserts. cdcd runs the same statements and must emit the same keys and, field by field, the
//! same schemas and values, except where the README lists a difference:
//! - `c_name` streamed: Debezium emits null (its pgoutput decoder drops `name` values);
//! - a multi-dimensional array: Debezium's output is unusable (Java object names); cdcd flattens;
//! - `source`: `version` (cdcd's), `txId` and `sequence` of snapshot rows, and positions.

mod support;

use support::debezium::{all_types_sql, compare, STREAMED};
use support::*;

/// Runs the statements through cdcd with `[sink.debezium]` set to `options` and returns its
/// events keyed like the fixture's.
async fn run_cdcd(options: &str, expected: usize) -> Vec<Rec> {
    let db = TestDb::create("dbzt").await;
    let c = db.client().await;
    c.batch_execute(&all_types_sql()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sink = format!("{}encoding = \"debezium\"\n[sink.debezium]\n{options}\n", kafka_sink(&broker.bootstrap));
    let cfg = write_config(dir.path(), "dbzt", &db.url, r#"["public.all_types", "public.pairs"]"#, &sink, "");
    let daemon = Daemon::start(&cfg);
    let topics = ["dbzt.public.all_types", "dbzt.public.pairs"];
    let snap = read_topics(&broker.bootstrap, &topics, 5, 60);
    assert_eq!(snap.len(), 5, "{}", daemon.logs());
    c.batch_execute(STREAMED).await.unwrap();
    let all = read_topics(&broker.bootstrap, &topics, expected, 60);
    assert_eq!(all.len(), expected, "{}", daemon.logs());
    all
}

/// One test, the variants in turn: each needs the database named as in the fixtures.
#[tokio::test(flavor = "multi_thread")]
async fn every_type_equals_debeziums_output_in_each_mode() {
    let variants = [
        ("schemas", "schemas_enable = true"),
        ("plain", "schemas_enable = false"),
        ("string_connect", "decimal_handling_mode = \"string\"\ntime_precision_mode = \"connect\""),
        ("double", "schemas_enable = false\ndecimal_handling_mode = \"double\"\nbinary_handling_mode = \"hex\""),
    ];
    for (variant, options) in variants {
        let ours = run_cdcd(options, 9).await;
        compare(variant, &ours);
    }
}
