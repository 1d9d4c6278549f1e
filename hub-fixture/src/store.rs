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
use serde_json::Value;

use crate::serial::Serial;

const SCHEMA_VERSION: i64 = 2;
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
/// Version 2: persistent MQTT sessions (see `store_sessions.rs`), serials in canonical form.
const SCHEMA_V2: &str = "
CREATE TABLE mqtt_sessions (device_id TEXT PRIMARY KEY REFERENCES devices(device_id) ON DELETE CASCADE,
  subscriptions TEXT NOT NULL, in_flight TEXT NOT NULL);
";
/// IoT Hub's largest C2D message: 64 KB, properties included.
pub const MAX_C2D_MESSAGE: usize = 64 * 1024;
/// IoT Hub's largest twin section (desired or reported properties): 32 KB.
pub const MAX_TWIN_SECTION: usize = 32 * 1024;
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
    /// TTL of a message sent without one, milliseconds (default 1 h).
    pub default_ttl_ms: i64,
    /// Longest TTL a message may ask for, milliseconds (default 48 h); longer is refused.
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

/// Why a store operation failed: a rule of the C2D queue or the twin, or the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (I/O, locking, a corrupt row...).
    #[error("store database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// No device with this id is registered.
    #[error("unknown device '{0}'")]
    UnknownDevice(String),
    /// Registration of an id that is already registered.
    #[error("device '{0}' already exists")]
    DeviceExists(String),
    /// The device already has [`StoreConfig::max_depth`] unexpired messages queued.
    #[error("C2D queue of device '{device_id}' is full ({depth} pending messages)")]
    QueueFull {
        /// The device whose queue is full.
        device_id: String,
        /// Its unexpired pending messages at the time of the refusal.
        depth: usize,
    },
    /// The message asks for a TTL above [`StoreConfig::max_ttl_ms`].
    #[error("C2D message TTL of {requested_ms} ms exceeds the maximum of {max_ms} ms")]
    TtlTooLong {
        /// The TTL asked for, milliseconds.
        requested_ms: i64,
        /// The configured maximum, milliseconds.
        max_ms: i64,
    },
    /// The message asks for a TTL of zero or less, milliseconds.
    #[error("invalid C2D message TTL of {0} ms (must be positive)")]
    InvalidTtl(i64),
    /// No message ever had this `seq` (neither queued nor with feedback).
    #[error("unknown C2D message seq {0}")]
    UnknownMessage(i64),
    /// A JSON column (properties, twin, session) could not be written or read back.
    #[error("store JSON error: {0}")]
    Json(#[from] serde_json::Error),
    /// The database was written by a newer build (its `user_version`); it is left untouched.
    #[error("store schema version {0} is newer than this build supports ({SCHEMA_VERSION})")]
    SchemaTooNew(i64),
    /// A twin patch that is not a JSON object.
    #[error("twin patch must be a JSON object")]
    NotAnObject,
    /// IoT Hub: 64 KB per C2D message, system and application properties included.
    #[error("C2D message of {size} bytes (payload and properties) exceeds IoT Hub's limit of {max} bytes")]
    MessageTooLarge {
        /// Payload, message id and property keys and values, bytes.
        size: usize,
        /// The limit, [`MAX_C2D_MESSAGE`] bytes.
        max: usize,
    },
    /// IoT Hub: 32 KB per twin section (desired, reported).
    #[error("twin {section} properties of {size} bytes exceed IoT Hub's limit of {max} bytes")]
    TwinTooLarge {
        /// `desired` or `reported`.
        section: &'static str,
        /// Size of the patch, or of the patched section, as compact JSON, bytes.
        size: usize,
        /// The limit, [`MAX_TWIN_SECTION`] bytes.
        max: usize,
    },
    /// The system random generator failed while generating a message id.
    #[error("system random number generator failed")]
    Rng,
}

/// Whether a device may connect (IoT Hub's device status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeviceStatus {
    /// The device may connect (the status of a new device).
    Enabled,
    /// CONNECT is refused and a live session is closed; the registration,
    /// certificates and queue are kept.
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

/// A registered device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// The device id: MQTT client id and certificate CN.
    pub device_id: String,
    /// Whether it may connect.
    pub status: DeviceStatus,
    /// When it was registered: milliseconds since the Unix epoch, hub (virtual) clock.
    pub created_ms: i64,
}

