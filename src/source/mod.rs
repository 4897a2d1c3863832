//! Source connectors. Each lives in its own folder and depends only on `crate::core` and the
//! pipeline's [`crate::pipeline::Emitter`].

pub mod mysql;
pub mod postgres;

/// One checked prerequisite, as `cdcd check` prints it.
pub struct Finding {
    pub ok: bool,
    pub what: String,
    /// What to do about a failure.
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(what: impl Into<String>) -> Finding {
        Finding { ok: true, what: what.into(), fix: None }
    }

    pub fn fail(what: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { ok: false, what: what.into(), fix: Some(fix.into()) }
    }
}
