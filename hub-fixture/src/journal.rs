//! The hub's event journal: every connect, handshake failure with its reason,
//! publish, delivery, ack, feedback, revocation, enrolment and download.
//!
//! Cases assert on it and reports show it, so entries are structured (a
//! `kind` tag plus fields) and carry both the virtual time (`at_ms`, what TTLs
//! are judged by) and a monotonic stamp (`mono_us`, for latencies). Tests wait
//! on it with [`Journal::wait_for`] instead of sleeping.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::clock::Clock;

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Position in the journal, from 1.
    pub seq: u64,
    /// Virtual time, ms since the Unix epoch.
    pub at_ms: i64,
    /// Monotonic µs since the hub started.
    pub mono_us: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub device_id: Option<String>,
    /// Remote address of the connection the event came from, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peer: Option<String>,
    #[serde(flatten)]
    pub event: Event,
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Listener {
    Mqtt,
    Https,
}

/// Why a TLS handshake failed, as precisely as rustls tells us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandshakeFailure {
    NoClientCertificate,
    UnknownIssuer,
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    BadSignature,
    BadCertificate,
    ProtocolVersion,
    NoCommonCipherSuite,
    NotTls,
    PeerAlert,
    Timeout,
    ConnectionClosed,
    Other,
}

/// Why a CONNECT was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefuseReason {
    ClientIdMismatch,
    BadUserName,
    UnknownDevice,
    DeviceDisabled,
    CertificateRevoked,
    UnsupportedProtocol,
}

/// Why the hub closed (or saw the end of) an MQTT session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    ClientDisconnect,
    PeerClosed,
    IoError,
    MalformedPacket,
    PacketTooLarge,
    ProtocolViolation,
    Qos2Unsupported,
    AclViolation,
    ConnectTimeout,
    KeepAliveTimeout,
    ConnectRefused,
    CertificateRevoked,
    DeviceDisabled,
    DeviceDeleted,
    ReplacedBySession,
    HubShutdown,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    HubStarted {
        mqtt: String,
        https: String,
        host_name: String,
    },
    HandshakeFailed {
        listener: Listener,
        reason: HandshakeFailure,
        detail: String,
    },
    TlsAccepted {
        listener: Listener,
        serial: String,
        tls_version: String,
        cipher_suite: String,
    },
    Connected {
        client_id: String,
        serial: String,
        keep_alive: u16,
        clean_session: bool,
        /// CONNACK's session-present flag: a stored session was resumed.
        #[serde(default)]
        session_present: bool,
    },
    /// A CleanSession=0 connection took up the device's stored session: its
    /// subscriptions hold again and its `in_flight` unacknowledged C2D
    /// deliveries are sent again.
    SessionResumed {
        subscriptions: Vec<crate::topics::Subscription>,
        in_flight: usize,
    },
    ConnectRefused {
        client_id: String,
        reason: RefuseReason,
        detail: String,
    },
    SessionClosed {
        reason: CloseReason,
        detail: String,
    },
    Subscribed {
        filters: Vec<String>,
    },
    Telemetry {
        topic: String,
        qos: u8,
        size: usize,
        properties: Vec<(String, String)>,
        payload: String,
    },
    AclViolation {
        action: String,
        topic: String,
    },
    C2dEnqueued {
        /// The message's own sequence number in the device's queue (the
        /// entry's `seq` is the journal's).
        message_seq: i64,
        message_id: String,
        expires_ms: i64,
    },
    C2dRefused {
        reason: String,
    },
    C2dDelivered {
        /// The message's own sequence number in the device's queue (the
        /// entry's `seq` is the journal's).
        message_seq: i64,
        message_id: String,
        delivery_count: u32,
        packet_id: u16,
    },
    C2dAcked {
        /// The message's own sequence number in the device's queue (the
        /// entry's `seq` is the journal's).
        message_seq: i64,
        message_id: String,
        packet_id: u16,
    },
    Feedback {
        /// The message's own sequence number in the device's queue (the
        /// entry's `seq` is the journal's).
        message_seq: i64,
        message_id: String,
        status: String,
        delivery_count: u32,
    },
    MethodInvoked {
        name: String,
        rid: String,
    },
    MethodResult {
        name: String,
        rid: String,
        status: u16,
    },
    TwinGet {
        rid: String,
    },
    TwinReported {
        rid: String,
        version: i64,
    },
    TwinDesired {
        version: i64,
        notified: bool,
    },
    DeviceRegistered {
        serial: String,
    },
    DeviceStatusChanged {
        status: String,
    },
    DeviceDeleted {},
    CertificateIssued {
        serial: String,
        thumbprint: String,
        not_after_ms: i64,
    },
    Revoked {
        serial: String,
    },
    /// A live session closed because its certificate was revoked; `latency_us`
    /// is measured from the revoke call to the socket being shut.
    RevokedSessionClosed {
        serial: String,
        latency_us: u64,
    },
    Enrolled {
        old_serial: String,
        new_serial: String,
        thumbprint: String,
    },
    EnrollRefused {
        reason: String,
    },
    CaCertsServed {},
    Download {
        path: String,
        range: Option<String>,
        status: u16,
        bytes: u64,
    },
    HttpRefused {
        path: String,
        status: u16,
        reason: String,
    },
    ClockAdvanced {
        by_ms: i64,
        now_ms: i64,
    },
}

