//! strata's tables in the source, and the text of every statement that
//! touches them. The schema name is part of the SQL text (DDL takes no
//! parameters), which is why config accepts only plain identifiers.
//!
//! ```text
//! <schema>.keys      one row per key: a string's value inline, a collection's
//!                    metadata; kind NULL = deleted (a tombstone keeping the
//!                    version, so an older write replayed later stays dead)
//! <schema>.elements  one row per collection element
//! ```
//! Statement triggers on `keys` call `pg_notify('<schema>_invalidate', ...)` for
//! every change of a key's version, with the payload `<db> <writer> <hex
//! key>` (`*` instead of the key when it is too long for a notification).

use crate::config::valid_schema_name;

/// Keys up to this many bytes travel in notifications (hex doubles them;
/// PostgreSQL's payload limit is 8000 bytes).
pub const NOTIFY_MAX_KEY_BYTES: usize = 3000;

/// The error `expect_current` raises when a batch's guess about its rows
/// is wrong (a class of its own, so no other error reads as one).
pub const STALE_GUESS_SQLSTATE: &str = "SX001";

/// An expiry that tells the keys upsert to keep the row's own; never a
/// real one (those are Unix ms).
pub const KEEP_EXPIRY: i64 = -1;

/// Statements for one schema, built once.
#[derive(Debug, Clone)]
pub struct Schema {
    name: String,
    channel: String,
    pub create: String,
    pub load: String,
    pub insert_placeholders: String,
    pub lock_keys: String,
    pub expect_current: String,
    pub delete_all_elements: String,
    pub delete_elements: String,
    pub upsert_elements: String,
    pub upsert_keys: String,
    pub flush_db_elements: String,
    pub flush_db_keys: String,
    pub flush_all_elements: String,
    pub flush_all_keys: String,
}

impl Schema {
    /// `None` when `name` is not a plain lower-case identifier.
    pub fn new(name: &str) -> Option<Schema> {
        if !valid_schema_name(name) {
            return None;
        }
        let s = name;
        let channel = format!("{s}_invalidate");
        // One advisory lock per schema name, so instances that start
        // together do not race on CREATE ... IF NOT EXISTS.
        let lock_id = xxhash_rust::xxh3::xxh3_64(s.as_bytes()) as i64;
        let create = format!(
            r#"
BEGIN;
SELECT pg_advisory_xact_lock({lock_id});
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.keys (
    db         integer NOT NULL,
    key        bytea   NOT NULL,
    kind       text    CHECK (kind IN ('string', 'list', 'hash', 'set', 'zset')),
    value      bytea,
    expire_at  bigint,
    version    bigint  NOT NULL,
    writer     text    NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (db, key)
);
COMMENT ON TABLE {s}.keys IS 'strata: one row per key. kind NULL = deleted (tombstone); value = a string''s bytes; expire_at = Unix ms; version grows with every write of the key; writer = the strata instance that wrote it.';
CREATE TABLE IF NOT EXISTS {s}.elements (
    db       integer NOT NULL,
    key      bytea   NOT NULL,
    kind     text    NOT NULL,
    element  bytea   NOT NULL,
    value    bytea   NOT NULL,
    version  bigint  NOT NULL,
    writer   text    NOT NULL,
    PRIMARY KEY (db, key, element)
);
COMMENT ON TABLE {s}.elements IS 'strata: one row per collection element. element = list position (8-byte big-endian), hash field, set or zset member; value = list item, hash value, empty for a set, the score as text for a zset.';
CREATE INDEX IF NOT EXISTS keys_expire_at ON {s}.keys (expire_at) WHERE expire_at IS NOT NULL;
-- One call per statement, not per row: a batch of n keys costs one
-- trigger call and one query over its transition table (row triggers cost
-- about two thirds of the batch's time in the database).
CREATE OR REPLACE FUNCTION {s}.notify_changed() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- strata never deletes rows (it keeps tombstones): a person did,
        -- so every instance must drop the key.
        PERFORM pg_notify('{channel}', o.db::text || ' - ' ||
            CASE WHEN octet_length(o.key) <= {NOTIFY_MAX_KEY_BYTES}
                 THEN encode(o.key, 'hex') ELSE '*' END)
        FROM old_rows o;
    ELSIF TG_OP = 'INSERT' THEN
        -- Version 0: a placeholder locking a key's row, not a write.
        PERFORM pg_notify('{channel}', n.db::text || ' ' || n.writer || ' ' ||
            CASE WHEN octet_length(n.key) <= {NOTIFY_MAX_KEY_BYTES}
                 THEN encode(n.key, 'hex') ELSE '*' END)
        FROM new_rows n WHERE n.version <> 0;
    ELSE
        PERFORM pg_notify('{channel}', n.db::text || ' ' || n.writer || ' ' ||
            CASE WHEN octet_length(n.key) <= {NOTIFY_MAX_KEY_BYTES}
                 THEN encode(n.key, 'hex') ELSE '*' END)
        FROM new_rows n
        WHERE n.version <> 0
          AND NOT EXISTS (SELECT 1 FROM old_rows o
                          WHERE o.db = n.db AND o.key = n.key AND o.version = n.version);
    END IF;
    RETURN NULL;
END
$fn$;
CREATE OR REPLACE FUNCTION {s}.expect_current(stale bigint) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    IF stale <> 0 THEN
        RAISE EXCEPTION 'strata: % keys are not as the batch expected them', stale
            USING ERRCODE = '{STALE_GUESS_SQLSTATE}';
    END IF;
END
$fn$;
DO $do$
BEGIN
    -- Created once: dropping and creating it again would lock the table
    -- against the other instances' writes at every start.
    -- Row triggers of earlier versions, replaced by the statement ones.
    IF EXISTS (SELECT 1 FROM pg_trigger
               WHERE tgname = 'keys_invalidate' AND tgrelid = '{s}.keys'::regclass) THEN
        DROP TRIGGER keys_invalidate ON {s}.keys;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_trigger
               WHERE tgname = 'keys_invalidate_delete' AND tgrelid = '{s}.keys'::regclass) THEN
        DROP TRIGGER keys_invalidate_delete ON {s}.keys;
    END IF;
    DROP FUNCTION IF EXISTS {s}.notify_invalidate();
    -- A trigger with transition tables takes one event.
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                   WHERE tgname = 'keys_notify_insert' AND tgrelid = '{s}.keys'::regclass) THEN
        CREATE TRIGGER keys_notify_insert AFTER INSERT ON {s}.keys
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION {s}.notify_changed();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                   WHERE tgname = 'keys_notify_update' AND tgrelid = '{s}.keys'::regclass) THEN
        CREATE TRIGGER keys_notify_update AFTER UPDATE ON {s}.keys
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION {s}.notify_changed();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                   WHERE tgname = 'keys_notify_delete' AND tgrelid = '{s}.keys'::regclass) THEN
        CREATE TRIGGER keys_notify_delete AFTER DELETE ON {s}.keys
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION {s}.notify_changed();
    END IF;
