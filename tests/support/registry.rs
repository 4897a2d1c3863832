//! A real Confluent-compatible Schema Registry for the Avro tests: Karapace 6.2.0 (Aiven,
//! Apache-2.0), started by `scripts/schema-registry/start.sh` (which finds Karapace's source
//! beside this repository, or fetches it; see the script), run against the test's tansu broker.
//! Its virtualenv is built once per machine (`CDCD_TEST_STATE`/sr-venv) and reused.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::{run_reader, Rec};

pub struct SchemaRegistry {
    pub url: String,
    state: tempfile::TempDir,
    script_dir: PathBuf,
}

fn script_dir() -> PathBuf {
    let dir = std::env::var_os("CDCD_SCHEMA_REGISTRY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join("schema-registry"));
    assert!(
        dir.join("start.sh").exists(),
        "no Schema Registry start script at {} (CDCD_SCHEMA_REGISTRY_DIR must name a directory holding Karapace's start.sh)",
        dir.display()
    );
    dir
}

impl SchemaRegistry {
    /// Starts Karapace on a free port, storing its schemas in `bootstrap`'s `_schemas` topic.
    pub fn start(bootstrap: &str) -> SchemaRegistry {
        SchemaRegistry::start_on(bootstrap, super::http::free_port())
    }

    /// [`SchemaRegistry::start`] on `port`.
    pub fn start_on(bootstrap: &str, port: u16) -> SchemaRegistry {
        // Tests run in parallel and the first start builds the shared virtualenv.
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let script_dir = script_dir();
        let state = tempfile::tempdir().expect("registry state dir");
        let venv =
            PathBuf::from(std::env::var("CDCD_TEST_STATE").unwrap_or_else(|_| "/tmp/cdcd-test".into())).join("sr-venv");
        let out = Command::new("bash")
            .arg(script_dir.join("start.sh"))
            .args([bootstrap, &port.to_string()])
            .arg(state.path())
            .env("SR_VENV", &venv)
            .env("SR_READY_TIMEOUT", "120")
            .output()
            .expect("run the Schema Registry start script");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let url = stdout.lines().find_map(|l| l.strip_prefix("schema-registry=")).map(str::to_string);
        match (out.status.success(), url) {
            (true, Some(url)) => SchemaRegistry { url, state, script_dir },
            _ => panic!(
                "the Schema Registry did not start: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(state.path().join("karapace.log")).unwrap_or_default()
            ),
        }
    }

    /// GET `path` on the registry's REST API: (status, JSON body).
    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None)
    }

    pub fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call("PUT", path, Some(body))
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let code = "import json, sys, urllib.request, urllib.error\n\
                    req = urllib.request.Request(sys.argv[1], method=sys.argv[2], data=sys.argv[3].encode() or None,\n\
                        headers={'Content-Type': 'application/vnd.schemaregistry.v1+json'})\n\
                    try:\n    r = urllib.request.urlopen(req, timeout=30); print(r.status); print(r.read().decode())\n\
                    except urllib.error.HTTPError as e:\n    print(e.code); print(e.read().decode())\n";
        let body = body.map(Value::to_string).unwrap_or_default();
        let out = Command::new("python3")
            .args(["-c", code, &format!("{}{path}", self.url), method, &body])
            .output()
            .expect("python3");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.splitn(2, '\n');
        let status = lines.next().and_then(|s| s.trim().parse().ok()).unwrap_or_else(|| {
            panic!("registry call {method} {path} failed: {}", String::from_utf8_lossy(&out.stderr))
        });
        (status, serde_json::from_str(lines.next().unwrap_or("null").trim()).unwrap_or(Value::Null))
    }

    /// Reads `topics` from the beginning, decoding Avro keys and values through this registry
    /// with confluent-kafka's AvroDeserializer, until `min` records arrived and then nothing new.
    pub fn read_topics(&self, bootstrap: &str, topics: &[&str], min: usize, timeout_secs: u64) -> Vec<Rec> {
        run_reader(bootstrap, topics, &["--min", &min.to_string(), "--registry", &self.url], timeout_secs)
    }
}

impl Drop for SchemaRegistry {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(self.script_dir.join("stop.sh")).arg(self.state.path()).output();
    }
}