impl Event {
    /// The `kind` tag as written to the JSON lines.
    pub fn kind(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str().map(str::to_owned)))
            .unwrap_or_default()
    }
}

/// The `seq` of the last entry of the journal file at `path` (0 if none).
fn last_seq(path: &Path) -> std::io::Result<u64> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()?
                .get("seq")?
                .as_u64()
        })
        .unwrap_or(0))
}

/// The journal. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Journal {
    inner: Arc<JournalInner>,
}

#[derive(Debug)]
struct JournalInner {
    entries: Mutex<Vec<JournalEntry>>,
    /// The `seq` of the last entry an earlier hub wrote to the same file:
    /// numbering goes on from there, so `seq` is unique in a data dir.
    base: std::sync::atomic::AtomicU64,
    file: Mutex<Option<BufWriter<File>>>,
    appended: Notify,
    clock: Arc<dyn Clock>,
    started: Instant,
}

impl Journal {
    /// An in-memory journal stamped by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(JournalInner {
                entries: Mutex::new(Vec::new()),
                base: std::sync::atomic::AtomicU64::new(0),
                file: Mutex::new(None),
                appended: Notify::new(),
                clock,
                started: Instant::now(),
            }),
        }
    }

    /// Also append every entry as a JSON line to `path` (flushed per entry,
    /// so a killed hub leaves a complete journal up to its last event). An
    /// existing file is continued: `seq` goes on from its last entry's, so
    /// entries are numbered uniquely across hub restarts on one data dir.
    /// Call before the first `record`.
    pub fn write_to(&self, path: &Path) -> std::io::Result<()> {
        let last = last_seq(path)?;
        self.inner
            .base
            .store(last, std::sync::atomic::Ordering::SeqCst);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        *self.inner.file.lock().expect("journal lock") = Some(BufWriter::new(file));
        Ok(())
    }

    /// Records an event and returns its entry.
    pub fn record(
        &self,
        device_id: Option<&str>,
        peer: Option<&str>,
        event: Event,
    ) -> JournalEntry {
        let mono_us = self.inner.started.elapsed().as_micros() as u64;
        let mut entries = self.inner.entries.lock().expect("journal lock");
        let entry = JournalEntry {
            seq: self.base() + entries.len() as u64 + 1,
            at_ms: self.inner.clock.now_ms(),
            mono_us,
            device_id: device_id.map(str::to_owned),
            peer: peer.map(str::to_owned),
            event,
        };
        tracing::debug!(target: "journal", "{}", serde_json::to_string(&entry).unwrap_or_default());
        if let Some(w) = self.inner.file.lock().expect("journal lock").as_mut() {
            // A journal write failure must not take the hub down; it is logged.
            if let Err(e) = serde_json::to_writer(&mut *w, &entry)
                .map_err(std::io::Error::from)
                .and_then(|_| w.write_all(b"\n"))
                .and_then(|_| w.flush())
            {
                tracing::warn!("journal file write failed: {e}");
            }
        }
        entries.push(entry.clone());
        drop(entries);
        self.inner.appended.notify_waiters();
        entry
    }

    /// The monotonic stamp `record` would give now (µs since hub start).
    pub fn mono_us(&self) -> u64 {
        self.inner.started.elapsed().as_micros() as u64
    }

    /// All entries so far.
    pub fn entries(&self) -> Vec<JournalEntry> {
        self.inner.entries.lock().expect("journal lock").clone()
    }

    fn base(&self) -> u64 {
        self.inner.base.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Entries (of this hub's run) with `seq > after`.
    pub fn since(&self, after: u64) -> Vec<JournalEntry> {
        let entries = self.inner.entries.lock().expect("journal lock");
        let skip = after.saturating_sub(self.base());
        entries.iter().skip(skip as usize).cloned().collect()
    }

    /// The `seq` of the last entry so far (a mark for [`Journal::wait_for`]).
    pub fn len(&self) -> u64 {
        self.base() + self.inner.entries.lock().expect("journal lock").len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.inner.entries.lock().expect("journal lock").is_empty()
    }

    /// Waits until an entry with `seq > after` satisfies `pred`, and returns
    /// it; `None` when `timeout` passes first. The timeout is a guard against a
    /// hung test, not a synchronisation point.
    pub async fn wait_for(
        &self,
        after: u64,
        timeout: Duration,
        mut pred: impl FnMut(&JournalEntry) -> bool,
    ) -> Option<JournalEntry> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut checked = after;
        loop {
            let notified = self.inner.appended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            for e in self.since(checked) {
                checked = e.seq;
                if pred(&e) {
                    return Some(e);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;

    #[tokio::test]
    async fn wait_for_sees_entries_recorded_later_and_times_out_otherwise() {
        let j = Journal::new(Arc::new(VirtualClock::default()));
        j.record(Some("d"), None, Event::DeviceDeleted {});
        let j2 = j.clone();
        let waiter = tokio::spawn(async move {
            j2.wait_for(0, Duration::from_secs(5), |e| {
                matches!(e.event, Event::Revoked { .. })
            })
            .await
        });
        tokio::task::yield_now().await;
        j.record(
            Some("d"),
            None,
            Event::Revoked {
                serial: "ab".into(),
            },
        );
        let got = waiter.await.unwrap().expect("entry");
        assert_eq!(got.seq, 2);
        assert!(j
            .wait_for(2, Duration::from_millis(20), |_| true)
            .await
            .is_none());
    }

    #[test]
    fn entries_serialise_as_flat_json_lines_with_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let j = Journal::new(Arc::new(VirtualClock::default()));
        j.write_to(&path).unwrap();
        j.record(
            Some("d"),
            Some("127.0.0.1:5"),
            Event::HandshakeFailed {
                listener: Listener::Mqtt,
                reason: HandshakeFailure::UnknownIssuer,
                detail: "x".into(),
            },
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["kind"], "handshake_failed");
        assert_eq!(v["reason"], "unknown_issuer");
        assert_eq!(v["device_id"], "d");
        let back: JournalEntry = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(back, j.entries()[0]);
    }

    #[test]
    fn seq_goes_on_across_restarts_and_is_the_only_seq_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        for _run in 0..2 {
            let j = Journal::new(Arc::new(VirtualClock::default()));
            j.write_to(&path).unwrap();
            j.record(
                Some("d"),
                None,
                Event::C2dAcked {
                    message_seq: 7,
                    message_id: "m".into(),
                    packet_id: 1,
                },
            );
            j.record(Some("d"), None, Event::DeviceDeleted {});
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let seqs: Vec<u64> = lines
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4], "unique and monotonic in one data dir");
        // One `seq` key per line: jq's `select(.seq == N)` finds the entry.
        for l in &lines {
            assert_eq!(l.matches("\"seq\"").count(), 1, "{l}");
        }
        assert!(lines[2].contains("\"message_seq\":7"), "{}", lines[2]);
        // The second run's journal continues the numbering for marks too.
        let j = Journal::new(Arc::new(VirtualClock::default()));
        j.write_to(&path).unwrap();
        assert_eq!(j.len(), 4);
        let e = j.record(None, None, Event::DeviceDeleted {});
        assert_eq!(e.seq, 5);
        assert_eq!(j.since(4).len(), 1);
        assert_eq!(j.since(0).len(), 1);
    }
}
