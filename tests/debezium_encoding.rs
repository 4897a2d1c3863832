//! `encoding = "debezium"` against real Debezium 3.6.3. The fixtures `tests/debezium/types-*.json`
//! are what Debezium's PostgreSQL connector emitted (captured with
//! tests/debezium/capture_types.py) for a table with every type of the value table in docs/envelope.md
//! (tests/debezium/all_types_postgres.sql): snapshot rows, then the same rows as streamed
//! inserts. cdcd runs the same statements and must emit the same keys and, field by field, the
//! same schemas and values, except where docs/envelope.md lists a difference:
//! - `c_name` streamed: Debezium emits null (its pgoutput decoder drops `name` values);
//! - a multi-dimensional array: Debezium's output is unusable (Java object names); cdcd flattens;
//! - `source`: `version` (cdcd's), `txId` and `sequence` of snapshot rows, and positions.
//!
//! The same for MySQL against `tests/debezium/mysql-types-*.json`: Debezium's MySQL connector on
//! Oracle MySQL 9.7 (tests/debezium/capture_mysql_types.py), table
//! tests/debezium/all_types_mysql.sql.

mod support;

use mysql_async::prelude::*;
use support::debezium::{all_types_sql, compare, compare_with, mysql_all_types_sql, MYSQL, MYSQL_STREAMED, STREAMED};
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

/// cdcd on MySQL 9.7 with `[sink.debezium]` set to `options`: the fixture's three snapshot rows,
/// then the same rows streamed.
async fn run_cdcd_mysql97(options: &str, server_id: u32) -> Vec<Rec> {
    let url = mysql97_url();
    let mut c = mysql_db_at(&url, "dbzm").await;
    c.query_drop(mysql_all_types_sql()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sink = format!("{}encoding = \"debezium\"\n[sink.debezium]\n{options}\n", kafka_sink(&broker.bootstrap));
    let cfg = write_mysql_config_at(dir.path(), "dbzm", &url, r#"["dbzm.all_types"]"#, server_id, &sink, "");
    let daemon = Daemon::start(&cfg);
    let topics = ["dbzm.dbzm.all_types"];
    let snap = read_topics(&broker.bootstrap, &topics, 3, 60);
    assert_eq!(snap.len(), 3, "{}", daemon.logs());
    c.query_drop(MYSQL_STREAMED).await.unwrap();
    let all = read_topics(&broker.bootstrap, &topics, 6, 60);
    assert_eq!(all.len(), 6, "{}", daemon.logs());
    all
}

/// Every MySQL type, snapshot and streamed, against Debezium's MySQL connector on the same
/// server version, in each converter mode.
#[tokio::test(flavor = "multi_thread")]
async fn mysql97_every_type_equals_debeziums_output_in_each_mode() {
    let variants = [
        ("schemas", "schemas_enable = true"),
        ("plain", "schemas_enable = false"),
        ("string_connect", "decimal_handling_mode = \"string\"\ntime_precision_mode = \"connect\""),
        ("double", "schemas_enable = false\ndecimal_handling_mode = \"double\"\nbinary_handling_mode = \"hex\""),
    ];
    for (i, (variant, options)) in variants.into_iter().enumerate() {
        let ours = run_cdcd_mysql97(options, 6201 + i as u32).await;
        compare_with(&MYSQL, variant, &ours);
    }
}
