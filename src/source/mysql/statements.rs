//! What the binlog's QUERY events say, read from their SQL text: how a statement frames its
//! transaction, and which table a TRUNCATE, CREATE TABLE or rename names.

/// What a QUERY event means for the transaction framing.
#[derive(Debug, PartialEq, Eq)]
pub enum QueryKind {
    /// `BEGIN`, `XA START`, or MySQL 8's atomic `CREATE TABLE ... START TRANSACTION`.
    Begin,
    Commit,
    /// `ROLLBACK` of a transaction that touched non-transactional tables (their changes stay).
    Rollback,
    /// `SAVEPOINT`, `RELEASE SAVEPOINT`, `XA END`: inside a transaction, no data.
    InTransaction,
    /// `ROLLBACK TO [SAVEPOINT]`: only written when non-transactional tables were changed.
    RollbackToSavepoint,
    /// DDL and any other statement.
    Other,
}

pub fn classify_query(sql: &str) -> QueryKind {
    let words: Vec<String> = sql.split_whitespace().take(3).map(|w| w.to_ascii_uppercase()).collect();
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    match (w(0), w(1)) {
        ("BEGIN", _) | ("XA", "START") | ("XA", "BEGIN") => QueryKind::Begin,
        ("COMMIT", _) => QueryKind::Commit,
        ("ROLLBACK", "TO") => QueryKind::RollbackToSavepoint,
        ("ROLLBACK", _) => QueryKind::Rollback,
        ("SAVEPOINT", _) | ("RELEASE", "SAVEPOINT") | ("XA", "END") => QueryKind::InTransaction,
        _ if sql.trim_end().to_ascii_uppercase().ends_with("START TRANSACTION") => QueryKind::Begin,
        _ => QueryKind::Other,
    }
}

/// `TRUNCATE [TABLE] [db.]name` -> (db, name); backquoted names may hold spaces and dots.
pub fn truncated_table(sql: &str, default_db: &str) -> Option<(String, String)> {
    let rest = strip_keyword(sql.trim(), "TRUNCATE")?;
    let rest = strip_keyword(rest, "TABLE").unwrap_or(rest);
    qualified(rest, default_db)
}

fn strip_keyword<'a>(s: &'a str, kw: &str) -> Option<&'a str> {
    let head = s.get(..kw.len())?;
    let rest = &s[kw.len()..];
    (head.eq_ignore_ascii_case(kw) && rest.starts_with(char::is_whitespace)).then(|| rest.trim_start())
}

/// One identifier at the start of `s`: backquoted (with `` doubled) or bare.
fn ident(s: &str) -> Option<(String, &str)> {
    if let Some(body) = s.strip_prefix('`') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '`' {
                if body[i + 1..].starts_with('`') {
                    out.push('`');
                    chars.next();
                } else {
                    return Some((out, &body[i + 1..]));
                }
            } else {
                out.push(c);
            }
        }
        None
    } else {
        let end = s.find(|c: char| matches!(c, '.' | ';' | ',' | '(') || c.is_whitespace()).unwrap_or(s.len());
        (end > 0).then(|| (s[..end].to_string(), &s[end..]))
    }
}

/// The table a `CREATE TABLE` creates (not a temporary one), as `(database, table)`.
pub fn created_table(sql: &str, default_db: &str) -> Option<(String, String)> {
    let mut rest = strip_keyword(sql.trim(), "CREATE")?;
    if let Some(r) = strip_keyword(rest, "OR") {
        rest = strip_keyword(r, "REPLACE")?;
    }
    let rest = strip_keyword(rest, "TABLE")?;
    let rest = strip_keyword(rest, "IF")
        .and_then(|r| strip_keyword(r, "NOT"))
        .and_then(|r| strip_keyword(r, "EXISTS"))
        .unwrap_or(rest);
    qualified(rest, default_db)
}

/// A table as `(database, table)`.
pub type Qualified = (String, String);

/// The tables `RENAME TABLE a TO b [, c TO d ...]` or `ALTER TABLE a RENAME [TO | AS] b`
/// renames, as `(from, to)` pairs in statement order. An `ALTER TABLE` that renames after
/// other changes (`ALTER TABLE a ADD c int, RENAME TO b`) is not recognised.
pub fn renamed_tables(sql: &str, default_db: &str) -> Vec<(Qualified, Qualified)> {
    let sql = sql.trim();
    if let Some(rest) = strip_keyword(sql, "RENAME") {
        let Some(mut rest) = strip_keyword(rest, "TABLE").or_else(|| strip_keyword(rest, "TABLES")) else {
            return Vec::new();
        };
        rest = if_exists(rest);
        let mut pairs = Vec::new();
        loop {
            let Some((from, r)) = qualified_then(rest, default_db) else { return pairs };
            let Some(r) = strip_keyword(skip_wait(r), "TO") else { return pairs };
            let Some((to, r)) = qualified_then(r, default_db) else { return pairs };
            pairs.push((from, to));
            match r.trim_start().strip_prefix(',') {
                Some(r) => rest = r.trim_start(),
                None => return pairs,
            }
        }
    }
    let Some(mut rest) = strip_keyword(sql, "ALTER") else { return Vec::new() };
    for kw in ["ONLINE", "IGNORE"] {
        rest = strip_keyword(rest, kw).unwrap_or(rest);
    }
    let Some(rest) = strip_keyword(rest, "TABLE") else { return Vec::new() };
    let Some((from, r)) = qualified_then(if_exists(rest), default_db) else { return Vec::new() };
    let Some(r) = strip_keyword(skip_wait(r), "RENAME") else { return Vec::new() };
    let r = strip_keyword(r, "TO").or_else(|| strip_keyword(r, "AS")).unwrap_or(r);
    let first = r.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
    if ["COLUMN", "INDEX", "KEY"].contains(&first.as_str()) {
        return Vec::new();
    }
    qualified_then(r, default_db).map(|(to, _)| vec![(from, to)]).unwrap_or_default()
}

