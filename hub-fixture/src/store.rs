//! The fixture hub's durable state: device registry, certificates, twins, the
//! cloud-to-device (C2D) queues with their feedback, and a small key/value
//! table for the hub's own state, all in one SQLite database.
//!
//! Why SQLite: nothing the hub has accepted may be lost when the hub process is
//! killed with `kill -9` and restarted on the same data directory. The database
//! runs in WAL mode with `synchronous=FULL`, and every mutating call is a single
//! transaction committed before it returns.
//!
//! Why `now_ms` parameters: the hub runs on a virtual clock (tests jump it
//! forward to expire messages), so the store never reads the system clock;
//! callers pass the virtual time in milliseconds since the Unix epoch.
//!
//! C2D semantics follow Azure IoT Hub: bounded queue depth, per-message TTL,
//! at-least-once delivery with a persisted delivery count, a maximum delivery
//! count after which a message is dead-lettered, and feedback records
//! (`success`, `expired`, `deliveryCountExceeded`, `rejected`). A message is
//! pending while it is in the `messages` table; when it leaves (completed,
//! expired, dead-lettered, rejected) a feedback row with its `seq` is written.

use std::path::Path;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::types::Type;
use rusqlite::TransactionBehavior;
use rusqlite::{params, Connection, OptionalExtension, Params, Row, Transaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

const SCHEMA_VERSION: i64 = 1;
const SCHEMA: &str = "
CREATE TABLE devices (device_id TEXT PRIMARY KEY, status TEXT NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE twins (device_id TEXT PRIMARY KEY REFERENCES devices(device_id) ON DELETE CASCADE,
  desired TEXT NOT NULL, desired_version INTEGER NOT NULL, reported TEXT NOT NULL, reported_version INTEGER NOT NULL);
-- No foreign key: certificates stay listed (revoked) after their device is deleted.
CREATE TABLE certs (serial TEXT PRIMARY KEY, device_id TEXT NOT NULL, thumbprint TEXT NOT NULL,
  not_before_ms INTEGER NOT NULL, not_after_ms INTEGER NOT NULL, issued_ms INTEGER NOT NULL, revoked_ms INTEGER);
CREATE INDEX certs_device ON certs(device_id);
CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL REFERENCES devices(device_id),
  message_id TEXT NOT NULL, payload BLOB NOT NULL, properties TEXT NOT NULL, enqueued_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL, delivery_count INTEGER NOT NULL);
CREATE INDEX messages_device ON messages(device_id, seq);
CREATE INDEX messages_expiry ON messages(expires_ms);
CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, message_id TEXT NOT NULL,
  seq INTEGER NOT NULL, status TEXT NOT NULL, at_ms INTEGER NOT NULL, delivery_count INTEGER NOT NULL);
CREATE INDEX feedback_seq ON feedback(seq);
CREATE INDEX feedback_device ON feedback(device_id, id);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";
const MSG_COLS: &str =
    "seq, device_id, message_id, payload, properties, enqueued_ms, expires_ms, delivery_count";
const CERT_COLS: &str =
    "serial, device_id, thumbprint, not_before_ms, not_after_ms, issued_ms, revoked_ms";
const FB_COLS: &str = "id, device_id, message_id, seq, status, at_ms, delivery_count";

/// Queue limits (Azure IoT Hub defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Pending (unexpired) messages per device.
    pub max_depth: usize,
    pub default_ttl_ms: i64,
    pub max_ttl_ms: i64,
    /// A message is delivered at most this many times.
    pub max_delivery_count: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            max_depth: 50,
            default_ttl_ms: 3_600_000,
            max_ttl_ms: 172_800_000,
            max_delivery_count: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("unknown device '{0}'")]
    UnknownDevice(String),
    #[error("device '{0}' already exists")]
    DeviceExists(String),
    #[error("C2D queue of device '{device_id}' is full ({depth} pending messages)")]
    QueueFull { device_id: String, depth: usize },
    #[error("C2D message TTL of {requested_ms} ms exceeds the maximum of {max_ms} ms")]
    TtlTooLong { requested_ms: i64, max_ms: i64 },
    #[error("invalid C2D message TTL of {0} ms (must be positive)")]
    InvalidTtl(i64),
    #[error("unknown C2D message seq {0}")]
    UnknownMessage(i64),
    #[error("store JSON error: {0}")]
    Json(#[from] serde_json::Error),
    #[error("store schema version {0} is newer than this build supports ({SCHEMA_VERSION})")]
    SchemaTooNew(i64),
    #[error("twin patch must be a JSON object")]
    NotAnObject,
    #[error("system random number generator failed")]
    Rng,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeviceStatus {
    Enabled,
    Disabled,
}

impl DeviceStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub device_id: String,
    pub status: DeviceStatus,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertRecord {
    /// Lower-case hex.
    pub serial: String,
    pub device_id: String,
    pub thumbprint: String,
    pub not_before_ms: i64,
    pub not_after_ms: i64,
    pub issued_ms: i64,
    pub revoked_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewMessage {
    /// Generated (random 16 bytes, hex) when `None`.
    pub message_id: Option<String>,
    pub payload: Vec<u8>,
    pub properties: Vec<(String, String)>,
    /// `None`: the configured default TTL.
    pub ttl_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedMessage {
    /// Enqueue order; also the message's handle for complete/reject.
    pub seq: i64,
    pub device_id: String,
    pub message_id: String,
    pub payload: Vec<u8>,
    pub properties: Vec<(String, String)>,
    pub enqueued_ms: i64,
    pub expires_ms: i64,
    /// How many times the hub has taken it for delivery.
    pub delivery_count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeedbackStatus {
    #[serde(rename = "success")]
    Success,
    #[serde(rename = "expired")]
    Expired,
    #[serde(rename = "deliveryCountExceeded")]
    DeliveryCountExceeded,
    #[serde(rename = "rejected")]
    Rejected,
}

impl FeedbackStatus {
    /// The Azure feedback status string (same as the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Expired => "expired",
            Self::DeliveryCountExceeded => "deliveryCountExceeded",
            Self::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    pub id: i64,
    pub device_id: String,
    pub message_id: String,
    pub seq: i64,
    pub status: FeedbackStatus,
    pub at_ms: i64,
    pub delivery_count: u32,
}

/// Device twin; both documents are JSON objects, versions start at 0 (empty).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Twin {
    pub desired: Value,
    pub desired_version: i64,
    pub reported: Value,
    pub reported_version: i64,
}

/// What take_deliverable did besides returning messages; the hub journals these.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Taken {
    pub messages: Vec<QueuedMessage>,
    pub feedback: Vec<Feedback>,
}

/// The hub's durable state. Every mutating call commits before returning.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    config: StoreConfig,
}

type Res<T> = Result<T, StoreError>;

/// Decodes a text column as JSON (`bare`: the column holds an enum's serde name).
fn col<T: DeserializeOwned>(r: &Row, i: usize, bare: bool) -> rusqlite::Result<T> {
    let s: String = r.get(i)?;
    let v = if bare {
        serde_json::from_value(Value::String(s))
    } else {
        serde_json::from_str(&s)
    };
    v.map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e)))
}

