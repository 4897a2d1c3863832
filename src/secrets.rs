//! Secrets: where credentials come from, and keeping them out of every output.
//!
//! A configuration string may reference `${VAR}` (environment), `${file:/run/secrets/pg}` (a
//! file's contents, without its trailing newline) or `${credential:pg}` (systemd's
//! `LoadCredential=`, read from `$CREDENTIALS_DIRECTORY/pg`). Every value read from a file or a
//! credential, and every password the loaded configuration holds (in a source URL, a key
//! passphrase, a `*password*` / `*secret*` sink property) is registered here; the log writer,
//! `cdcd check` and the top-level error printer pass all text through [`redact`], and the
//! configuration's `Debug` output is redacted too. So a secret cannot reach a log line, an
//! error or a diagnostic, however it got into a message.

use std::borrow::Cow;
use std::io::Write;
use std::sync::RwLock;

/// Each registered secret with its percent-encoded form (as it appears in URLs), longest first.
static SECRETS: RwLock<Vec<(String, String)>> = RwLock::new(Vec::new());

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Remembers `value` as a secret. Empty values are ignored (nothing to hide).
pub fn register(value: &str) {
    if value.is_empty() {
        return;
    }
    let mut all = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !all.iter().any(|(s, _)| s == value) {
        let encoded = percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string();
        all.push((value.to_string(), encoded));
        // Longest first, so a secret that contains another is masked whole.
        all.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
    }
}

/// Secrets shorter than this are masked only where they stand alone (not inside a longer word):
/// a password like `cdcd` would otherwise mask every slot and publication name derived from a
/// connector called `cdcd_...`, or a path like `/tmp/cdcd-demo/state`. Where such a password
/// travels (`user:cdcd@host`, `pw=cdcd`, `... cdcd.` at the end of a sentence) it is delimited
/// and still masked.
const WHOLE_WORD_BELOW: usize = 8;

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `-` and `.` join words (`cdcd-demo`, `db.cdcd.internal`) but only between word characters:
/// `pw=cdcd.` or `cdcd-` at a line's end still leave `cdcd` standing alone.
fn is_joiner(c: char) -> bool {
    c == '-' || c == '.'
}

/// Whether the text around an occurrence (`before` it reversed, `after` it) continues a word.
fn glued(mut before: std::iter::Rev<std::str::Chars<'_>>, mut after: std::str::Chars<'_>) -> bool {
    let continues = |first: Option<char>, second: Option<char>| match first {
        Some(c) if is_word(c) => true,
        Some(c) if is_joiner(c) => second.is_some_and(is_word),
        _ => false,
    };
    continues(before.next(), before.next()) || continues(after.next(), after.next())
}

/// `text` with each stand-alone occurrence of `word` masked.
fn mask_words(text: &str, word: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    let mut from = 0;
    while let Some(i) = text[from..].find(word).map(|i| i + from) {
        let end = i + word.len();
        if !glued(text[..i].chars().rev(), text[end..].chars()) {
            out.push_str(&text[done..i]);
            out.push_str(MASK);
            done = end;
        }
        from = end;
    }
    out.push_str(&text[done..]);
    out
}

/// `text` with every registered secret (and its percent-encoded form, as in URLs) masked.
pub fn redact(text: &str) -> Cow<'_, str> {
    let all = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for (secret, encoded) in all.iter() {
        for form in [secret.as_str(), encoded.as_str()] {
            if !out.contains(form) {
                continue;
            }
            out = Cow::Owned(if form.len() >= WHOLE_WORD_BELOW {
                out.replace(form, MASK)
            } else {
                mask_words(&out, form)
            });
        }
    }
    out
}

/// Resolves one `${...}` reference body: `file:PATH`, `credential:NAME` or an environment
/// variable name. File and credential values are registered as secrets.
pub fn resolve(reference: &str) -> Result<String, String> {
    if let Some(path) = reference.strip_prefix("file:") {
        let value = read_secret_file(path).map_err(|e| format!("cannot read `${{{reference}}}`: {e}"))?;
        register(&value);
        return Ok(value);
    }
    if let Some(name) = reference.strip_prefix("credential:") {
        if name.is_empty() || name.contains('/') {
            return Err(format!(
                "`${{{reference}}}`: a credential name is a plain file name (LoadCredential=NAME:...)"
            ));
        }
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
            format!("`${{{reference}}}`: CREDENTIALS_DIRECTORY is not set (run under systemd with LoadCredential={name}:PATH, or use ${{file:PATH}})")
        })?;
        let path = std::path::Path::new(&dir).join(name);
        let value = read_secret_file(&path.to_string_lossy())
            .map_err(|e| format!("cannot read credential `{name}` from {}: {e}", path.display()))?;
        register(&value);
        return Ok(value);
    }
    std::env::var(reference)
        .map_err(|_| format!("environment variable `{reference}` is not set (referenced as `${{{reference}}}`)"))
}

