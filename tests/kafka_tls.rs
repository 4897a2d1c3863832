//! Kafka over TLS: tansu behind `stunnel4`, so the broker is reachable only over TLS, with a
//! server certificate from a CA made in the test. Shown: `cdcd check` reports the build's
//! librdkafka features (ssl, sasl_scram, sasl_oauthbearer) and the connection as TLS, the
//! daemon delivers a snapshot and stream over `security.protocol=SSL`, read back over TLS by the
//! independent Python client; a wrong CA and a plaintext client each fail with an error naming
//! the setting to change.
//!
//! SASL is not exercised against a broker here: tansu enforces SCRAM (`--authentication`) but
//! its in-memory store cannot be given a user (creating one needs an authenticated
//! connection), and librdkafka's mock cluster does not implement SASL. The build's SCRAM and
//! OAUTHBEARER support is shown through `builtin.features` instead.

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn kafka_over_tls_through_stunnel_and_the_errors_that_say_why() {
    let scratch = tempfile::tempdir().unwrap();
    let certs = scratch.path().join("certs");
    make_certs(&certs, &[]);
    let broker = Tansu::start_tls(&certs);
    let ca = certs.join("ca.pem").display().to_string();
    let db = TestDb::create("kafka_tls").await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b');")
        .await
        .unwrap();
    let dir = scratch.path();
    let sink = |props: &str| format!("{}[sink.properties]\n{props}\n", kafka_sink(&broker.bootstrap));
    let tls = format!("\"security.protocol\" = \"SSL\"\n\"ssl.ca.location\" = \"{ca}\"");

    let cfg = write_config(dir, "ktls", &db.url, r#"["public.t"]"#, &sink(&tls), "");
    let (code, out, err) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    for want in ["ssl", "sasl_scram", "sasl_oauthbearer", "security.protocol=SSL (TLS)", "reachable"] {
        assert!(out.contains(want), "expected `{want}` in:\n{out}");
    }

    let daemon = Daemon::start(&cfg);
    let settings = [("security.protocol", "SSL"), ("ssl.ca.location", ca.as_str())];
    let snap = read_topics_with(&broker.bootstrap, &settings, &["ktls.public.t"], 2, 60);
    assert_eq!(snap.len(), 2, "snapshot over TLS\n{}", daemon.logs());
    c.batch_execute("INSERT INTO t VALUES (3, 'c')").await.unwrap();
    let all = read_topics_with(&broker.bootstrap, &settings, &["ktls.public.t"], 3, 60);
    assert!(all.iter().any(|r| r.op() == Some("c")), "stream over TLS: {all:?}\n{}", daemon.logs());
    assert_eq!(daemon.stop(), Some(0));

    // A CA that did not sign the broker's certificate.
    let other = certs.join("other-ca.pem").display().to_string();
    let wrong = write_config(
        dir,
        "ktls_wrong_ca",
        &db.url,
        r#"["public.t"]"#,
        &sink(&format!("\"security.protocol\" = \"SSL\"\n\"ssl.ca.location\" = \"{other}\"")),
        "",
    );
    let (code, out, err) = cdcd(&["check", "--config", wrong.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(out.contains("certificate verify failed") && out.contains("ssl.ca.location"), "wrong CA:\n{out}");

    // A plaintext client against the TLS listener.
    let plain = write_config(dir, "ktls_plain", &db.url, r#"["public.t"]"#, &kafka_sink(&broker.bootstrap), "");
    let (code, out, err) = cdcd(&["check", "--config", plain.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(out.contains("security.protocol"), "plaintext to a TLS listener:\n{out}");
}
