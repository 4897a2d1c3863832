//! TLS to MariaDB and MySQL, against a dedicated MariaDB 10.11 or Oracle MySQL 9.7 instance with
//! `ssl-ca` / `ssl-cert` / `ssl-key` set (certificates from `tests/support/make_certs.sh`) and a
//! user created with `REQUIRE SSL` (on MySQL a `caching_sha2_password` user, logging in over TLS). Shown: snapshot and binlog streaming over `ssl-mode=VERIFY_IDENTITY`, the
//! connection reported as TLS by `cdcd check`, a client certificate (`REQUIRE X509` user), and
//! a wrong CA, a wrong host name and `ssl-mode=DISABLED` each failing with an error that says
//! what to change.

mod support;

use std::path::Path;
use std::process::Command;

use support::own_server::OwnServer;
use support::*;

/// Runs SQL as root over the instance's Unix socket (MySQL's is inside its chroot).
fn sql(server: &OwnServer, kind: &str, statements: &str) {
    let mut cmd = if kind == "mysql" {
        let root = std::env::var("CDCD_MYSQL_ROOT").unwrap_or_else(|_| {
            let cache = std::env::var("CDCD_CACHE")
                .unwrap_or_else(|_| format!("{}/.cache/cdcd", std::env::var("HOME").unwrap_or_default()));
            format!("{cache}/mysql-sid")
        });
        let mut c = Command::new("chroot");
        c.args([&root, "mysql", "--no-defaults", &format!("--socket=/run/mysqld/mysql-{}.sock", server.port)]);
        c
    } else {
        let mut c = Command::new("mariadb");
        c.arg(format!("--socket={}", server.dir().join("mysql.sock").display()));
        c
    };
    let out = cmd.args(["-uroot", "-e", statements]).output().expect("run the client");
    assert!(out.status.success(), "{kind} {statements}: {}", String::from_utf8_lossy(&out.stderr));
}

fn check(dir: &Path, name: &str, url: &str) -> (i32, String) {
    let cfg = write_mysql_config_at(dir, name, url, r#"["tls_e2e.t"]"#, 7101, "[sink]\ntype = \"stdout\"\n", "");
    let (code, out, err) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
    (code, format!("{out}{err}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_over_tls_verify_identity_and_the_errors_that_say_why() {
    over_tls("mariadb", 33091).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql97_over_tls_verify_identity_and_the_errors_that_say_why() {
    over_tls("mysql", 23391).await;
}

async fn over_tls(kind: &'static str, port: u16) {
    let scratch = tempfile::tempdir().unwrap();
    let certs = scratch.path().join("certs");
    make_certs(&certs, &["cdcd_x509"]);
    let tls_dir = if kind == "mysql" { "MYSQL_TLS_DIR" } else { "MARIADB_TLS_DIR" };
    let server = OwnServer::start_with(kind, port, &[(tls_dir, certs.to_str().unwrap())]);
    sql(
        &server,
        kind,
        "DROP DATABASE IF EXISTS tls_e2e; CREATE DATABASE tls_e2e; CREATE TABLE tls_e2e.t (id int PRIMARY KEY, v text);
         INSERT INTO tls_e2e.t VALUES (1, 'a'), (2, 'b'), (3, 'c');",
    );
    let ca = certs.join("ca.pem");
    let ca = ca.display();
    let dir = scratch.path();
    let tls_url = format!("mysql://cdcd_tls:cdcd@127.0.0.1:{port}?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}");

    let (code, out) = check(dir, "full", &tls_url);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("connection: TLS (TLSv1.3") && out.contains("certificate and host name verified"), "{out}");

    // Snapshot and binlog streaming over TLS, as a user the server lets in only over TLS.
    let broker = Broker::start();
    let cfg = write_mysql_config_at(dir, "tls", &tls_url, r#"["tls_e2e.t"]"#, 7102, &kafka_sink(&broker.bootstrap), "");
    let daemon = Daemon::start(&cfg);
    let snap = read_topics(&broker.bootstrap, &["tls.tls_e2e.t"], 3, 60);
    assert_eq!(snap.len(), 3, "snapshot over TLS\n{}", daemon.logs());
    sql(&server, kind, "INSERT INTO tls_e2e.t VALUES (4, 'd'); UPDATE tls_e2e.t SET v = 'A' WHERE id = 1;");
    let all = read_topics(&broker.bootstrap, &["tls.tls_e2e.t"], 5, 60);
    let ops: Vec<_> = all.iter().filter_map(|r| r.op()).collect();
    assert!(ops.contains(&"c") && ops.contains(&"u"), "binlog over TLS: {ops:?}\n{}", daemon.logs());
    assert_eq!(daemon.stop(), Some(0));

    // A client certificate for a REQUIRE X509 user.
    let x509_url = format!(
        "mysql://cdcd_x509:cdcd@127.0.0.1:{port}?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}&ssl-cert={}&ssl-key={}",
        certs.join("client-cdcd_x509.pem").display(),
        certs.join("client-cdcd_x509.key").display()
    );
    let (code, out) = check(dir, "x509", &x509_url);
    assert_eq!(code, 0, "client certificate:\n{out}");

    // A CA that did not sign the server's certificate.
    let other = certs.join("other-ca.pem");
    let (code, out) = check(
        dir,
        "wrong_ca",
        &format!("mysql://cdcd_tls:cdcd@127.0.0.1:{port}?ssl-mode=VERIFY_CA&ssl-ca={}", other.display()),
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("certificate verify failed") && out.contains("ssl-ca"), "wrong CA:\n{out}");

    // A host name the certificate does not carry: VERIFY_IDENTITY refuses, VERIFY_CA accepts.
    let (code, out) = check(
        dir,
        "wrong_host",
        &format!("mysql://cdcd_tls:cdcd@127.0.0.2:{port}?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"),
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("mismatch") && out.contains("VERIFY_CA"), "wrong host:\n{out}");
    let (code, out) =
        check(dir, "verify_ca", &format!("mysql://cdcd_tls:cdcd@127.0.0.2:{port}?ssl-mode=VERIFY_CA&ssl-ca={ca}"));
    assert_eq!(code, 0, "VERIFY_CA does not check the host name:\n{out}");

    // Plaintext for a REQUIRE SSL user: refused by the server, and the error says what to set.
    let (code, out) = check(dir, "plain", &format!("mysql://cdcd_tls:cdcd@127.0.0.1:{port}?ssl-mode=DISABLED"));
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("REQUIRE SSL") && out.contains("ssl-mode=REQUIRED"), "ssl-mode=DISABLED:\n{out}");
}
