//! Reading cdcd's HTTP listener from tests: metrics through the independent Prometheus text
//! parser of PyPI `prometheus-client` (`scrape.py`), and plain GETs (`cdcd::http::probe`).

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

/// Metric samples by (name, labels).
pub type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// (name, labels) -> value, parsed by prometheus_client.
pub fn scrape(addr: &str) -> Samples {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/scrape.py");
    let out = Command::new("python3").arg(script).arg(format!("http://{addr}/metrics")).output().unwrap();
    assert!(out.status.success(), "scrape: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let labels = v["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            ((v["name"].as_str().unwrap().to_string(), labels), v["value"].as_f64().unwrap())
        })
        .collect()
}

pub fn value(m: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    m.iter()
        .find(|((n, l), _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, v)| *v)
}

/// (status code, body) of GET `path`, through the same client `cdcd health` uses.
pub fn get(addr: &str, path: &str) -> (u16, String) {
    cdcd::http::probe(addr.parse().expect("listener address"), path).expect("GET from cdcd's listener")
}
