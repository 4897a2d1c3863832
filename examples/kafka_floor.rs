//! Benchmark floor (used by bench/mysql_backlog.sh): librdkafka producing N pre-built envelopes
//! with cdcd's producer settings (idempotent, acks=all, lz4, linger 5 ms), waiting for every
//! delivery. Prints the seconds taken. Usage: kafka_floor BOOTSTRAP TOPIC N
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

struct Count(Arc<AtomicU64>);
impl ClientContext for Count {}
impl ProducerContext for Count {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if r.is_ok() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (bootstrap, topic, n) = (&args[1], &args[2], args[3].parse::<u64>().expect("N"));
    let done = Arc::new(AtomicU64::new(0));
    let producer: ThreadedProducer<Count> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("queue.buffering.max.kbytes", "16384")
        .set("partitioner", "murmur2_random")
        .create_with_context(Count(done.clone()))
        .expect("producer");
    let value = br#"{"before":null,"after":{"id":123456,"qty":456,"note":"note 123456","at":"2026-11-22T05:00:00.123456","price":"1234.56"},"source":{"version":"0.1.0","connector":"mariadb","name":"bench","db":"bench","table":"bench","ts_ms":1795325593000,"ts_us":1795325593000000,"ts_ns":1795325593000000000,"snapshot":"false","server_id":1,"gtid":"0-1-1234","file":"binlog.000001","pos":123456,"row":7,"thread":null,"query":null,"position":"000000010001E240-1-0000000007"},"op":"c","transaction":null,"ts_ms":1795325593001,"ts_us":1795325593001000,"ts_ns":1795325593001000000}"#;
    let start = Instant::now();
    let mut key = Vec::with_capacity(32);
    for i in 0..n {
        key.clear();
        key.extend_from_slice(format!("{{\"id\":{i}}}").as_bytes());
        let mut rec = BaseRecord::to(topic).key(&key[..]).payload(&value[..]);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    while done.load(Ordering::Relaxed) < n {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = producer.flush(Duration::from_secs(10));
    println!("{:.3}", start.elapsed().as_secs_f64());
}
