//! `cdcd-mock-broker`: a Kafka-protocol broker for demos and tests, hosted on librdkafka's mock
//! cluster. It speaks the real wire protocol (idempotent producers, fetch, consumer groups) over
//! TCP, so cdcd and independent clients reach it like any broker. Not for production data: it
//! keeps everything in memory.
//!
//! Prints `bootstrap=<host:port,...>` on its first line (and to `--bootstrap-file`). Reads
//! commands on stdin, one per line, to simulate outages: `down`, `up` (all brokers), `quit`.

use std::io::{BufRead, Write};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

fn main() {
    let mut brokers = 1;
    let mut bootstrap_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--brokers" => brokers = args.next().and_then(|v| v.parse().ok()).unwrap_or(1),
            "--bootstrap-file" => bootstrap_file = args.next(),
            "--help" | "-h" => {
                println!(
                    "usage: cdcd-mock-broker [--brokers N] [--bootstrap-file PATH]\nstdin commands: down | up | quit"
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

/// When started in the background with no stdin (`< /dev/null`), EOF arrives at once; keep the
/// broker up until the process is killed rather than exiting.
fn line_was_eof_without_quit() -> bool {
    std::env::var_os("CDCD_MOCK_BROKER_EXIT_ON_EOF").is_none()
}
