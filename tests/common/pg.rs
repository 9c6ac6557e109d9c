//! The PostgreSQL the source tests share: the one `tools/pg.sh` starts (and
//! `tools/test.sh` exports as `STRATA_TEST_PG_URL`). Each test works in a
//! schema of its own, so they run side by side.

/// The database URL in `var`, or `None` when the developer asked to skip
/// these tests; without either the test fails, it never passes silently.
pub fn pg_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("STRATA_SKIP_PG").as_deref() == Ok("1") => {
            eprintln!("skipped: STRATA_SKIP_PG=1 and {var} is not set");
            None
        }
        _ => panic!(
            "{var} is not set: run tools/test.sh, or `eval \"$(tools/pg.sh start)\"` first \
             (or set STRATA_SKIP_PG=1 to skip the PostgreSQL tests)"
        ),
    }
}

/// The test's database URL, or returns from the test when skipping.
#[macro_export]
macro_rules! require_pg {
    () => {
        match $crate::common::pg::pg_url("STRATA_TEST_PG_URL") {
            Some(url) => url,
            None => return,
        }
    };
}

/// A schema name no other test or earlier run uses.
pub fn schema(test: &str) -> String {
    format!("t_{test}_{:08x}", rand::random::<u32>())
}

/// A plain connection for looking at the tables as a person would.
pub async fn psql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

pub async fn drop_schema(url: &str, schema: &str) {
    let client = psql(url).await;
    let _ = client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await;
}