fn msg_row(r: &Row) -> rusqlite::Result<QueuedMessage> {
    Ok(QueuedMessage {
        seq: r.get(0)?,
        device_id: r.get(1)?,
        message_id: r.get(2)?,
        payload: r.get(3)?,
        properties: col(r, 4, false)?,
        enqueued_ms: r.get(5)?,
        expires_ms: r.get(6)?,
        delivery_count: r.get(7)?,
    })
}

fn cert_row(r: &Row) -> rusqlite::Result<CertRecord> {
    Ok(CertRecord {
        serial: r.get(0)?,
        device_id: r.get(1)?,
        thumbprint: r.get(2)?,
        not_before_ms: r.get(3)?,
        not_after_ms: r.get(4)?,
        issued_ms: r.get(5)?,
        revoked_ms: r.get(6)?,
    })
}

fn fb_row(r: &Row) -> rusqlite::Result<Feedback> {
    Ok(Feedback {
        id: r.get(0)?,
        device_id: r.get(1)?,
        message_id: r.get(2)?,
        seq: r.get(3)?,
        status: col(r, 4, true)?,
        at_ms: r.get(5)?,
        delivery_count: r.get(6)?,
    })
}

fn device_row(r: &Row) -> rusqlite::Result<DeviceRecord> {
    Ok(DeviceRecord {
        device_id: r.get(0)?,
        status: col(r, 1, true)?,
        created_ms: r.get(2)?,
    })
}

type RowFn<T> = fn(&Row) -> rusqlite::Result<T>;

