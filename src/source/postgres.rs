//! The PostgreSQL adapter: a deadpool pool of tokio-postgres connections
//! (TLS by rustls), the load query, the batch transaction, and the LISTEN
//! connection.
//!
//! Every statement is an unnamed one (`query_typed`/`execute_typed`: Parse,
//! Bind and Execute in one round trip) or a simple-protocol batch, never a
//! named prepared statement: behind a transaction-mode pooler (PgBouncer,
//! Supavisor) consecutive statements may reach different server
//! connections, where a statement prepared on another does not exist.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder;
use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::sync::mpsc;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{AsyncMessage, Transaction};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::schema::{parse_payload, Schema, KEEP_EXPIRY, STALE_GUESS_SQLSTATE};
use super::{
    CollectionKind, Invalidation, Loaded, Notice, Op, OutboxRecord, Result, SourceError,
    SourceStats,
};
use crate::config::{SourceConfig, SslMode};

pub struct Postgres {
    pool: Pool,
    schema: Schema,
    listen_config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    max_load_elements: u64,
}

impl Postgres {
    pub fn new(config: &SourceConfig) -> Result<Postgres> {
        let schema = Schema::new(&config.schema)
            .ok_or_else(|| SourceError::Config(format!("bad schema name '{}'", config.schema)))?;
        let (mut pg_config, url_mode, url_root) = parse_url(config.url.expose())?;
        let (mut listen_config, listen_mode, _) = parse_url(config.listen_url())?;
        // The stricter of the URL's sslmode and the configured one.
        let mode = [url_mode, listen_mode, Some(config.sslmode)]
            .into_iter()
            .flatten()
            .max_by_key(|mode| strictness(*mode))
            .unwrap_or(config.sslmode);
        let root = if config.sslrootcert.as_os_str().is_empty() {
            url_root
        } else {
            Some(config.sslrootcert.clone())
        };
        let tls = tls_connector(mode, root.as_deref())?;
        for pg in [&mut pg_config, &mut listen_config] {
            pg.ssl_mode(match mode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
            });
            if pg.get_connect_timeout().is_none() {
                pg.connect_timeout(config.connect_timeout.0);
            }
            pg.keepalives(true);
            pg.keepalives_idle(Duration::from_secs(30));
            if pg.get_application_name().is_none() {
                pg.application_name("strata");
            }
        }
        let manager = Manager::from_config(
            pg_config,
            tls.clone(),
            ManagerConfig {
                // Fast: no test query on checkout (one round trip saved per
                // call); a broken connection fails its call, which retries.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .wait_timeout(Some(config.connect_timeout.0))
            .create_timeout(Some(config.connect_timeout.0))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| SourceError::Config(e.to_string()))?;
        Ok(Postgres {
            pool,
            schema,
            listen_config,
            tls,
            max_load_elements: config.max_load_elements,
        })
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(err) => classify(err),
            other => SourceError::Unavailable(other.to_string()),
        })
    }

    pub async fn ensure_schema(&self) -> Result<()> {
        let client = self.client().await?;
        client
            .batch_execute(&self.schema.create)
            .await
            .map_err(classify)
    }

    /// A connection whose call overran the statement timeout still has the
    /// statement running: ask the server to cancel it, and close the
    /// connection rather than hand it to the next caller, who would wait.
    fn abandon(&self, client: deadpool_postgres::Object) {
        let token = client.cancel_token();
        let tls = self.tls.clone();
        tokio::spawn(async move {
            let _ = token.cancel_query(tls).await;
        });
        drop(deadpool_postgres::Object::take(client));
    }

    pub async fn load(
        &self,
        db: u32,
        key: &[u8],
        now_ms: i64,
        statement_timeout: Duration,
    ) -> Result<Option<Loaded>> {
        let client = self.client().await?;
        let db = i32::try_from(db).map_err(|_| SourceError::Invalid("database".into()))?;
        let limit = i64::try_from(self.max_load_elements.saturating_add(1)).unwrap_or(i64::MAX);
        let params: [(&(dyn ToSql + Sync), Type); 4] = [
            (&db, Type::INT4),
            (&key, Type::BYTEA),
            (&now_ms, Type::INT8),
            (&limit, Type::INT8),
        ];
        let query = client.query_typed(&self.schema.load, &params);
        let rows = match tokio::time::timeout(statement_timeout, query).await {
            Ok(rows) => rows.map_err(classify)?,
            Err(_) => {
                self.abandon(client);
                return Err(SourceError::Timeout);
            }
        };
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let kind: String = first.try_get(0).map_err(invalid)?;
        let expire_at_ms: Option<i64> = first.try_get(2).map_err(invalid)?;
        let version = u64::try_from(first.try_get::<_, i64>(3).map_err(invalid)?)
            .map_err(|_| SourceError::Invalid("negative version".into()))?;
        if kind == "string" {
            let value: Option<Vec<u8>> = first.try_get(1).map_err(invalid)?;
            return Ok(Some(Loaded::String {
                value: Bytes::from(value.unwrap_or_default()),
                expire_at_ms,
                version,
            }));
        }
        let kind = CollectionKind::parse(&kind)
            .ok_or_else(|| SourceError::Invalid(format!("unknown kind '{kind}'")))?;
        if rows.len() as u64 > self.max_load_elements {
            return Err(SourceError::TooLarge {
                limit: self.max_load_elements,
            });
        }
        let mut elements = Vec::with_capacity(rows.len());
        for row in &rows {
            let element: Option<Vec<u8>> = row.try_get(4).map_err(invalid)?;
            let value: Option<Vec<u8>> = row.try_get(5).map_err(invalid)?;
            if let (Some(element), Some(value)) = (element, value) {
                elements.push((Bytes::from(element), Bytes::from(value)));
            }
        }
        // Redis has no empty collections: a metadata row without elements
        // (written by hand, say) is an absent key.
        if elements.is_empty() {
            return Ok(None);
        }
        Ok(Some(Loaded::Collection {
            kind,
            elements,
            expire_at_ms,
            version,
        }))
    }

    pub async fn ship(
        &self,
        batch: &[OutboxRecord],
        writer: &str,
        statement_timeout: Duration,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let shipped = tokio::time::timeout(
            statement_timeout,
            self.ship_on(&mut client, batch, writer, statement_timeout),
        )
        .await;
        match shipped {
            Ok(outcome) => outcome,
            Err(_) => {
                self.abandon(client);
                Err(SourceError::Timeout)
            }
        }
    }

    async fn ship_on(
        &self,
        client: &mut tokio_postgres::Client,
        batch: &[OutboxRecord],
        writer: &str,
        statement_timeout: Duration,
    ) -> Result<()> {
        if let Some(guess) = Guess::new(batch)? {
            if self
                .ship_guessed(client, guess, writer, statement_timeout)
                .await?
            {
                return Ok(());
            }
            tracing::debug!(
                "source: a batch's rows were not as guessed; shipping it again, reading them first"
            );
        }
        let txn = client.build_transaction().start().await.map_err(classify)?;
        // Server-side bound too: a transaction that outlives the client's
        // timeout must not hold its row locks on. Sent in the same round
        // trip as the batch's first statements.
        let set_timeout = format!(
            "SET LOCAL statement_timeout = {}",
            statement_timeout.as_millis().max(1)
        );
        let bound = async { txn.batch_execute(&set_timeout).await.map_err(classify) };
        let body = async {
            let mut start = 0;
            for (index, record) in batch.iter().enumerate() {
                if matches!(record.op, Op::FlushDb | Op::FlushAll) {
                    self.apply_keys(&txn, &batch[start..index], writer).await?;
                    self.apply_flush(&txn, record, writer).await?;
                    start = index + 1;
                }
            }
            self.apply_keys(&txn, &batch[start..], writer).await
        };
        tokio::try_join!(biased; bound, body)?;
        txn.commit().await.map_err(classify)
    }

    /// Ships a guessed batch in one round trip: BEGIN, the check of the
    /// guesses, the changes and COMMIT go out back to back, and the server
    /// runs them in order. `Ok(false)`: a guess was wrong, the check
    /// aborted the transaction (COMMIT then rolls back), nothing changed.
    async fn ship_guessed(
        &self,
        client: &tokio_postgres::Client,
        guess: Guess<'_>,
        writer: &str,
        statement_timeout: Duration,
    ) -> Result<bool> {
        let s = &self.schema;
        let begin = format!(
            "BEGIN; SET LOCAL statement_timeout = {}",
            statement_timeout.as_millis().max(1)
        );
        let expected = i64::try_from(guess.expect_keys.len()).unwrap_or(i64::MAX);
        let begun = client.batch_execute(&begin);
        let checked = async {
            if expected == 0 {
                return Ok(0);
            }
            client
                .execute_typed(
                    &s.expect_current,
                    &[
                        (&guess.expect_dbs, Type::INT4_ARRAY),
                        (&guess.expect_keys, Type::BYTEA_ARRAY),
                        (&guess.expect_versions, Type::INT8_ARRAY),
                        (&guess.expect_kinds, Type::TEXT_ARRAY),
                        (&expected, Type::INT8),
                    ],
                )
                .await
        };
        let written = guess.changes.write(client, s, writer);
        let committed = client.batch_execute("COMMIT");
        let (begun, checked, written, committed) =
            tokio::join!(biased; begun, checked, written, committed);
        begun.map_err(classify)?;
        if let Err(error) = checked {
            if error.code().map(|code| code.code()) == Some(STALE_GUESS_SQLSTATE) {
                return Ok(false);
            }
            return Err(classify(error));
        }
        written?;
        committed.map_err(classify)?;
        Ok(true)
    }

    async fn apply_flush(
        &self,
        txn: &Transaction<'_>,
        record: &OutboxRecord,
        writer: &str,
    ) -> Result<()> {
        let version = version_i64(record.version)?;
        let s = &self.schema;
        if record.op == Op::FlushAll {
            txn.execute_typed(&s.flush_all_elements, &[(&version, Type::INT8)])
                .await
                .map_err(classify)?;
            txn.execute_typed(
                &s.flush_all_keys,
                &[(&version, Type::INT8), (&writer, Type::TEXT)],
            )
            .await
            .map_err(classify)?;
        } else {
            let db = db_i32(record.db)?;
            txn.execute_typed(
                &s.flush_db_elements,
                &[(&db, Type::INT4), (&version, Type::INT8)],
            )
            .await
            .map_err(classify)?;
            txn.execute_typed(
                &s.flush_db_keys,
                &[
                    (&db, Type::INT4),
                    (&version, Type::INT8),
                    (&writer, Type::TEXT),
                ],
            )
            .await
            .map_err(classify)?;
        }
        Ok(())
    }

    /// Applies the records of a flush-free stretch of the batch: lock every
    /// key's row, drop the records not newer than it, fold the rest per key
    /// into its final state, and write that with one statement per kind of
    /// change.
    async fn apply_keys(
        &self,
        txn: &Transaction<'_>,
        records: &[OutboxRecord],
        writer: &str,
    ) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let s = &self.schema;
        let by_key = by_key(records)?;
        let dbs: Vec<i32> = by_key.keys().map(|(db, _)| *db).collect();
        let keys: Vec<&[u8]> = by_key.keys().map(|(_, key)| *key).collect();
        let key_params: [(&(dyn ToSql + Sync), Type); 2] =
            [(&dbs, Type::INT4_ARRAY), (&keys, Type::BYTEA_ARRAY)];
        let (_, rows) = tokio::try_join!(
            biased;
            txn.execute_typed(&s.insert_placeholders, &key_params),
            txn.query_typed(&s.lock_keys, &key_params),
        )
        .map_err(classify)?;
        let mut current: BTreeMap<(i32, Vec<u8>), Current> = BTreeMap::new();
        for row in rows {
            let db: i32 = row.try_get(0).map_err(invalid)?;
            let key: Vec<u8> = row.try_get(1).map_err(invalid)?;
            current.insert(
                (db, key),
                Current {
                    kind: row.try_get(2).map_err(invalid)?,
                    version: row.try_get(3).map_err(invalid)?,
                    expire_at: row.try_get(4).map_err(invalid)?,
                },
            );
        }

        let mut changes = Changes::default();
        for ((db, key), records) in &by_key {
            let row = current.remove(&(*db, key.to_vec())).unwrap_or_default();
            let mut plan = KeyPlan::new(row.kind.as_deref(), row.expire_at);
            for record in records {
                let record_version = version_i64(record.version)?;
                if record_version > row.version {
                    plan.apply(record_version, &record.op);
                }
            }
            changes.add(*db, key, plan);
        }
        changes.write(txn.client(), s, writer).await
    }

    pub fn spawn_listener(&self, tx: mpsc::Sender<Notice>, stats: Arc<SourceStats>) {
        let config = self.listen_config.clone();
        let tls = self.tls.clone();
        let channel = self.schema.channel().to_string();
        tokio::spawn(listen_loop(config, tls, channel, tx, stats));
    }
}

