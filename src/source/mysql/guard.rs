//! A fence around `mysql_common`'s binlog decoding. It trusts a few lengths it reads: fuzzing
//! found that an event shorter than its header claims panics inside `Event::read` (an `unwrap`
//! on `read_exact`), and a short checksummed event underflows a slice index. Such bytes come only
//! from a corrupt or hostile server, but they must stop the session with an error naming the
//! place, not take the daemon down. The stream, the table-map and the rows decoding all go
//! through here; the fuzz entry points use the same fence.

use std::panic::{catch_unwind, AssertUnwindSafe};

use futures_util::FutureExt;

/// Runs a synchronous decoding step; a panic inside becomes an error about `what`.
pub fn decode<T>(what: impl FnOnce() -> String, step: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(step)).map_err(|panic| failure(what(), panic))
}

/// The same for a future (the binlog stream, whose driver decodes each event as it arrives).
pub async fn decode_async<T>(
    what: impl FnOnce() -> String,
    step: impl std::future::Future<Output = T>,
) -> Result<T, String> {
    AssertUnwindSafe(step).catch_unwind().await.map_err(|panic| failure(what(), panic))
}

fn failure(what: String, panic: Box<dyn std::any::Any + Send>) -> String {
    let detail = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "no detail".into());
    format!(
        "the binlog decoder failed on malformed bytes in {what} ({detail}); the server sent an event that does not match its own length or format. Check the server's binlog (mysqlbinlog) at this position; cdcd will not skip it"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_naming_the_place() {
        assert_eq!(decode(|| "x".into(), || 7), Ok(7));
        let err = decode(|| "binlog.000001:4".into(), || -> u8 { panic!("boom") }).unwrap_err();
        assert!(err.contains("binlog.000001:4") && err.contains("boom"), "{err}");
    }
}