/// Skips MariaDB's `IF EXISTS`.
fn if_exists(s: &str) -> &str {
    strip_keyword(s, "IF").and_then(|r| strip_keyword(r, "EXISTS")).unwrap_or(s)
}

/// Skips MariaDB's `WAIT n` / `NOWAIT` after a table name.
fn skip_wait(s: &str) -> &str {
    let s = s.trim_start();
    if let Some(r) = strip_keyword(s, "NOWAIT") {
        return r;
    }
    match strip_keyword(s, "WAIT") {
        Some(r) => r.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.').trim_start(),
        None => s,
    }
}

fn qualified(rest: &str, default_db: &str) -> Option<Qualified> {
    qualified_then(rest, default_db).map(|(q, _)| q)
}

/// A possibly qualified name at the start of `rest`, and what follows it.
fn qualified_then<'a>(rest: &'a str, default_db: &str) -> Option<(Qualified, &'a str)> {
    let (first, rest) = ident(rest)?;
    match rest.strip_prefix('.') {
        Some(after_dot) => {
            let (second, rest) = ident(after_dot)?;
            Some(((first, second), rest))
        }
        None => Some(((default_db.to_string(), first), rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_statements() {
        assert_eq!(truncated_table("TRUNCATE t", "shop"), Some(("shop".into(), "t".into())));
        assert_eq!(truncated_table("truncate table `sh``op`.`my t`", "x"), Some(("sh`op".into(), "my t".into())));
        assert_eq!(truncated_table("ALTER TABLE t ADD c int", "shop"), None);
        assert_eq!(truncated_table("TRUNCATE shop.t;", "x"), Some(("shop".into(), "t".into())));
        assert_eq!(truncated_table("TRUNCATE TABLE `a.b`", "d"), Some(("d".into(), "a.b".into())));
        assert_eq!(truncated_table("TRUNCATEX t", "d"), None);
    }

    #[test]
    fn queries_inside_a_transaction_do_not_end_it() {
        // As MariaDB 10.11 and MySQL 8 write them in the binlog.
        for (sql, kind) in [
            ("BEGIN", QueryKind::Begin),
            ("XA START X'31',X'',1", QueryKind::Begin),
            ("COMMIT", QueryKind::Commit),
            ("ROLLBACK", QueryKind::Rollback),
            ("SAVEPOINT `a`", QueryKind::InTransaction),
            ("savepoint s1", QueryKind::InTransaction),
            ("RELEASE SAVEPOINT `a`", QueryKind::InTransaction),
            ("XA END X'31',X'',1", QueryKind::InTransaction),
            ("ROLLBACK TO `a`", QueryKind::RollbackToSavepoint),
            ("ROLLBACK TO SAVEPOINT a", QueryKind::RollbackToSavepoint),
            ("CREATE TABLE t2 (id int) START TRANSACTION", QueryKind::Begin),
            ("ALTER TABLE t ADD c int", QueryKind::Other),
            ("TRUNCATE t", QueryKind::Other),
        ] {
            assert_eq!(classify_query(sql), kind, "{sql}");
        }
    }

    #[test]
    fn create_table_statements() {
        let c = |s: &str| created_table(s, "shop");
        assert_eq!(c("CREATE TABLE t (id int)"), Some(("shop".into(), "t".into())));
        assert_eq!(c("create table if not exists `a b`.`t``x` like other"), Some(("a b".into(), "t`x".into())));
        assert_eq!(c("CREATE OR REPLACE TABLE db.t SELECT 1"), Some(("db".into(), "t".into())));
        assert_eq!(c("CREATE TEMPORARY TABLE t (id int)"), None);
        assert_eq!(c("CREATE INDEX i ON t (a)"), None);
        assert_eq!(c("CREATE TABLESPACE ts"), None);
    }

    #[test]
    fn rename_statements() {
        let q = |d: &str, t: &str| (d.to_string(), t.to_string());
        let r = |s: &str| renamed_tables(s, "shop");
        assert_eq!(r("RENAME TABLE a TO b"), vec![(q("shop", "a"), q("shop", "b"))]);
        assert_eq!(
            r("rename table `x`.`a b` to `y`.c, d TO old.d"),
            vec![(q("x", "a b"), q("y", "c")), (q("shop", "d"), q("old", "d"))]
        );
        assert_eq!(r("RENAME TABLE IF EXISTS a WAIT 5 TO b"), vec![(q("shop", "a"), q("shop", "b"))]);
        assert_eq!(r("ALTER TABLE a RENAME TO db2.b"), vec![(q("shop", "a"), q("db2", "b"))]);
        assert_eq!(r("alter online table `a` rename as `b`"), vec![(q("shop", "a"), q("shop", "b"))]);
        assert_eq!(r("ALTER TABLE a RENAME b"), vec![(q("shop", "a"), q("shop", "b"))]);
        assert!(r("ALTER TABLE a RENAME COLUMN x TO y").is_empty());
        assert!(r("ALTER TABLE a RENAME INDEX i TO j").is_empty());
        assert!(r("ALTER TABLE a ADD c int").is_empty());
        assert!(r("RENAME USER u TO v").is_empty());
    }
}