/// A flush-free batch folded without reading its rows. Each key's first
/// record either replaces the whole key (a string's write, a DEL, the
/// tombstone a new collection starts with), so its row does not matter, or
/// changes elements of a collection strata expects the row to hold: live,
/// of that kind, older than the record ([`Schema::expect_current`] checks
/// it in the same transaction). A key changed otherwise first (an EXPIRE)
/// makes no guess: the batch reads its rows.
struct Guess<'a> {
    changes: Changes<'a>,
    expect_dbs: Vec<i32>,
    expect_keys: Vec<&'a [u8]>,
    expect_versions: Vec<i64>,
    expect_kinds: Vec<&'static str>,
}

impl<'a> Guess<'a> {
    fn new(records: &'a [OutboxRecord]) -> Result<Option<Guess<'a>>> {
        if records
            .iter()
            .any(|record| matches!(record.op, Op::FlushDb | Op::FlushAll))
        {
            return Ok(None);
        }
        let by_key = by_key(records)?;
        let mut guess = Guess {
            changes: Changes::default(),
            expect_dbs: Vec::new(),
            expect_keys: Vec::new(),
            expect_versions: Vec::new(),
            expect_kinds: Vec::new(),
        };
        for ((db, key), records) in by_key {
            let Some(first) = records.first() else {
                continue;
            };
            let mut plan = match &first.op {
                Op::PutString { .. } | Op::DeleteKey => KeyPlan::new(None, None),
                Op::PutElement { kind, .. } | Op::DeleteElement { kind, .. } => {
                    guess.expect_dbs.push(db);
                    guess.expect_keys.push(key);
                    guess.expect_versions.push(version_i64(first.version)?);
                    guess.expect_kinds.push(kind.name());
                    KeyPlan::new(Some(kind.name()), Some(KEEP_EXPIRY))
                }
                _ => return Ok(None),
            };
            for record in records {
                plan.apply(version_i64(record.version)?, &record.op);
            }
            guess.changes.add(db, key, plan);
        }
        Ok(Some(guess))
    }
}

/// A key's row as locked before the batch changes it.
#[derive(Default)]
struct Current {
    kind: Option<String>,
    version: i64,
    expire_at: Option<i64>,
}

/// A key's final state after the batch's newer records, folded in order.
struct KeyPlan {
    /// What the key is at the end; `None` = deleted.
    kind: Option<String>,
    /// Whether the key changed at all (some record was newer than its row).
    touched: bool,
    /// The old elements go (a string written over a collection, a DEL).
    reset: bool,
    /// The version of the last record that reset the key.
    reset_version: i64,
    /// A string's new bytes; `None` with kind "string" = unchanged.
    value: Option<Bytes>,
    /// Starts as the locked row's, so element changes keep the expiry.
    expire_at: Option<i64>,
    version: i64,
    /// Element changes in order, the last per element wins (`None` = delete).
    elements: BTreeMap<Bytes, (Option<Bytes>, i64)>,
}

impl KeyPlan {
    fn new(kind: Option<&str>, expire_at: Option<i64>) -> KeyPlan {
        KeyPlan {
            kind: kind.map(str::to_string),
            touched: false,
            reset: false,
            reset_version: 0,
            value: None,
            expire_at,
            version: 0,
            elements: BTreeMap::new(),
        }
    }

