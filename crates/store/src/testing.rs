//! Support for tests that run against PostgreSQL as well as SQLite: each
//! test gets its own fresh database on the server that
//! `DECONFLICT_TEST_DATABASE_URL` names (`.ci/run` starts a throwaway
//! cluster on loopback and sets it), so tests run in parallel without
//! seeing each other's rows.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::StoreError;

/// The variable holding the test server's connection URL (a superuser's, on
/// a throwaway cluster: tests create databases with it).
pub const TEST_DATABASE_URL_VAR: &str = "DECONFLICT_TEST_DATABASE_URL";

/// The test server's URL, when one is configured.
pub fn test_database_url() -> Option<String> {
    std::env::var(TEST_DATABASE_URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// The test server's URL, or `None` after saying that `test` is skipped
/// without one. With `DECONFLICT_REQUIRE_CLIENTS=1` (as `.ci/run` sets) a
/// missing server fails the test instead: CI must not skip silently.
pub fn test_database_url_or_skip(test: &str) -> Option<String> {
    let url = test_database_url();
    if url.is_none() {
        let reason =
            format!("{test}: no PostgreSQL server ({TEST_DATABASE_URL_VAR} unset; .ci/run starts one)");
        assert!(
            std::env::var("DECONFLICT_REQUIRE_CLIENTS").as_deref() != Ok("1"),
            "{reason}, and DECONFLICT_REQUIRE_CLIENTS=1"
        );
        eprintln!("skipped: {reason}");
    }
    url
}

/// `url` with its database name replaced by `name`. Takes the URL form
/// (`postgres://user@host:port/db?options`) or the `key=value` form.
pub fn with_database_name(url: &str, name: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let (head, query) = match url.find('?') {
            Some(q) => (&url[..q], &url[q..]),
            None => (url, ""),
        };
        let authority_start = scheme_end + 3;
        let base = match head[authority_start..].find('/') {
            Some(slash) => &head[..authority_start + slash],
            None => head,
        };
        format!("{base}/{name}{query}")
    } else {
        // In the key=value form the last value of a key wins.
        format!("{url} dbname={name}")
    }
}

/// Creates an empty database with a name no other test (or run) uses on the
/// server at `admin_url`, and returns the URL of that database.
pub fn create_test_database(admin_url: &str, label: &str) -> Result<String, StoreError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let label: String = label
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(24)
        .collect::<String>()
        .to_ascii_lowercase();
    let name = format!(
        "t_{label}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = postgres::Client::connect(admin_url, postgres::NoTls)?;
    admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
    Ok(with_database_name(admin_url, &name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_replaced_in_both_forms() {
        assert_eq!(
            with_database_name("postgres://pg@127.0.0.1:5433/postgres", "t1"),
            "postgres://pg@127.0.0.1:5433/t1"
        );
        assert_eq!(
            with_database_name("postgresql://pg@127.0.0.1:5433", "t1"),
            "postgresql://pg@127.0.0.1:5433/t1"
        );
        assert_eq!(
            with_database_name("postgres://pg@127.0.0.1/x?connect_timeout=5", "t1"),
            "postgres://pg@127.0.0.1/t1?connect_timeout=5"
        );
        assert_eq!(
            with_database_name("host=127.0.0.1 user=pg", "t1"),
            "host=127.0.0.1 user=pg dbname=t1"
        );
    }
}
