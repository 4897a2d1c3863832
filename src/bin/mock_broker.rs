//! `cdcd-mock-broker`: a Kafka-protocol broker for demos and tests, hosted on librdkafka's mock
//! cluster. It speaks the real wire protocol (idempotent producers, fetch, consumer groups) over
//! TCP, so cdcd and independent clients reach it like any broker. Not for production data: it
//! keeps everything in memory.
//!
//! Prints `bootstrap=<host:port,...>` on its first line (and to `--bootstrap-file`). Reads
//! commands on stdin, one per line, to simulate outages: `down`, `up` (all brokers), `quit`.
//!
//! The mock cluster keeps only about 5 MB per partition and drops the oldest batches beyond
//! that, and auto-created topics get 4 partitions. A test that writes more than ~20 MB to one
//! topic pre-creates it with more partitions (`--topic NAME:PARTITIONS`).

use std::io::{BufRead, Write};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

fn main() {
    let mut brokers = 1;
    let mut bootstrap_file = None;
    let mut topics: Vec<(String, i32)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--brokers" => brokers = args.next().and_then(|v| v.parse().ok()).unwrap_or(1),
            "--bootstrap-file" => bootstrap_file = args.next(),
            "--topic" => match args.next().as_deref().and_then(parse_topic) {
                Some(t) => topics.push(t),
                None => {
                    eprintln!("cdcd-mock-broker: --topic takes NAME:PARTITIONS (e.g. orders:16)");
                    std::process::exit(2);
                }
            },
            "--help" | "-h" => {
                println!(
                    "usage: cdcd-mock-broker [--brokers N] [--bootstrap-file PATH] [--topic NAME:PARTITIONS]...\n\
                     stdin commands: down | up | quit\n\
                     Keeps ~5 MB per partition (older batches are dropped); auto-created topics get 4 partitions."
                );
                return;
            }
            other => {
                eprintln!("cdcd-mock-broker: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let cluster: MockCluster<'static, DefaultProducerContext> = match MockCluster::new(brokers) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cdcd-mock-broker: cannot start mock cluster: {e}");
            std::process::exit(1);
        }
    };
    for (name, partitions) in &topics {
        if let Err(e) = cluster.create_topic(name, *partitions, brokers.min(3)) {
            eprintln!("cdcd-mock-broker: cannot create topic {name}: {e}");
            std::process::exit(1);
        }
    }
    let bootstrap = cluster.bootstrap_servers();
    if let Some(path) = bootstrap_file {
        if let Err(e) = std::fs::write(&path, &bootstrap) {
            eprintln!("cdcd-mock-broker: cannot write {path}: {e}");
            std::process::exit(1);
        }
    }
    println!("bootstrap={bootstrap}");
    let _ = std::io::stdout().flush();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let result = match line.trim() {
            "down" => (1..=brokers).try_for_each(|b| cluster.broker_down(b)),
            "up" => (1..=brokers).try_for_each(|b| cluster.broker_up(b)),
            "quit" => break,
            "" => Ok(()),
            other => {
                eprintln!("cdcd-mock-broker: unknown command {other}");
                Ok(())
            }
        };
        match result {
            Ok(()) => println!("ok {}", line.trim()),
            Err(e) => println!("error {e}"),
        }
        let _ = std::io::stdout().flush();
    }
    // stdin closed (or quit): keep serving until killed when stdin was never attached.
    if line_was_eof_without_quit() {
        loop {
            std::thread::park();
        }
    }
}

/// `NAME:PARTITIONS` with at least one partition.
fn parse_topic(arg: &str) -> Option<(String, i32)> {
    let (name, n) = arg.rsplit_once(':')?;
    let n: i32 = n.parse().ok().filter(|n| *n > 0)?;
    (!name.is_empty()).then(|| (name.to_string(), n))
}

/// When started in the background with no stdin (`< /dev/null`), EOF arrives at once; keep the
/// broker up until the process is killed rather than exiting.
fn line_was_eof_without_quit() -> bool {
    std::env::var_os("CDCD_MOCK_BROKER_EXIT_ON_EOF").is_none()
}