    fn apply(&mut self, version: i64, op: &Op) {
        self.touched = true;
        self.version = version;
        match op {
            Op::PutString {
                value,
                expire_at_ms,
            } => {
                self.reset = true;
                self.reset_version = version;
                self.elements.clear();
                self.kind = Some("string".into());
                self.value = Some(value.clone());
                self.expire_at = *expire_at_ms;
            }
            Op::DeleteKey => {
                self.reset = true;
                self.reset_version = version;
                self.elements.clear();
                self.kind = None;
                self.value = None;
                self.expire_at = None;
            }
            Op::SetExpire { expire_at_ms } => {
                self.expire_at = *expire_at_ms;
            }
            Op::PutElement {
                kind,
                element,
                value,
            } => {
                if self.kind.as_deref() != Some(kind.name()) {
                    // A new collection, or one replacing a key of another
                    // type: nothing of the old key survives.
                    if self.kind.is_some() {
                        self.reset = true;
                        self.reset_version = version;
                        self.elements.clear();
                    }
                    self.kind = Some(kind.name().to_string());
                    self.value = None;
                    self.expire_at = None;
                }
                self.elements
                    .insert(element.clone(), (Some(value.clone()), version));
            }
            Op::DeleteElement { kind, element } => {
                if self.kind.as_deref() == Some(kind.name()) {
                    self.elements.insert(element.clone(), (None, version));
                }
            }
            Op::FlushDb | Op::FlushAll => {}
        }
    }
}

/// The batch's changes as columns, one statement each.
#[derive(Default)]
struct Changes<'a> {
    reset_dbs: Vec<i32>,
    reset_keys: Vec<&'a [u8]>,
    reset_versions: Vec<i64>,
    del_dbs: Vec<i32>,
    del_keys: Vec<&'a [u8]>,
    del_elements: Vec<Bytes>,
    del_versions: Vec<i64>,
    put_dbs: Vec<i32>,
    put_keys: Vec<&'a [u8]>,
    put_kinds: Vec<String>,
    put_elements: Vec<Bytes>,
    put_values: Vec<Bytes>,
    put_versions: Vec<i64>,
    key_dbs: Vec<i32>,
    key_keys: Vec<&'a [u8]>,
    key_kinds: Vec<Option<String>>,
    key_values: Vec<Option<Bytes>>,
    key_expires: Vec<Option<i64>>,
    key_versions: Vec<i64>,
}