fn all<T>(conn: &Connection, sql: &str, p: impl Params, f: RowFn<T>) -> Res<Vec<T>> {
    let mut st = conn.prepare_cached(sql)?;
    let rows = st.query_map(p, f)?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn one<T>(conn: &Connection, sql: &str, p: impl Params, f: RowFn<T>) -> Res<Option<T>> {
    Ok(conn.query_row(sql, p, f).optional()?)
}

fn device_in(conn: &Connection, device_id: &str) -> Res<Option<DeviceRecord>> {
    let sql = "SELECT device_id, status, created_ms FROM devices WHERE device_id = ?1";
    one(conn, sql, [device_id], device_row)
}

fn require_device(conn: &Connection, device_id: &str) -> Res<DeviceRecord> {
    device_in(conn, device_id)?.ok_or_else(|| StoreError::UnknownDevice(device_id.to_owned()))
}

fn messages_where(conn: &Connection, cond: &str, p: impl Params) -> Res<Vec<QueuedMessage>> {
    let sql = format!("SELECT {MSG_COLS} FROM messages WHERE {cond} ORDER BY seq");
    all(conn, &sql, p, msg_row)
}

fn certificate_in(conn: &Connection, serial: &str) -> Res<Option<CertRecord>> {
    let sql = format!("SELECT {CERT_COLS} FROM certs WHERE serial = ?1");
    one(conn, &sql, [serial.to_ascii_lowercase()], cert_row)
}

/// Removes a pending message and records its feedback.
fn finish(tx: &Transaction, seq: i64, status: FeedbackStatus, now_ms: i64) -> Res<Feedback> {
    let sql = format!(
        "INSERT INTO feedback (device_id, message_id, seq, status, at_ms, delivery_count)
         SELECT device_id, message_id, seq, ?2, ?3, delivery_count FROM messages WHERE seq = ?1
         RETURNING {FB_COLS}"
    );
    let fb = tx.query_row(&sql, params![seq, status.as_str(), now_ms], fb_row)?;
    tx.execute("DELETE FROM messages WHERE seq = ?1", [seq])?;
    Ok(fb)
}

fn twin_in(conn: &Connection, device_id: &str) -> Res<Twin> {
    let sql = "SELECT desired, desired_version, reported, reported_version FROM twins WHERE device_id = ?1";
    let f: RowFn<Twin> = |r| {
        let (desired, desired_version) = (col(r, 0, false)?, r.get(1)?);
        Ok(Twin {
            desired,
            desired_version,
            reported: col(r, 2, false)?,
            reported_version: r.get(3)?,
        })
    };
    one(conn, sql, [device_id], f)?.ok_or_else(|| StoreError::UnknownDevice(device_id.to_owned()))
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path, config: StoreConfig) -> Res<Store> {
        Self::init(Connection::open(path)?, config)
    }

    /// A throw-away store (tests).
    pub fn open_in_memory(config: StoreConfig) -> Res<Store> {
        Self::init(Connection::open_in_memory()?, config)
    }

    fn init(mut conn: Connection, config: StoreConfig) -> Res<Store> {
        conn.busy_timeout(Duration::from_secs(5))?;
        // Answers with the resulting mode ("memory" for in-memory databases).
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew(version));
        }
        if version == 0 {
            tx.execute_batch(SCHEMA)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        tx.commit()?;
        Ok(Store { conn, config })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    fn tx(&mut self) -> Res<Transaction<'_>> {
        Ok(self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    /// Registers an enabled device with an empty twin (both versions 0).
    pub fn register_device(&mut self, device_id: &str, now_ms: i64) -> Res<DeviceRecord> {
        let tx = self.tx()?;
        if device_in(&tx, device_id)?.is_some() {
            return Err(StoreError::DeviceExists(device_id.to_owned()));
        }
        let status = DeviceStatus::Enabled;
        tx.execute(
            "INSERT INTO devices (device_id, status, created_ms) VALUES (?1, ?2, ?3)",
            params![device_id, status.as_str(), now_ms],
        )?;
        tx.execute(
            "INSERT INTO twins VALUES (?1, '{}', 0, '{}', 0)",
            [device_id],
        )?;
        tx.commit()?;
        Ok(DeviceRecord {
            device_id: device_id.to_owned(),
            status,
            created_ms: now_ms,
        })
    }

    pub fn device(&self, device_id: &str) -> Res<Option<DeviceRecord>> {
        device_in(&self.conn, device_id)
    }

    /// All devices, by id.
    pub fn devices(&self) -> Res<Vec<DeviceRecord>> {
        let sql = "SELECT device_id, status, created_ms FROM devices ORDER BY device_id";
        all(&self.conn, sql, [], device_row)
    }

    pub fn set_device_status(
        &mut self,
        device_id: &str,
        status: DeviceStatus,
    ) -> Res<DeviceRecord> {
        let tx = self.tx()?;
        let sql = "UPDATE devices SET status = ?2 WHERE device_id = ?1";
        tx.execute(sql, params![device_id, status.as_str()])?;
        let rec = require_device(&tx, device_id)?;
        tx.commit()?;
        Ok(rec)
    }

    /// Deletes the device, its twin and queue (pending messages get feedback
    /// `rejected`, returned); its certificates are marked revoked at now_ms
    /// (they stay listed). Its feedback records stay too.
    pub fn delete_device(&mut self, device_id: &str, now_ms: i64) -> Res<Vec<Feedback>> {
        let tx = self.tx()?;
        require_device(&tx, device_id)?;
        let mut feedback = Vec::new();
        for m in messages_where(&tx, "device_id = ?1", [device_id])? {
            feedback.push(finish(&tx, m.seq, FeedbackStatus::Rejected, now_ms)?);
        }
        let sql = "UPDATE certs SET revoked_ms = ?2 WHERE device_id = ?1 AND revoked_ms IS NULL";
        tx.execute(sql, params![device_id, now_ms])?;
        tx.execute("DELETE FROM twins WHERE device_id = ?1", [device_id])?;
        tx.execute("DELETE FROM devices WHERE device_id = ?1", [device_id])?;
        tx.commit()?;
        Ok(feedback)
    }

    /// Records an issued certificate (serial stored lower-case); the device must exist.
    pub fn add_certificate(&mut self, cert: &CertRecord) -> Res<()> {
        let tx = self.tx()?;
        require_device(&tx, &cert.device_id)?;
        let c = cert;
        tx.execute(
            &format!("INSERT INTO certs ({CERT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
            params![
                c.serial.to_ascii_lowercase(),
                c.device_id,
                c.thumbprint,
                c.not_before_ms,
                c.not_after_ms,
                c.issued_ms,
                c.revoked_ms
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Marks revoked; returns the record (None if the serial is unknown).
    /// Revoking twice keeps the first revoked_ms.
    pub fn revoke_certificate(&mut self, serial: &str, now_ms: i64) -> Res<Option<CertRecord>> {
        let tx = self.tx()?;
        let sql = "UPDATE certs SET revoked_ms = ?2 WHERE serial = ?1 AND revoked_ms IS NULL";
        tx.execute(sql, params![serial.to_ascii_lowercase(), now_ms])?;
        let rec = certificate_in(&tx, serial)?;
        tx.commit()?;
        Ok(rec)
    }

    pub fn certificate(&self, serial: &str) -> Res<Option<CertRecord>> {
        certificate_in(&self.conn, serial)
    }

    /// The device's certificates in issue order (revoked ones included).
    pub fn certificates_of(&self, device_id: &str) -> Res<Vec<CertRecord>> {
        let sql =
            format!("SELECT {CERT_COLS} FROM certs WHERE device_id = ?1 ORDER BY issued_ms, rowid");
        all(&self.conn, &sql, [device_id], cert_row)
    }

    /// Serials of all revoked certificates, in revocation order.
    pub fn revoked_serials(&self) -> Res<Vec<String>> {
        let sql =
            "SELECT serial FROM certs WHERE revoked_ms IS NOT NULL ORDER BY revoked_ms, serial";
        all(&self.conn, sql, [], |r| r.get(0))
    }

    /// Queues a message; message_id is generated (random 16 bytes, hex) when
    /// None. The depth limit counts the device's messages unexpired at now_ms.
    pub fn enqueue(&mut self, device_id: &str, msg: NewMessage, now_ms: i64) -> Res<QueuedMessage> {
        let max_ms = self.config.max_ttl_ms;
        let ttl = match msg.ttl_ms {
            None => self.config.default_ttl_ms,
            Some(t) if t <= 0 => return Err(StoreError::InvalidTtl(t)),
            Some(t) if t > max_ms => {
                return Err(StoreError::TtlTooLong {
                    requested_ms: t,
                    max_ms,
                })
            }
            Some(t) => t,
        };
        let message_id = match msg.message_id {
            Some(id) => id,
            None => {
                let mut b = [0u8; 16];
                SystemRandom::new()
                    .fill(&mut b)
                    .map_err(|_| StoreError::Rng)?;
                hex::encode(b)
            }
        };
        let max_depth = self.config.max_depth;
        let tx = self.tx()?;
        require_device(&tx, device_id)?;
        let live = "device_id = ?1 AND expires_ms > ?2";
        let depth = messages_where(&tx, live, params![device_id, now_ms])?.len();
        if depth >= max_depth {
            return Err(StoreError::QueueFull {
                device_id: device_id.to_owned(),
                depth,
            });
        }
        let sql = format!(
            "INSERT INTO messages ({MSG_COLS}) VALUES (NULL, ?1, ?2, ?3, ?4, ?5, ?6, 0) RETURNING {MSG_COLS}"
        );
        let props = serde_json::to_string(&msg.properties)?;
        let expires_ms = now_ms.saturating_add(ttl);
        let p = params![
            device_id,
            message_id,
            msg.payload,
            props,
            now_ms,
            expires_ms
        ];
        let m = tx.query_row(&sql, p, msg_row)?;
        tx.commit()?;
        Ok(m)
    }

    /// Messages not completed / expired / dead-lettered, in order. Does not
    /// mutate (and has no clock), so it may list messages already due to expire.
    pub fn pending(&self, device_id: &str) -> Res<Vec<QueuedMessage>> {
        messages_where(&self.conn, "device_id = ?1", [device_id])
    }

    pub fn pending_count(&self, device_id: &str) -> Res<usize> {
        let sql = "SELECT COUNT(*) FROM messages WHERE device_id = ?1";
        let n: i64 = self.conn.query_row(sql, [device_id], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// In one transaction: expire this device's messages with expires_ms <=
    /// now_ms (feedback expired), dead-letter pending ones whose delivery_count
    /// >= max_delivery_count and that are not in `in_flight` (feedback
    /// deliveryCountExceeded), then take up to `limit` next pending messages in
    /// seq order whose seq is not in `in_flight`, incrementing and persisting
    /// their delivery_count; returns them (with the incremented count) and the
    /// feedback produced. An unknown device has no messages: empty result.
    pub fn take_deliverable(
        &mut self,
        device_id: &str,
        now_ms: i64,
        in_flight: &[i64],
        limit: usize,
    ) -> Res<Taken> {
        let max = self.config.max_delivery_count;
        let tx = self.tx()?;
        let mut taken = Taken::default();
        for mut m in messages_where(&tx, "device_id = ?1", [device_id])? {
            let flying = in_flight.contains(&m.seq);
            if m.expires_ms <= now_ms {
                taken
                    .feedback
                    .push(finish(&tx, m.seq, FeedbackStatus::Expired, now_ms)?);
            } else if m.delivery_count >= max && !flying {
                let status = FeedbackStatus::DeliveryCountExceeded;
                taken.feedback.push(finish(&tx, m.seq, status, now_ms)?);
            } else if !flying && taken.messages.len() < limit {
                m.delivery_count += 1;
                let sql = "UPDATE messages SET delivery_count = ?2 WHERE seq = ?1";
                tx.execute(sql, params![m.seq, m.delivery_count])?;
                taken.messages.push(m);
            }
        }
        tx.commit()?;
        Ok(taken)
    }

    fn finish_one(
        &mut self,
        seq: i64,
        status: FeedbackStatus,
        now_ms: i64,
    ) -> Res<Option<Feedback>> {
        let tx = self.tx()?;
        let Some(m) = messages_where(&tx, "seq = ?1", [seq])?.pop() else {
            // Every message that left the queue has a feedback row with its seq.
            let sql = "SELECT EXISTS (SELECT 1 FROM feedback WHERE seq = ?1)";
            let known: bool = tx.query_row(sql, [seq], |r| r.get(0))?;
            return if known {
                Ok(None)
            } else {
                Err(StoreError::UnknownMessage(seq))
            };
        };
        let fb = finish(&tx, m.seq, status, now_ms)?;
        tx.commit()?;
        Ok(Some(fb))
    }

    /// PUBACK received: Ok(Some(success feedback)) when it completed now,
    /// Ok(None) when it had already left the queue (duplicate ack after
    /// redelivery, expiry...), UnknownMessage if no message ever had this seq.
    pub fn complete(&mut self, seq: i64, now_ms: i64) -> Res<Option<Feedback>> {
        self.finish_one(seq, FeedbackStatus::Success, now_ms)
    }

    /// Like [`Store::complete`], with feedback `rejected`.
    pub fn reject(&mut self, seq: i64, now_ms: i64) -> Res<Option<Feedback>> {
        self.finish_one(seq, FeedbackStatus::Rejected, now_ms)
    }

    /// Expire every device's due messages (the hub calls this when the virtual
    /// clock jumps). Returns the feedback produced.
    pub fn expire_due(&mut self, now_ms: i64) -> Res<Vec<Feedback>> {
        let tx = self.tx()?;
        let mut feedback = Vec::new();
        for m in messages_where(&tx, "expires_ms <= ?1", [now_ms])? {
            feedback.push(finish(&tx, m.seq, FeedbackStatus::Expired, now_ms)?);
        }
        tx.commit()?;
        Ok(feedback)
    }

    /// Feedback records (of one device, or of all), in id order.
    pub fn feedback(&self, device_id: Option<&str>) -> Res<Vec<Feedback>> {
        let sql = format!(
            "SELECT {FB_COLS} FROM feedback WHERE ?1 IS NULL OR device_id = ?1 ORDER BY id"
        );
        all(&self.conn, &sql, [device_id], fb_row)
    }

    pub fn twin(&self, device_id: &str) -> Res<Twin> {
        twin_in(&self.conn, device_id)
    }

    /// JSON merge patch (RFC 7386: null deletes a key, objects merge
    /// recursively) on desired; returns the new twin. Version +1 per patch.
    pub fn patch_desired(&mut self, device_id: &str, patch: &Value) -> Res<Twin> {
        self.patch_twin(device_id, patch, false)
    }

    /// Same as [`Store::patch_desired`], on the reported document.
    pub fn patch_reported(&mut self, device_id: &str, patch: &Value) -> Res<Twin> {
        self.patch_twin(device_id, patch, true)
    }

    fn patch_twin(&mut self, device_id: &str, patch: &Value, reported: bool) -> Res<Twin> {
        if !patch.is_object() {
            return Err(StoreError::NotAnObject);
        }
        let tx = self.tx()?;
        let mut t = twin_in(&tx, device_id)?;
        let (doc, version) = match reported {
            true => (&mut t.reported, &mut t.reported_version),
            false => (&mut t.desired, &mut t.desired_version),
        };
        merge_patch(doc, patch);
        *version += 1;
        tx.execute(
            "UPDATE twins SET desired = ?2, desired_version = ?3, reported = ?4, reported_version = ?5 WHERE device_id = ?1",
            params![device_id, t.desired.to_string(), t.desired_version, t.reported.to_string(), t.reported_version],
        )?;
        tx.commit()?;
        Ok(t)
    }

    pub fn meta(&self, key: &str) -> Res<Option<String>> {
        let sql = "SELECT value FROM meta WHERE key = ?1";
        one(&self.conn, sql, [key], |r| r.get(0))
    }

    pub fn set_meta(&mut self, key: &str, value: &str) -> Res<()> {
        let tx = self.tx()?;
        let sql = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)";
        tx.execute(sql, [key, value])?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use FeedbackStatus::*;

    const T0: i64 = 1_700_000_000_000;
    const H: i64 = 3_600_000;
    type Took = (Vec<(i64, u32)>, Vec<(i64, FeedbackStatus, u32)>);

    fn store_with(config: StoreConfig) -> Store {
        let mut s = Store::open_in_memory(config).unwrap();
        s.register_device("d1", T0).unwrap();
        s
    }

    fn store() -> Store {
        store_with(StoreConfig::default())
    }

    fn msg(ttl_ms: Option<i64>) -> NewMessage {
        let payload = b"m".to_vec();
        NewMessage {
            message_id: None,
            payload,
            properties: vec![],
            ttl_ms,
        }
    }

    fn put(s: &mut Store, ttl_ms: Option<i64>) -> i64 {
        s.enqueue("d1", msg(ttl_ms), T0).unwrap().seq
    }

    /// The error's Debug text.
    fn err<T>(r: Res<T>) -> String {
        r.map_or_else(|e| format!("{e:?}"), |_| "no error".into())
    }

    fn cert(serial: &str, issued_ms: i64) -> CertRecord {
        let (serial, device_id, thumbprint) = (serial.into(), "d1".into(), "tp".into());
        let (not_before_ms, not_after_ms, revoked_ms) = (issued_ms, issued_ms + H, None);
        let c = CertRecord {
            serial,
            device_id,
            thumbprint,
            not_before_ms,
            not_after_ms,
            issued_ms,
            revoked_ms,
        };
        c
    }

    /// take_deliverable: (seq, delivery_count) taken, (seq, status, delivery_count) feedback.
    fn take(s: &mut Store, now: i64, in_flight: &[i64], limit: usize) -> Took {
        let t = s.take_deliverable("d1", now, in_flight, limit).unwrap();
        let fb = t
            .feedback
            .iter()
            .map(|f| (f.seq, f.status, f.delivery_count));
        let taken = t.messages.iter().map(|m| (m.seq, m.delivery_count));
        (taken.collect(), fb.collect())
    }

    fn pending(s: &Store) -> Vec<(i64, u32)> {
        let p = s.pending("d1").unwrap();
        p.iter().map(|m| (m.seq, m.delivery_count)).collect()
    }

    #[test]
    fn round_trip_in_order_with_feedback() {
        let mut s = store();
        assert_eq!(err(s.register_device("d1", T0)), r#"DeviceExists("d1")"#);
        assert_eq!(err(s.enqueue("x", msg(None), T0)), r#"UnknownDevice("x")"#);
        s.set_device_status("d1", DeviceStatus::Disabled).unwrap(); // still gets C2D
        let a = s.enqueue("d1", msg(None), T0).unwrap();
        let props = vec![("k".to_string(), "v".to_string())];
        let (id, properties) = (Some("mid-b".to_string()), props.clone());
        let m = NewMessage {
            message_id: id,
            properties,
            ..msg(None)
        };
        let (b, c) = (s.enqueue("d1", m, T0).unwrap().seq, put(&mut s, None));
        assert!(a.message_id.len() == 32 && a.message_id.chars().all(|ch| ch.is_ascii_hexdigit()));
        assert!(a.seq < b && b < c);
        let t = s.take_deliverable("d1", T0 + 10, &[], 2).unwrap();
        let (m0, m1) = (&t.messages[0], &t.messages[1]);
        assert_eq!((&m0.message_id, &m0.payload), (&a.message_id, &a.payload));
        assert_eq!((&*m1.message_id, &m1.properties), ("mid-b", &props));
        assert_eq!((m0.seq, m1.seq, t.messages.len()), (a.seq, b, 2));
        assert_eq!((m0.delivery_count, m1.delivery_count), (1, 1));
        let got = take(&mut s, T0 + 10, &[a.seq, b], 10);
        assert_eq!(got, (vec![(c, 1)], vec![]));
        let fb = s.complete(a.seq, T0 + 20).unwrap().unwrap();
        assert_eq!((fb.status, fb.seq, fb.at_ms), (Success, a.seq, T0 + 20));
        assert_eq!((fb.delivery_count, &fb.message_id), (1, &a.message_id));
        assert_eq!(fb.device_id, "d1");
        assert_eq!(pending(&s), [(b, 1), (c, 1)]);
        assert_eq!(s.pending_count("d1").unwrap(), 2);
        // Taken but not completed: taken again in the next session.
        let got = take(&mut s, T0 + 30, &[], 9);
        assert_eq!(got, (vec![(b, 2), (c, 2)], vec![]));
        assert_eq!(s.feedback(Some("d1")).unwrap(), [fb.clone()]);
        assert_eq!(s.feedback(None).unwrap(), [fb]);
        assert!(s.feedback(Some("other")).unwrap().is_empty());
        let json = serde_json::to_value(DeliveryCountExceeded).unwrap();
        assert_eq!(json, DeliveryCountExceeded.as_str());
    }

    #[test]
    fn queue_depth_limit() {
        let mut s = store();
        let first = put(&mut s, None);
        for _ in 1..50 {
            put(&mut s, None);
        }
        let full = err(s.enqueue("d1", msg(None), T0));
        assert_eq!(full, r#"QueueFull { device_id: "d1", depth: 50 }"#);
        assert_eq!(s.pending_count("d1").unwrap(), 50);
        take(&mut s, T0, &[], 1);
        s.complete(first, T0).unwrap().unwrap();
        put(&mut s, None);
        assert_eq!(s.pending_count("d1").unwrap(), 50);
    }

    #[test]
    fn ttl_rules_and_expiry() {
        let mut s = store();
        let short = s.enqueue("d1", msg(None), T0).unwrap();
        assert_eq!(short.expires_ms, T0 + H);
        let too_long = err(s.enqueue("d1", msg(Some(49 * H)), T0));
        let want = "TtlTooLong { requested_ms: 176400000, max_ms: 172800000 }"; // 49 h, 48 h
        assert_eq!(too_long, want);
        assert_eq!(err(s.enqueue("d1", msg(Some(0)), T0)), "InvalidTtl(0)");
        let long = s.enqueue("d1", msg(Some(48 * H)), T0).unwrap();
        assert_eq!(long.expires_ms, T0 + 48 * H);
        let (short, long) = (short.seq, long.seq);
        let got = take(&mut s, T0 + 2 * H, &[], 10);
        assert_eq!(got, (vec![(long, 1)], vec![(short, Expired, 0)]));
        let got = take(&mut s, T0 + 47 * H, &[], 10);
        assert_eq!(got, (vec![(long, 2)], vec![]));
        assert!(s.expire_due(T0 + 48 * H - 1).unwrap().is_empty());
        let fb = s.expire_due(T0 + 48 * H).unwrap();
        let fb: Vec<_> = fb
            .iter()
            .map(|f| (f.seq, f.status, f.delivery_count))
            .collect();
        assert_eq!(fb, [(long, Expired, 2)]);
        assert!(pending(&s).is_empty());
        assert_eq!(s.complete(long, T0 + 48 * H).unwrap(), None);
    }

    #[test]
    fn dead_letter_after_max_deliveries() {
        let mut s = store();
        let m = put(&mut s, None);
        for i in 1..=10 {
            assert_eq!(take(&mut s, T0 + i, &[], 9), (vec![(m, i as u32)], vec![]));
        }
        let got = take(&mut s, T0 + 11, &[], 10);
        assert_eq!(got, (vec![], vec![(m, DeliveryCountExceeded, 10)]));
        assert!(pending(&s).is_empty());
        assert_eq!(s.complete(m, T0 + 12).unwrap(), None);
    }

    #[test]
    fn in_flight_messages_are_skipped_not_dead_lettered() {
        let mut s = store_with(StoreConfig {
            max_delivery_count: 2,
            ..Default::default()
        });
        let a = put(&mut s, None);
        take(&mut s, T0, &[], 1);
        assert_eq!(take(&mut s, T0, &[], 1), (vec![(a, 2)], vec![]));
        let b = put(&mut s, None);
        // a is at the maximum but in flight: neither taken again nor dead-lettered.
        assert_eq!(take(&mut s, T0, &[a], 10), (vec![(b, 1)], vec![]));
        assert_eq!(take(&mut s, T0, &[a, b], 10), (vec![], vec![]));
        assert_eq!(pending(&s), [(a, 2), (b, 1)]);
        let fb = s.complete(a, T0).unwrap().unwrap();
        assert_eq!((fb.status, fb.delivery_count), (Success, 2));
        // Out of flight (connection lost), it is dead-lettered.
        assert_eq!(take(&mut s, T0, &[], 10), (vec![(b, 2)], vec![]));
        let got = take(&mut s, T0, &[], 10);
        assert_eq!(got, (vec![], vec![(b, DeliveryCountExceeded, 2)]));
    }

    #[test]
    fn survives_reopen_without_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.sqlite");
        let mut s = Store::open(&path, StoreConfig::default()).unwrap();
        let pragma = |s: &Store, p: &str| {
            let v = s.conn.pragma_query_value(None, p, |r| r.get(0));
            v.map(|v: rusqlite::types::Value| format!("{v:?}")).unwrap()
        };
        assert_eq!(pragma(&s, "journal_mode"), r#"Text("wal")"#);
        assert_eq!(pragma(&s, "synchronous"), "Integer(2)"); // FULL
        s.register_device("d1", T0).unwrap();
        s.register_device("d2", T0 + 1).unwrap();
        s.set_device_status("d2", DeviceStatus::Disabled).unwrap();
        s.add_certificate(&cert("0a1b", T0)).unwrap();
        s.add_certificate(&cert("0c2d", T0 + 5)).unwrap();
        s.revoke_certificate("0a1b", T0 + 6).unwrap();
        s.patch_desired("d1", &json!({"fw": {"v": "1.2"}})).unwrap();
        s.patch_reported("d1", &json!({"uptime": 5})).unwrap();
        let (a, b) = (put(&mut s, None), put(&mut s, Some(48 * H)));
        take(&mut s, T0, &[], 1);
        s.set_meta("clock_offset_ms", "41").unwrap();
        s.set_meta("clock_offset_ms", "42").unwrap();
        let (devices, twin) = (s.devices().unwrap(), s.twin("d1").unwrap());
        let certs = s.certificates_of("d1").unwrap();
        // Simulate kill -9: no destructor, no close, no checkpoint.
        std::mem::forget(s);

        let mut s = Store::open(&path, StoreConfig::default()).unwrap();
        assert_eq!(s.devices().unwrap(), devices);
        assert_eq!(devices[1].status, DeviceStatus::Disabled);
        assert_eq!(s.certificates_of("d1").unwrap(), certs);
        assert_eq!((&*certs[0].serial, &*certs[1].serial), ("0a1b", "0c2d"));
        assert_eq!(certs[0].revoked_ms, Some(T0 + 6));
        assert_eq!(s.twin("d1").unwrap(), twin);
        assert_eq!((twin.desired_version, twin.reported_version), (1, 1));
        assert_eq!(twin.desired, json!({"fw": {"v": "1.2"}}));
        assert_eq!(pending(&s), [(a, 1), (b, 0)]);
        assert_eq!(s.pending("d1").unwrap()[1].expires_ms, T0 + 48 * H);
        assert_eq!(s.meta("clock_offset_ms").unwrap().as_deref(), Some("42"));
        assert_eq!(s.meta("nope").unwrap(), None);
        assert_eq!(take(&mut s, T0, &[], 1).0, [(a, 2)]);
        assert!(put(&mut s, None) > b, "seq continues after the old ones");
    }

    #[test]
    fn schema_newer_than_build_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.sqlite");
        drop(Store::open(&path, StoreConfig::default()).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        let opened = Store::open(&path, StoreConfig::default());
        assert_eq!(err(opened), "SchemaTooNew(2)");
    }

    #[test]
    fn duplicate_ack_reject_and_delete_device() {
        let mut s = store();
        let a = put(&mut s, None);
        take(&mut s, T0, &[], 10);
        assert!(s.complete(a, T0 + 1).unwrap().is_some());
        assert_eq!(s.complete(a, T0 + 2).unwrap(), None);
        assert_eq!(err(s.complete(9999, T0)), "UnknownMessage(9999)");
        let r = put(&mut s, None);
        let fb = s.reject(r, T0 + 3).unwrap();
        assert_eq!(fb.map(|f| f.status), Some(Rejected));
        assert_eq!(s.reject(r, T0 + 4).unwrap(), None);

        s.add_certificate(&cert("AB01", T0)).unwrap();
        let ghost = CertRecord {
            device_id: "gh".into(),
            ..cert("cd02", T0)
        };
        assert_eq!(err(s.add_certificate(&ghost)), r#"UnknownDevice("gh")"#);
        let (b, c) = (put(&mut s, None), put(&mut s, None));
        let fb = s.delete_device("d1", T0 + 100).unwrap();
        let fb: Vec<_> = fb.iter().map(|f| (f.seq, f.status, f.at_ms)).collect();
        assert_eq!(fb, [(b, Rejected, T0 + 100), (c, Rejected, T0 + 100)]);
        assert_eq!(s.device("d1").unwrap(), None);
        assert_eq!(err(s.twin("d1")), r#"UnknownDevice("d1")"#);
        assert_eq!(err(s.enqueue("d1", msg(None), T0)), err(s.twin("d1")));
        assert_eq!(err(s.delete_device("d1", T0)), r#"UnknownDevice("d1")"#);
        assert_eq!(s.pending_count("d1").unwrap(), 0);
        let cert = s.certificate("ab01").unwrap().unwrap();
        assert_eq!((&*cert.serial, cert.revoked_ms), ("ab01", Some(T0 + 100)));
        assert_eq!(s.certificates_of("d1").unwrap(), [cert]);
        assert_eq!(s.revoked_serials().unwrap(), ["ab01"]);
        assert_eq!(s.feedback(Some("d1")).unwrap().len(), 4); // kept
        s.register_device("d1", T0 + 200).unwrap();
        assert_eq!(s.twin("d1").unwrap().desired, json!({}));
    }

    #[test]
    fn twin_merge_patch() {
        let mut s = store();
        let t = s.twin("d1").unwrap();
        assert_eq!((&t.desired, t.desired_version), (&json!({}), 0));
        assert_eq!((&t.reported, t.reported_version), (&json!({}), 0));
        let patch = json!({"a": {"b": 1, "c": 2}, "d": 1, "n": {"x": null}});
        let t = s.patch_desired("d1", &patch).unwrap();
        let want = json!({"a": {"b": 1, "c": 2}, "d": 1, "n": {}});
        assert_eq!((t.desired, t.desired_version), (want, 1));
        let patch = json!({"a": {"b": null, "e": [1, 2]}, "d": null, "n": 5});
        let t = s.patch_desired("d1", &patch).unwrap();
        let want = json!({"a": {"c": 2, "e": [1, 2]}, "n": 5});
        assert_eq!((&t.desired, t.desired_version), (&want, 2));
        let t = s.patch_reported("d1", &json!({"fw": "1.0"})).unwrap();
        let fw = json!({"fw": "1.0"});
        assert_eq!((&t.reported, t.reported_version), (&fw, 1));
        assert_eq!((&t.desired, t.desired_version), (&want, 2));
        assert_eq!(s.twin("d1").unwrap(), t);
        assert_eq!(err(s.patch_desired("d1", &json!([1]))), "NotAnObject");
        let unknown = err(s.patch_reported("zz", &json!({})));
        assert_eq!(unknown, r#"UnknownDevice("zz")"#);
        assert_eq!(s.twin("d1").unwrap(), t);
    }

    #[test]
    fn revoke_keeps_first_time() {
        let mut s = store();
        s.add_certificate(&cert("01ff", T0)).unwrap();
        assert!(s.revoked_serials().unwrap().is_empty());
        let r = s.revoke_certificate("01ff", T0 + 100).unwrap();
        assert_eq!(r.unwrap().revoked_ms, Some(T0 + 100));
        let r = s.revoke_certificate("01FF", T0 + 200).unwrap();
        assert_eq!(r.unwrap().revoked_ms, Some(T0 + 100));
        let r = s.certificate("01ff").unwrap();
        assert_eq!(r.unwrap().revoked_ms, Some(T0 + 100));
        assert_eq!(s.revoke_certificate("beef", T0).unwrap(), None);
        assert_eq!(s.revoked_serials().unwrap(), ["01ff"]);
    }
}