/// A certificate the hub issued to a device. Times are milliseconds since the
/// Unix epoch; issue and revocation times are read on the hub's (virtual) clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertRecord {
    /// The certificate serial, canonical form; the record's key.
    pub serial: Serial,
    /// The device it was issued to (its subject CN). The record outlives the device.
    pub device_id: String,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub thumbprint: String,
    /// Start of the validity window (X.509 notBefore).
    pub not_before_ms: i64,
    /// End of the validity window (X.509 notAfter).
    pub not_after_ms: i64,
    /// When the hub issued it.
    pub issued_ms: i64,
    /// When it was first revoked; `None` while it is not.
    pub revoked_ms: Option<i64>,
}

/// A cloud-to-device message to queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewMessage {
    /// Generated (random 16 bytes, hex) when `None`.
    pub message_id: Option<String>,
    /// The message body, opaque bytes.
    pub payload: Vec<u8>,
    /// Application properties, in order; delivered in the PUBLISH topic's property bag.
    pub properties: Vec<(String, String)>,
    /// `None`: the configured default TTL.
    pub ttl_ms: Option<i64>,
}

impl NewMessage {
    /// A message with this payload, a generated id, no properties and the default TTL.
    pub fn with_payload(payload: impl Into<Vec<u8>>) -> NewMessage {
        NewMessage {
            message_id: None,
            payload: payload.into(),
            properties: Vec::new(),
            ttl_ms: None,
        }
    }
}

/// A C2D message in a device's queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedMessage {
    /// Enqueue order; also the message's handle for complete/reject.
    pub seq: i64,
    /// The device whose queue holds it.
    pub device_id: String,
    /// The message id, given or generated; named again in the feedback.
    pub message_id: String,
    /// The message body, opaque bytes.
    pub payload: Vec<u8>,
    /// Application properties, in order.
    pub properties: Vec<(String, String)>,
    /// When it was queued: milliseconds since the Unix epoch, hub (virtual) clock.
    pub enqueued_ms: i64,
    /// When it expires (enqueued + TTL), same clock; at or after this it is
    /// no longer delivered but removed with feedback `expired`.
    pub expires_ms: i64,
    /// How many times the hub has taken it for delivery.
    pub delivery_count: u32,
}

/// How a C2D message left its queue (IoT Hub's feedback status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeedbackStatus {
    /// The device acknowledged it (PUBACK).
    #[serde(rename = "success")]
    Success,
    /// Its TTL ran out on the hub clock before it was acknowledged.
    #[serde(rename = "expired")]
    Expired,
    /// It was delivered [`StoreConfig::max_delivery_count`] times without an
    /// acknowledgement, and dead-lettered.
    #[serde(rename = "deliveryCountExceeded")]
    DeliveryCountExceeded,
    /// It was rejected ([`Store::reject`]), or dropped because its device was deleted.
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

/// A feedback record: one per C2D message that left its queue, written in
/// the same transaction as its removal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// The record's own id, increasing in the order records are written.
    pub id: i64,
    /// The device the message was queued for.
    pub device_id: String,
    /// The message's id.
    pub message_id: String,
    /// The message's `seq` in its queue.
    pub seq: i64,
    /// How the message left the queue.
    pub status: FeedbackStatus,
    /// When: milliseconds since the Unix epoch, hub (virtual) clock.
    pub at_ms: i64,
    /// How many times it had been taken for delivery by then.
    pub delivery_count: u32,
}

/// What take_deliverable did besides returning messages; the hub journals these.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Taken {
    /// The messages taken for delivery, in `seq` order, delivery counts already incremented.
    pub messages: Vec<QueuedMessage>,
    /// Feedback of the messages that expired or were dead-lettered on the way.
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
        serial: serial_col(r, 0)?,
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

fn serial_col(r: &Row, i: usize) -> rusqlite::Result<Serial> {
    let text: String = r.get(i)?;
    Serial::parse(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e)))
}