impl<'a> Changes<'a> {
    fn add(&mut self, db: i32, key: &'a [u8], plan: KeyPlan) {
        if !plan.touched {
            return;
        }
        if plan.reset {
            self.reset_dbs.push(db);
            self.reset_keys.push(key);
            self.reset_versions.push(plan.reset_version);
        }
        for (element, (value, version)) in plan.elements {
            match value {
                Some(value) => {
                    self.put_dbs.push(db);
                    self.put_keys.push(key);
                    self.put_kinds.push(plan.kind.clone().unwrap_or_default());
                    self.put_elements.push(element);
                    self.put_values.push(value);
                    self.put_versions.push(version);
                }
                None => {
                    self.del_dbs.push(db);
                    self.del_keys.push(key);
                    self.del_elements.push(element);
                    self.del_versions.push(version);
                }
            }
        }
        self.key_dbs.push(db);
        self.key_keys.push(key);
        self.key_kinds.push(plan.kind);
        self.key_values.push(plan.value);
        self.key_expires.push(plan.expire_at);
        self.key_versions.push(plan.version);
    }

    /// Sends the (up to four) statements back to back: tokio-postgres
    /// writes a request when its future is first polled, so joined futures
    /// share one round trip, and the server runs them in order.
    async fn write(self, txn: &tokio_postgres::Client, s: &Schema, writer: &str) -> Result<()> {
        let del_elements: Vec<&[u8]> = self.del_elements.iter().map(|e| &e[..]).collect();
        let put_elements: Vec<&[u8]> = self.put_elements.iter().map(|e| &e[..]).collect();
        let put_values: Vec<&[u8]> = self.put_values.iter().map(|v| &v[..]).collect();
        let key_values: Vec<Option<&[u8]>> = self.key_values.iter().map(|v| v.as_deref()).collect();
        let reset = async {
            if self.reset_dbs.is_empty() {
                return Ok(0);
            }
            txn.execute_typed(
                &s.delete_all_elements,
                &[
                    (&self.reset_dbs, Type::INT4_ARRAY),
                    (&self.reset_keys, Type::BYTEA_ARRAY),
                    (&self.reset_versions, Type::INT8_ARRAY),
                ],
            )
            .await
        };
        let delete = async {
            if self.del_dbs.is_empty() {
                return Ok(0);
            }
            txn.execute_typed(
                &s.delete_elements,
                &[
                    (&self.del_dbs, Type::INT4_ARRAY),
                    (&self.del_keys, Type::BYTEA_ARRAY),
                    (&del_elements, Type::BYTEA_ARRAY),
                    (&self.del_versions, Type::INT8_ARRAY),
                ],
            )
            .await
        };
        let upsert = async {
            if self.put_dbs.is_empty() {
                return Ok(0);
            }
            txn.execute_typed(
                &s.upsert_elements,
                &[
                    (&self.put_dbs, Type::INT4_ARRAY),
                    (&self.put_keys, Type::BYTEA_ARRAY),
                    (&self.put_kinds, Type::TEXT_ARRAY),
                    (&put_elements, Type::BYTEA_ARRAY),
                    (&put_values, Type::BYTEA_ARRAY),
                    (&self.put_versions, Type::INT8_ARRAY),
                    (&writer, Type::TEXT),
                ],
            )
            .await
        };
        let keys = async {
            if self.key_dbs.is_empty() {
                return Ok(0);
            }
            txn.execute_typed(
                &s.upsert_keys,
                &[
                    (&self.key_dbs, Type::INT4_ARRAY),
                    (&self.key_keys, Type::BYTEA_ARRAY),
                    (&self.key_kinds, Type::TEXT_ARRAY),
                    (&key_values, Type::BYTEA_ARRAY),
                    (&self.key_expires, Type::INT8_ARRAY),
                    (&self.key_versions, Type::INT8_ARRAY),
                    (&writer, Type::TEXT),
                ],
            )
            .await
        };
        tokio::try_join!(biased; reset, delete, upsert, keys).map_err(classify)?;
        Ok(())
    }
}