fn read_secret_file(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    // Files written by `echo` or editors end in a newline that is not part of the secret.
    Ok(text.strip_suffix("\r\n").or_else(|| text.strip_suffix('\n')).unwrap_or(&text).to_string())
}

/// Whether a sink property holds a credential (its value is registered as a secret).
pub fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") || k.contains("secret") || k == "sasl.jaas.config" || k == "ssl.key.pem"
}

/// A connection URL from the configuration: a string whose `Debug` output is redacted.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct ConnUrl(pub String);

impl std::ops::Deref for ConnUrl {
    type Target = String;
    fn deref(&self) -> &String {
        &self.0
    }
}

impl std::fmt::Debug for ConnUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(redact(&self.0).as_ref(), f)
    }
}

/// librdkafka properties from the configuration; `Debug` masks the credentials among them.
#[derive(Clone, Default, PartialEq, serde::Deserialize)]
#[serde(transparent)]
pub struct Properties(pub std::collections::BTreeMap<String, toml::Value>);

impl std::ops::Deref for Properties {
    type Target = std::collections::BTreeMap<String, toml::Value>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Properties {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<'a> IntoIterator for &'a Properties {
    type Item = (&'a String, &'a toml::Value);
    type IntoIter = std::collections::btree_map::Iter<'a, String, toml::Value>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<(String, toml::Value)> for Properties {
    fn from_iter<I: IntoIterator<Item = (String, toml::Value)>>(iter: I) -> Self {
        Properties(iter.into_iter().collect())
    }
}

impl std::fmt::Debug for Properties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.0 {
            if is_secret_property(k) {
                m.entry(k, &MASK);
            } else {
                m.entry(k, &redact(&v.to_string()));
            }
        }
        m.finish()
    }
}

/// A `tracing` writer that masks secrets in each log record before it reaches stderr. The
/// formatter writes one record per writer, so the record is masked whole, not piecewise.
pub struct RedactingStderr {
    buf: Vec<u8>,
}

impl RedactingStderr {
    pub fn new() -> Self {
        RedactingStderr { buf: Vec::with_capacity(256) }
    }
}

impl Default for RedactingStderr {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for RedactingStderr {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buf);
        let result = std::io::stderr().write_all(redact(&text).as_bytes());
        self.buf.clear();
        result
    }
}

impl Drop for RedactingStderr {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_masked_plain_and_percent_encoded() {
        register("p@ss word!42");
        let line = "connecting to postgres://u:p%40ss%20word%2142@h/db with p@ss word!42";
        let masked = redact(line);
        assert!(!masked.contains("p@ss") && !masked.contains("p%40ss"), "{masked}");
        // Other tests in this process register their own (short) secrets, so only count masks.
        assert!(masked.matches(MASK).count() >= 2, "{masked}");
    }

    #[test]
    fn short_secrets_are_masked_where_they_stand_alone_only() {
        assert_eq!(
            mask_words("slot=cdcd_m url=postgres://cdcd:cdcd@h pw=cdcd", "cdcd"),
            "slot=cdcd_m url=postgres://***:***@h pw=***"
        );
        // The demo's checkpoint path, with the demo's password `cdcd` (issue 20, item 7).
        assert_eq!(
            mask_words("checkpoint /tmp/cdcd-demo/state/checkpoint.json, user cdcd. pw cdcd-", "cdcd"),
            "checkpoint /tmp/cdcd-demo/state/checkpoint.json, user ***. pw ***-"
        );
        assert_eq!(mask_words("host db.cdcd.internal, x-cdcd, cdcd2", "cdcd"), "host db.cdcd.internal, x-cdcd, cdcd2");
    }

    #[test]
    fn file_references_lose_the_trailing_newline_and_become_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "from-a-file-7731\n").unwrap();
        let value = resolve(&format!("file:{}", path.display())).unwrap();
        assert_eq!(value, "from-a-file-7731");
        assert!(redact("x from-a-file-7731 y").contains("x *** y"));
        let err = resolve("file:/nonexistent/cdcd-secret").unwrap_err();
        assert!(err.contains("/nonexistent/cdcd-secret"), "{err}");
    }

    #[test]
    fn debug_output_of_urls_and_properties_is_masked() {
        register("dbg-secret-5521");
        let url = ConnUrl("postgres://u:dbg-secret-5521@h/d".into());
        assert!(!format!("{url:?}").contains("dbg-secret"));
        let props: Properties =
            [("sasl.password".to_string(), toml::Value::String("not-registered-9".into()))].into_iter().collect();
        assert!(!format!("{props:?}").contains("not-registered-9"));
    }

    #[test]
    fn credentials_need_the_systemd_directory() {
        if std::env::var_os("CREDENTIALS_DIRECTORY").is_none() {
            let err = resolve("credential:pg").unwrap_err();
            assert!(err.contains("CREDENTIALS_DIRECTORY") && err.contains("LoadCredential"), "{err}");
        }
        assert!(resolve("credential:../etc/passwd").unwrap_err().contains("plain file name"));
    }
}