fn certificate_in(conn: &Connection, serial: &Serial) -> Res<Option<CertRecord>> {
    let sql = format!("SELECT {CERT_COLS} FROM certs WHERE serial = ?1");
    one(conn, &sql, [serial.as_str()], cert_row)
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
        }
        if version < 2 {
            tx.execute_batch(SCHEMA_V2)?;
            sessions::canonicalise_serials(&tx)?;
        }
        if version < SCHEMA_VERSION {
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        tx.commit()?;
        Ok(Store { conn, config })
    }

    /// The queue limits this store enforces.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    fn tx(&mut self) -> Res<Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    /// Registers an enabled device with an empty twin (both $versions 1).
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
        // IoT Hub: a new twin's desired and reported sections are at $version 1.
        tx.execute(
            "INSERT INTO twins VALUES (?1, '{}', 1, '{}', 1)",
            [device_id],
        )?;
        tx.commit()?;
        Ok(DeviceRecord {
            device_id: device_id.to_owned(),
            status,
            created_ms: now_ms,
        })
    }

    /// The device's record; `None` if it is not registered.
    pub fn device(&self, device_id: &str) -> Res<Option<DeviceRecord>> {
        device_in(&self.conn, device_id)
    }

    /// All devices, by id.
    pub fn devices(&self) -> Res<Vec<DeviceRecord>> {
        let sql = "SELECT device_id, status, created_ms FROM devices ORDER BY device_id";
        all(&self.conn, sql, [], device_row)
    }

    /// Sets the device's status and returns its updated record
    /// ([`StoreError::UnknownDevice`] if it is not registered).
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

    /// Records an issued certificate (serial in canonical form); the device must exist.
    pub fn add_certificate(&mut self, cert: &CertRecord) -> Res<()> {
        let tx = self.tx()?;
        require_device(&tx, &cert.device_id)?;
        let c = cert;
        tx.execute(
            &format!("INSERT INTO certs ({CERT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
            params![
                c.serial.as_str(),
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
    pub fn revoke_certificate(&mut self, serial: &Serial, now_ms: i64) -> Res<Option<CertRecord>> {
        let tx = self.tx()?;
        let sql = "UPDATE certs SET revoked_ms = ?2 WHERE serial = ?1 AND revoked_ms IS NULL";
        tx.execute(sql, params![serial.as_str(), now_ms])?;
        let rec = certificate_in(&tx, serial)?;
        tx.commit()?;
        Ok(rec)
    }

    /// The certificate record with this serial; `None` if the hub never issued it.
    pub fn certificate(&self, serial: &Serial) -> Res<Option<CertRecord>> {
        certificate_in(&self.conn, serial)
    }

    /// The device's certificates in issue order (revoked ones included).
    pub fn certificates_of(&self, device_id: &str) -> Res<Vec<CertRecord>> {
        let sql =
            format!("SELECT {CERT_COLS} FROM certs WHERE device_id = ?1 ORDER BY issued_ms, rowid");
        all(&self.conn, &sql, [device_id], cert_row)
    }

    /// Serials of all revoked certificates, in revocation order.
    pub fn revoked_serials(&self) -> Res<Vec<Serial>> {
        let sql =
            "SELECT serial FROM certs WHERE revoked_ms IS NOT NULL ORDER BY revoked_ms, serial";
        all(&self.conn, sql, [], |r| serial_col(r, 0))
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
        let size = msg.payload.len()
            + message_id.len()
            + msg
                .properties
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        if size > MAX_C2D_MESSAGE {
            return Err(StoreError::MessageTooLarge {
                size,
                max: MAX_C2D_MESSAGE,
            });
        }
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

    /// How many messages are in the device's queue; like [`Store::pending`],
    /// this counts messages already due to expire but not yet removed.
    pub fn pending_count(&self, device_id: &str) -> Res<usize> {
        let sql = "SELECT COUNT(*) FROM messages WHERE device_id = ?1";
        let n: i64 = self.conn.query_row(sql, [device_id], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// In one transaction: expire this device's messages with `expires_ms <=
    /// now_ms` (feedback expired), dead-letter pending ones whose
    /// `delivery_count >= max_delivery_count` and that are not in `in_flight`
    /// (feedback deliveryCountExceeded), then take up to `limit` next pending messages in
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

    /// A value of the hub's own key/value state (e.g. the clock offset), `None` if unset.
    pub fn meta(&self, key: &str) -> Res<Option<String>> {
        let sql = "SELECT value FROM meta WHERE key = ?1";
        one(&self.conn, sql, [key], |r| r.get(0))
    }

    /// Sets (or replaces) a value of the hub's own key/value state, committed at once.
    pub fn set_meta(&mut self, key: &str, value: &str) -> Res<()> {
        let tx = self.tx()?;
        let sql = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)";
        tx.execute(sql, [key, value])?;
        tx.commit()?;
        Ok(())
    }
}

#[path = "store_sessions.rs"]
mod sessions;
#[path = "store_twin.rs"]
mod twin;
pub use sessions::{InFlightC2d, StoredSession};
pub use twin::Twin;

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