async fn listen_loop(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    channel: String,
    tx: mpsc::Sender<Notice>,
    stats: Arc<SourceStats>,
) {
    let builder = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter()
        .without_max_times();
    let mut delays = builder.build();
    let mut reconnected = false;
    while !tx.is_closed() {
        match config.connect(tls.clone()).await {
            Ok((client, mut connection)) => {
                let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<String>();
                let pump_tx = tx.clone();
                let pump_stats = stats.clone();
                // The connection delivers notifications as it is polled; the
                // client's LISTEN and pings go through it too.
                let pump = tokio::spawn(async move {
                    let reason = loop {
                        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                            Some(Ok(AsyncMessage::Notification(n))) => {
                                if let Some((db, writer, key)) = parse_payload(n.payload()) {
                                    SourceStats::add(&pump_stats.invalidations, 1);
                                    let notice = Notice::Invalidate(Invalidation {
                                        db,
                                        key: key.map(Bytes::from),
                                        writer,
                                    });
                                    if pump_tx.send(notice).await.is_err() {
                                        break "receiver dropped".to_string();
                                    }
                                }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(err)) => break err.to_string(),
                            None => break "connection closed".to_string(),
                        }
                    };
                    let _ = closed_tx.send(reason);
                });
                let listen = format!("LISTEN \"{channel}\"");
                match client.batch_execute(&listen).await {
                    Ok(()) => {
                        delays = builder.build();
                        if reconnected {
                            SourceStats::add(&stats.listener_reconnects, 1);
                        }
                        if tx.send(Notice::Listening { reconnected }).await.is_err() {
                            pump.abort();
                            return;
                        }
                        watch(&client, closed_rx, &tx).await;
                    }
                    Err(err) => {
                        tracing::warn!("source: LISTEN failed: {err}");
                    }
                }
                pump.abort();
                reconnected = true;
            }
            Err(err) => {
                tracing::warn!("source: the listen connection failed: {err}");
            }
        }
        let delay = delays.next().unwrap_or(Duration::from_secs(10));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = tx.closed() => return,
        }
    }
}

