//! TLS to PostgreSQL, against a dedicated PostgreSQL 15 cluster with `ssl=on` whose pg_hba.conf
//! accepts TCP connections only over TLS (`hostssl`), with certificates made by
//! `tests/support/make_certs.sh` (a test CA; the server certificate names localhost and
//! 127.0.0.1, not 127.0.0.2, where the cluster also listens).
//!
//! Shown: snapshot and streaming over `verify-full` (SQL and replication connections both
//! encrypted, says `cdcd check`); a client certificate with an encrypted key instead of a
//! password; a wrong CA, a wrong host name and `sslmode=disable` each fail with an error that
//! says why and what to change. The cluster's Unix socket carries snapshot and stream with no
//! TLS, as libpq does, whatever sslmode says.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::own_server::OwnServer;
use support::*;

const PORT: u16 = 54351;

/// Runs SQL as the superuser over the cluster's Unix socket (local connections need no TLS).
fn psql(server: &OwnServer, db: &str, sql: &str) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--", "psql", "-v", "ON_ERROR_STOP=1", "-qX"])
        .arg("-h")
        .arg(server.dir())
        .args(["-p", &server.port.to_string(), "-d", db, "-c", sql])
        .output()
        .expect("run psql");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
}

fn check(dir: &Path, name: &str, url: &str) -> (i32, String) {
    let cfg = write_config(dir, name, url, r#"["public.t"]"#, "[sink]\ntype = \"stdout\"\n", "");
    let (code, out, err) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
    (code, format!("{out}{err}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_over_tls_verify_full_and_the_errors_that_say_why() {
    let scratch = tempfile::tempdir().unwrap();
    let certs = scratch.path().join("certs");
    make_certs(&certs, &["cdcd_cert"]);
    let server = OwnServer::start_with("pg", PORT, &[("PG_TLS_DIR", certs.to_str().unwrap())]);
    psql(&server, "postgres", "CREATE DATABASE tls_e2e OWNER cdcd");
    psql(
        &server,
        "tls_e2e",
        "CREATE TABLE t (id int PRIMARY KEY, v text); ALTER TABLE t OWNER TO cdcd;
         INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');
         GRANT CREATE ON DATABASE tls_e2e TO cdcd_cert; GRANT SELECT ON t TO cdcd_cert;",
    );
    let ca = certs.join("ca.pem");
    let ca = ca.display();
    let base = format!("postgres://cdcd:cdcd@127.0.0.1:{PORT}/tls_e2e");
    let dir = scratch.path();

    // verify-full: both connections encrypted and verified.
    let url = format!("{base}?sslmode=verify-full&sslrootcert={ca}");
    let (code, out) = check(dir, "full", &url);
    assert_eq!(code, 0, "{out}");
    for conn in ["SQL connection: TLS (TLSv1.3", "replication connection: TLS (TLSv1.3"] {
        assert!(out.contains(conn), "expected `{conn}` in:\n{out}");
    }
    assert!(out.contains("certificate and host name verified"), "{out}");

    // Snapshot and streaming over it.
    let broker = Broker::start();
    let cfg = write_config(dir, "tls", &url, r#"["public.t"]"#, &kafka_sink(&broker.bootstrap), "");
    let daemon = Daemon::start(&cfg);
    let snap = read_topics(&broker.bootstrap, &["tls.public.t"], 3, 60);
    assert_eq!(snap.len(), 3, "snapshot over TLS\n{}", daemon.logs());
    psql(&server, "tls_e2e", "INSERT INTO t VALUES (4, 'd'); UPDATE t SET v = 'A' WHERE id = 1;");
    let all = read_topics(&broker.bootstrap, &["tls.public.t"], 5, 60);
    let ops: Vec<_> = all.iter().filter_map(|r| r.op()).collect();
    assert_eq!(ops.iter().filter(|o| **o == "r").count(), 3, "{ops:?}");
    assert!(ops.contains(&"c") && ops.contains(&"u"), "stream over TLS: {ops:?}\n{}", daemon.logs());
    assert_eq!(daemon.stop(), Some(0));

    // The server's Unix socket (pg_hba.conf: `local ... trust`): as with libpq, no TLS there,
    // whatever sslmode says, and `cdcd check` does not call it a plaintext connection.
    let socket_url = format!(
        "postgres://cdcd@/tls_e2e?host={}&port={PORT}&sslmode=verify-full&sslrootcert={ca}",
        server.dir().display()
    );
    let (code, out) = check(dir, "socket", &socket_url);
    assert_eq!(code, 0, "{out}");
    for conn in ["SQL connection: Unix socket", "replication connection: Unix socket"] {
        assert!(out.contains(conn), "expected `{conn}` in:\n{out}");
    }
    let cfg = write_config(dir, "socket", &socket_url, r#"["public.t"]"#, &kafka_sink(&broker.bootstrap), "");
    let daemon = Daemon::start(&cfg);
    let snap = read_topics(&broker.bootstrap, &["socket.public.t"], 4, 60);
    assert_eq!(snap.len(), 4, "snapshot over the Unix socket\n{}", daemon.logs());
    psql(&server, "tls_e2e", "DELETE FROM t WHERE id = 4");
    let all = read_topics(&broker.bootstrap, &["socket.public.t"], 6, 60);
    assert!(all.iter().any(|r| r.op() == Some("d")), "stream over the Unix socket\n{}", daemon.logs());
    assert_eq!(daemon.stop(), Some(0));

    // A client certificate (encrypted key, its passphrase in sslpassword) instead of a password.
    let cert_url = format!(
        "host=127.0.0.1 port={PORT} user=cdcd_cert dbname=tls_e2e sslmode=verify-full sslrootcert={ca} sslcert={} sslkey={} sslpassword=keypass",
        certs.join("client-cdcd_cert.pem").display(),
        certs.join("client-cdcd_cert.enc.key").display()
    );
    let (_, out) = check(dir, "client_cert", &cert_url);
    assert!(out.contains("replication connection accepted"), "client certificate login:\n{out}");
    assert!(out.contains("replication connection: TLS ("), "{out}");

    // A CA that did not sign the server's certificate.
    let other = certs.join("other-ca.pem");
    let (code, out) = check(dir, "wrong_ca", &format!("{base}?sslmode=verify-full&sslrootcert={}", other.display()));
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("certificate verify failed") && out.contains("sslrootcert"), "wrong CA:\n{out}");

    // A host name the certificate does not carry: verify-full refuses, verify-ca accepts.
    let other_host = format!("postgres://cdcd:cdcd@127.0.0.2:{PORT}/tls_e2e");
    let (code, out) = check(dir, "wrong_host", &format!("{other_host}?sslmode=verify-full&sslrootcert={ca}"));
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("address mismatch") && out.contains("verify-ca"), "wrong host:\n{out}");
    let (code, out) = check(dir, "verify_ca", &format!("{other_host}?sslmode=verify-ca&sslrootcert={ca}"));
    assert_eq!(code, 0, "verify-ca does not check the host name:\n{out}");
    assert!(out.contains("certificate verified, host name not checked"), "{out}");

    // Plaintext refused by the server (hostssl only), and the error says what to set.
    let (code, out) = check(dir, "plain", &format!("{base}?sslmode=disable"));
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("only over TLS") && out.contains("sslmode=require"), "sslmode=disable:\n{out}");
    let run = write_config(
        dir,
        "plain_run",
        &format!("{base}?sslmode=disable"),
        r#"["public.t"]"#,
        "[sink]\ntype = \"stdout\"\n",
        "",
    );
    let started = std::time::Instant::now();
    let (code, _, err) = cdcd(&["run", "--config", run.to_str().unwrap()]);
    assert!(code > 0, "run with sslmode=disable must stop, got {code}\n{err}");
    assert!(err.contains("only over TLS"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "a definite TLS refusal must not be retried for long");
}