END
$do$;
COMMIT;
"#
        );
        // One query for a string or a whole collection: the key's row, joined
        // with its elements when it has any. $3 = strata's clock (Unix ms),
        // $4 = the element bound + 1, so an oversized collection shows.
        let load = format!(
            "SELECT k.kind, k.value, k.expire_at, k.version, e.element, e.value \
             FROM {s}.keys k LEFT JOIN {s}.elements e ON e.db = k.db AND e.key = k.key \
             WHERE k.db = $1 AND k.key = $2 AND k.kind IS NOT NULL \
               AND (k.expire_at IS NULL OR k.expire_at > $3) \
             ORDER BY e.element LIMIT $4"
        );
        // Rows for keys never seen, so that every key of the batch has a row
        // to lock: two instances shipping the same new key then serialise.
        let insert_placeholders = format!(
            "INSERT INTO {s}.keys (db, key, version, writer) \
             SELECT u.db, u.key, 0, '' FROM UNNEST($1::int4[], $2::bytea[]) AS u(db, key) \
             ORDER BY u.db, u.key ON CONFLICT (db, key) DO NOTHING"
        );
        let lock_keys = format!(
            "SELECT k.db, k.key, k.kind, k.version, k.expire_at FROM {s}.keys k \
             JOIN UNNEST($1::int4[], $2::bytea[]) AS u(db, key) ON k.db = u.db AND k.key = u.key \
             ORDER BY k.db, k.key FOR UPDATE OF k"
        );
        // The element statements run before the key's row changes, and each
        // of their changes counts only when its record is newer than that
        // row: a batch shipped again after a crash skips what the first
        // shipment already wrote (a missing row is older than anything).
        let older = |version: &str| {
            format!(
                "NOT EXISTS (SELECT 1 FROM {s}.keys k WHERE k.db = u.db AND k.key = u.key \
                 AND k.version >= {version})"
            )
        };
        // The batch shipped without reading its rows first guessed them:
        // every key changed by element records alone is live, of the
        // guessed kind, and older than its first record. Locks those rows,
        // in key order, and aborts the transaction when a guess is wrong.
        let expect_current = format!(
            "SELECT {s}.expect_current($5::int8 - count(*)) FROM ( \
             SELECT 1 FROM {s}.keys k \
             JOIN UNNEST($1::int4[], $2::bytea[], $3::int8[], $4::text[]) AS u(db, key, version, kind) \
             ON k.db = u.db AND k.key = u.key \
             WHERE k.version < u.version AND k.kind = u.kind \
             ORDER BY k.db, k.key FOR UPDATE OF k) fresh"
        );
        // Every element of the keys whose reset (a DEL, a type change, a
        // write of the whole value) is newer than their row.
        let delete_all_elements = format!(
            "DELETE FROM {s}.elements e USING UNNEST($1::int4[], $2::bytea[], $3::int8[]) \
             AS u(db, key, version) WHERE e.db = u.db AND e.key = u.key AND {}",
            older("u.version")
        );
        let delete_elements = format!(
            "DELETE FROM {s}.elements e \
             USING UNNEST($1::int4[], $2::bytea[], $3::bytea[], $4::int8[]) AS u(db, key, element, version) \
             WHERE e.db = u.db AND e.key = u.key AND e.element = u.element AND e.version < u.version \
             AND {}",
            older("u.version")
        );
        let upsert_elements = format!(
            "INSERT INTO {s}.elements AS t (db, key, kind, element, value, version, writer) \
             SELECT u.db, u.key, u.kind, u.element, u.value, u.version, $7 \
             FROM UNNEST($1::int4[], $2::bytea[], $3::text[], $4::bytea[], $5::bytea[], $6::int8[]) \
                  AS u(db, key, kind, element, value, version) \
             WHERE {} \
             ON CONFLICT (db, key, element) DO UPDATE \
             SET kind = excluded.kind, value = excluded.value, version = excluded.version, \
                 writer = excluded.writer \
             WHERE t.version < excluded.version",
            older("u.version")
        );
        // A string row sent with a NULL value keeps its value (EXPIRE on a
        // string does not ship the bytes again); an expiry sent as
        // KEEP_EXPIRY keeps the row's (an element change, shipped without
        // reading the row first).
        let upsert_keys = format!(
            "INSERT INTO {s}.keys AS t (db, key, kind, value, expire_at, version, writer) \
             SELECT u.db, u.key, u.kind, u.value, u.expire_at, u.version, $7 \
             FROM UNNEST($1::int4[], $2::bytea[], $3::text[], $4::bytea[], $5::int8[], $6::int8[]) \
                  AS u(db, key, kind, value, expire_at, version) \
             ON CONFLICT (db, key) DO UPDATE \
             SET kind = excluded.kind, \
                 value = CASE WHEN excluded.kind = 'string' AND excluded.value IS NULL \
                              THEN t.value ELSE excluded.value END, \
                 expire_at = CASE WHEN excluded.expire_at = {KEEP_EXPIRY} THEN t.expire_at \
                                  ELSE excluded.expire_at END, \
                 version = excluded.version, writer = excluded.writer, updated_at = now() \
             WHERE t.version < excluded.version"
        );
        let flush_db_elements = format!(
            "DELETE FROM {s}.elements e USING {s}.keys k \
             WHERE e.db = k.db AND e.key = k.key AND k.db = $1 AND k.version < $2"
        );
        let flush_db_keys = format!(
            "UPDATE {s}.keys SET kind = NULL, value = NULL, expire_at = NULL, version = $2, \
                 writer = $3, updated_at = now() \
             WHERE db = $1 AND version < $2 AND kind IS NOT NULL"
        );
        let flush_all_elements = format!(
            "DELETE FROM {s}.elements e USING {s}.keys k \
             WHERE e.db = k.db AND e.key = k.key AND k.version < $1"
        );
        let flush_all_keys = format!(
            "UPDATE {s}.keys SET kind = NULL, value = NULL, expire_at = NULL, version = $1, \
                 writer = $2, updated_at = now() \
             WHERE version < $1 AND kind IS NOT NULL"
        );
        Some(Schema {
            name: name.to_string(),
            channel,
            create,
            load,
            insert_placeholders,
            lock_keys,
            expect_current,
            delete_all_elements,
            delete_elements,
            upsert_elements,
            upsert_keys,
            flush_db_elements,
            flush_db_keys,
            flush_all_elements,
            flush_all_keys,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The notification channel, `<schema>_invalidate`.
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

/// Reads a notification payload: `<db> <writer> <hex key or *>`.
pub fn parse_payload(payload: &str) -> Option<(u32, String, Option<Vec<u8>>)> {
    let (db, rest) = payload.split_once(' ')?;
    let (writer, key) = rest.rsplit_once(' ')?;
    let db = db.parse().ok()?;
    let key = if key == "*" {
        None
    } else {
        Some(decode_hex(key)?)
    };
    Some((db, writer.to_string(), key))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    bytes
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        assert_eq!(
            parse_payload("3 node-a 6b6579"),
            Some((3, "node-a".to_string(), Some(b"key".to_vec())))
        );
        assert_eq!(
            parse_payload("0 a writer with spaces *"),
            Some((0, "a writer with spaces".to_string(), None))
        );
        // The empty key is a key.
        assert_eq!(
            parse_payload("1 w "),
            Some((1, "w".to_string(), Some(Vec::new())))
        );
        assert_eq!(parse_payload("x w 00"), None);
        assert_eq!(parse_payload("1 w 0"), None);
        assert_eq!(parse_payload("1 w zz"), None);
        assert_eq!(parse_payload("1"), None);
    }

    #[test]
    fn only_plain_schema_names() {
        assert!(Schema::new("strata").is_some());
        assert_eq!(
            Schema::new("strata").map(|s| s.channel().to_string()),
            Some("strata_invalidate".to_string())
        );
        assert!(Schema::new("a; DROP TABLE x").is_none());
        assert!(Schema::new("\"quoted\"").is_none());
        assert!(Schema::new("").is_none());
    }
}