/// Waits until the listen connection dies (or nobody listens any more),
/// pinging it now and then so a silently dropped link shows.
async fn watch(
    client: &tokio_postgres::Client,
    mut closed: tokio::sync::oneshot::Receiver<String>,
    tx: &mpsc::Sender<Notice>,
) {
    let mut ping = tokio::time::interval(Duration::from_secs(10));
    ping.tick().await;
    loop {
        tokio::select! {
            reason = &mut closed => {
                tracing::warn!(
                    "source: the listen connection was lost ({}); reconnecting",
                    reason.unwrap_or_default()
                );
                return;
            }
            _ = tx.closed() => return,
            _ = ping.tick() => {
                let pinged = tokio::time::timeout(Duration::from_secs(10), client.simple_query("")).await;
                if !matches!(pinged, Ok(Ok(_))) {
                    tracing::warn!("source: the listen connection stopped answering; reconnecting");
                    return;
                }
            }
        }
    }
}

/// Splits libpq's `sslmode` and `sslrootcert` out of a connection string:
/// tokio-postgres knows neither `verify-full` nor `sslrootcert`.
fn parse_url(
    url: &str,
) -> Result<(
    tokio_postgres::Config,
    Option<SslMode>,
    Option<std::path::PathBuf>,
)> {
    let mut mode = None;
    let mut root = None;
    let mut take = |name: &str, value: &str| -> Result<bool> {
        match name {
            "sslmode" => {
                mode = Some(SslMode::parse(value).ok_or_else(|| {
                    SourceError::Config(format!("sslmode '{value}' is not supported"))
                })?);
                Ok(true)
            }
            "sslrootcert" => {
                root = Some(std::path::PathBuf::from(value));
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let cleaned = if url.contains("://") {
        match url.split_once('?') {
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(name, value)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => url.to_string(),
        }
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            let (name, value) = word.split_once('=').unwrap_or((word, ""));
            if !take(name, value)? {
                kept.push(word);
            }
        }
        kept.join(" ")
    };
    let config = cleaned.parse::<tokio_postgres::Config>().map_err(|e| {
        SourceError::Config(format!(
            "cannot parse the source url {}: {e}",
            crate::config::redact_url(url)
        ))
    })?;
    Ok((config, mode, root))
}

fn strictness(mode: SslMode) -> u8 {
    match mode {
        SslMode::Disable => 0,
        SslMode::Prefer => 1,
        SslMode::Require => 2,
        SslMode::VerifyFull => 3,
    }
}

/// rustls with ring. `verify-full` checks the chain (against the CA file or
/// the Mozilla roots) and the host name; `prefer` and `require` encrypt
/// without checking, as libpq does without a root certificate.
fn tls_connector(mode: SslMode, root: Option<&Path>) -> Result<MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| SourceError::Config(format!("TLS: {e}")))?;
    let config = if mode == SslMode::VerifyFull {
        let mut roots = rustls::RootCertStore::empty();
        match root {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| {
                        SourceError::Config(format!("cannot read {}: {e}", path.display()))
                    })?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| {
                        SourceError::Config(format!("cannot read {}: {e}", path.display()))
                    })?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(SourceError::Config(format!(
                        "no certificate in {}",
                        path.display()
                    )));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertificateCheck(provider)))
            .with_no_client_auth()
    };
    Ok(MakeRustlsConnect::new(config))
}

/// `sslmode=require`: encrypted, whoever the server is. Signatures are
/// still checked, so the handshake itself is sound.
#[derive(Debug)]
struct NoCertificateCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connection trouble and the server's transient refusals (deadlock,
/// serialization, shutting down, too many connections) are worth a retry;
/// any other database error is the statement's fault.
fn classify(err: tokio_postgres::Error) -> SourceError {
    let text = describe(&err);
    match err.code() {
        Some(code) => {
            let code = code.code();
            let transient = code.starts_with("08")
                || code.starts_with("40")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "55P03";
            if code == "57014" {
                SourceError::Timeout
            } else if transient {
                SourceError::Unavailable(text)
            } else {
                SourceError::Rejected(text)
            }
        }
        None => SourceError::Unavailable(text),
    }
}

/// The server's message and code, or the chain of causes ("error
/// connecting to server: Connection refused"), where tokio-postgres's own
/// text says only "db error".
fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

fn invalid(err: tokio_postgres::Error) -> SourceError {
    SourceError::Invalid(err.to_string())
}

/// A batch's records per (db, key), in key order, each key's in batch order.
type ByKey<'a> = BTreeMap<(i32, &'a [u8]), Vec<&'a OutboxRecord>>;

fn by_key(records: &[OutboxRecord]) -> Result<ByKey<'_>> {
    let mut by_key = ByKey::new();
    for record in records {
        by_key
            .entry((db_i32(record.db)?, &record.key[..]))
            .or_default()
            .push(record);
    }
    Ok(by_key)
}

fn version_i64(version: u64) -> Result<i64> {
    i64::try_from(version).map_err(|_| SourceError::Invalid(format!("version {version}")))
}

fn db_i32(db: u32) -> Result<i32> {
    i32::try_from(db).map_err(|_| SourceError::Invalid(format!("database {db}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_root_come_out_of_the_url() {
        let (config, mode, root) = parse_url(
            "postgres://u:p@h:6543/db?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(mode, Some(SslMode::VerifyFull));
        assert_eq!(root, Some(std::path::PathBuf::from("/ca.pem")));
        assert_eq!(config.get_application_name(), Some("x"));
        assert_eq!(config.get_ports(), &[6543]);
        let (_, mode, _) = parse_url("host=h user=u sslmode=require dbname=d").unwrap();
        assert_eq!(mode, Some(SslMode::Require));
        let err = parse_url("postgres://u:s3cret@h/db?sslmode=verify-ca").unwrap_err();
        assert!(err.to_string().contains("verify-ca"));
        let err = parse_url("postgres://u:s3cret@h:notaport/db").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn tls_configs_build() {
        assert!(tls_connector(SslMode::Require, None).is_ok());
        assert!(tls_connector(SslMode::VerifyFull, None).is_ok());
        assert!(tls_connector(SslMode::VerifyFull, Some(Path::new("/nonexistent.pem"))).is_err());
    }

    #[test]
    fn plans_fold_records_in_order() {
        let put = |v: &str| Op::PutString {
            value: Bytes::from(v.to_string()),
            expire_at_ms: None,
        };
        let mut plan = KeyPlan::new(Some("list"), Some(1));
        plan.apply(5, &put("a"));
        plan.apply(6, &Op::DeleteKey);
        plan.apply(
            7,
            &Op::PutElement {
                kind: CollectionKind::Hash,
                element: Bytes::from_static(b"f"),
                value: Bytes::from_static(b"1"),
            },
        );
        plan.apply(
            8,
            &Op::PutElement {
                kind: CollectionKind::Hash,
                element: Bytes::from_static(b"f"),
                value: Bytes::from_static(b"2"),
            },
        );
        assert!(plan.reset);
        assert_eq!(plan.kind.as_deref(), Some("hash"));
        assert_eq!(plan.version, 8);
        assert_eq!(
            plan.elements.get(&Bytes::from_static(b"f")),
            Some(&(Some(Bytes::from_static(b"2")), 8))
        );
    }
}
