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
    /// The device the event concerns, if known (absent for hub-wide events
    /// and handshakes that failed before a certificate was verified).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub device_id: Option<String>,
    /// Remote address of the connection the event came from, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peer: Option<String>,
    /// What happened; flattened into the line, its `kind` tag names the variant.
    #[serde(flatten)]
    pub event: Event,
}

impl JournalEntry {
    /// When the connection this entry is about began, monotonic µs: for a
    /// TLS accept, its connection's accept, before the handshake (a small
    /// device's handshake takes most of a second, which timings of its
    /// attempts must not count as its backoff); else the entry's own time.
    pub fn attempt_began_us(&self) -> u64 {
        match &self.event {
            Event::TlsAccepted { handshake_us, .. } => self.mono_us.saturating_sub(*handshake_us),
            _ => self.mono_us,
        }
    }
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Listener {
    /// The MQTT-over-TLS listener (port 8883).
    Mqtt,
    /// The HTTPS listener (EST and firmware downloads, port 443).
    Https,
}

/// Why a TLS handshake failed, as precisely as rustls tells us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandshakeFailure {
    /// The client presented no certificate (mutual TLS is required).
    NoClientCertificate,
    /// The client certificate does not chain to the run CA.
    UnknownIssuer,
    /// The client certificate's notAfter is past, on the hub's virtual clock.
    CertificateExpired,
    /// The client certificate's notBefore is still ahead, on the hub's virtual clock.
    CertificateNotYetValid,
    /// The client certificate's serial is revoked.
    CertificateRevoked,
    /// A signature on the certificate or in the handshake does not verify.
    BadSignature,
    /// Any other problem with the client certificate, including one without a subject CN.
    BadCertificate,
    /// The client offers only TLS versions the hub does not speak (1.0, 1.1);
    /// the hub speaks 1.2 and 1.3.
    ProtocolVersion,
    /// No cipher suite offered by the client is one the hub accepts.
    NoCommonCipherSuite,
    /// The bytes received are not a well-formed TLS handshake (e.g. plain MQTT on the TLS port).
    NotTls,
    /// The client aborted the handshake with a TLS alert (e.g. it rejected
    /// the hub's server certificate).
    PeerAlert,
    /// The handshake did not finish within the configured handshake timeout.
    Timeout,
    /// The client closed or reset the connection during the handshake.
    ConnectionClosed,
    /// Anything else; the entry's `detail` has rustls's words.
    Other,
}

/// Why a CONNECT was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefuseReason {
    /// The CONNECT client id differs from the client certificate's CN.
    ClientIdMismatch,
    /// The user name is not `{hub-host}/{device-id}/?api-version=...`.
    BadUserName,
    /// No device with the certificate's CN is registered.
    UnknownDevice,
    /// The device is registered but disabled.
    DeviceDisabled,
    /// The client certificate was revoked (also after the handshake, up to
    /// the moment the session goes live).
    CertificateRevoked,
    /// Not MQTT 3.1.1 (protocol level 4); CONNACK says unacceptable protocol version.
    UnsupportedProtocol,
}

/// Why the hub closed (or saw the end of) an MQTT session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The client sent DISCONNECT.
    ClientDisconnect,
    /// The client closed the connection without DISCONNECT.
    PeerClosed,
    /// Reading from or writing to the socket failed.
    IoError,
    /// Bytes the MQTT codec or MQTT 3.1.1's framing rules reject.
    MalformedPacket,
    /// A packet above the hub's maximum packet size.
    PacketTooLarge,
    /// A valid packet at the wrong time: not CONNECT first, a packet only a
    /// server may send, data after the end.
    ProtocolViolation,
    /// A QoS 2 PUBLISH or a QoS 2 flow packet; IoT Hub does not support QoS 2.
    Qos2Unsupported,
    /// A publish, subscribe or will on a topic this device may not use.
    AclViolation,
    /// No CONNECT within the configured connect timeout after the handshake.
    ConnectTimeout,
    /// No packet within 1.5 × the keep-alive the client asked for.
    KeepAliveTimeout,
    /// The CONNECT was refused; the `connect_refused` entry before says why.
    ConnectRefused,
    /// The session's client certificate was revoked while it was live.
    CertificateRevoked,
    /// The device was disabled while connected.
    DeviceDisabled,
    /// The device was deleted while connected.
    DeviceDeleted,
    /// A newer connection of the same device took over (IoT Hub keeps one
    /// session per device).
    ReplacedBySession,
    /// The hub shut down.
    HubShutdown,
    /// The hub reset the connection (TCP RST, no TLS close): a fixture
    /// switch for the server-side trouble a device must survive.
    HubReset,
    /// The hub closed the connection (TLS close_notify, FIN; an MQTT 3.1.1
    /// server has no DISCONNECT to send), as IoT Hub does after an
    /// MQTT-level error: a fixture switch.
    HubClosed,
    /// The hub closed the connection and discarded the device's stored
    /// session (a fixture switch: the hub did not keep it).
    SessionDiscarded,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The hub started and listens.
    HubStarted {
        /// The MQTT listener's bound address.
        mqtt: String,
        /// The HTTPS listener's bound address.
        https: String,
        /// The host name devices must use.
        host_name: String,
    },
    /// A TLS handshake failed (or was refused before rustls saw it).
    HandshakeFailed {
        /// The listener the connection came in on.
        listener: Listener,
        /// The classified cause.
        reason: HandshakeFailure,
        /// The cause in words (rustls's, or the hub's).
        detail: String,
    },
    /// A TLS handshake succeeded with a verified client certificate.
    TlsAccepted {
        /// The listener the connection came in on.
        listener: Listener,
        /// The client certificate's serial, canonical hex.
        serial: String,
        /// The negotiated version as OpenSSL and Wireshark spell it, e.g. `TLSv1.3`.
        tls_version: String,
        /// The negotiated cipher suite, rustls's name (e.g. `TLS13_AES_128_GCM_SHA256`).
        cipher_suite: String,
        /// How long the handshake took, from the connection's accept: the
        /// attempt began `handshake_us` before this entry (a small device's
        /// handshake takes most of a second, which timings of its attempts
        /// must not count as its backoff).
        #[serde(default)]
        handshake_us: u64,
    },
    /// A CONNECT was accepted (CONNACK 0).
    Connected {
        /// The CONNECT client id (equal to the certificate's CN).
        client_id: String,
        /// The client certificate's serial, canonical hex.
        serial: String,
        /// The keep-alive the client asked for, seconds (0: none).
        keep_alive: u16,
        /// The CONNECT CleanSession flag.
        clean_session: bool,
        /// CONNACK's session-present flag: a stored session was resumed.
        #[serde(default)]
        session_present: bool,
    },
    /// A CleanSession=0 connection took up the device's stored session: its
    /// subscriptions hold again and its `in_flight` unacknowledged C2D
    /// deliveries are sent again.
    SessionResumed {
        /// The subscriptions restored.
        subscriptions: Vec<crate::topics::Subscription>,
        /// How many unacknowledged deliveries the stored session held.
        in_flight: usize,
    },
    /// A CONNECT was refused with a non-zero CONNACK and the connection closed.
    ConnectRefused {
        /// The CONNECT client id as sent (empty when the CONNECT could not be read).
        client_id: String,
        /// The classified cause.
        reason: RefuseReason,
        /// The cause in words.
        detail: String,
    },
    /// An MQTT connection ended (accepted or not).
    SessionClosed {
        /// Why it ended.
        reason: CloseReason,
        /// What exactly happened.
        detail: String,
    },
    /// A SUBSCRIBE was granted (every filter allowed).
    Subscribed {
        /// The topic filters, as the device sent them.
        filters: Vec<String>,
    },
    /// The device published telemetry (device-to-cloud).
    Telemetry {
        /// The PUBLISH topic.
        topic: String,
        /// The PUBLISH QoS, 0 or 1.
        qos: u8,
        /// Payload size, bytes.
        size: usize,
        /// The topic's property bag, decoded.
        properties: Vec<(String, String)>,
        /// The payload's first 4 KiB: UTF-8 text as is, otherwise `base64:` and its base64.
        payload: String,
    },
    /// The device used a topic it may not; its connection is closed.
    AclViolation {
        /// `publish`, `subscribe` or `will`.
        action: String,
        /// The topic or filter it used.
        topic: String,
    },
    /// A C2D message was queued for the device.
    C2dEnqueued {
        /// The message's own sequence number in the device's queue (the
        /// entry's `seq` is the journal's).
        message_seq: i64,
        /// The message id, given or generated.
        message_id: String,
        /// When it expires: milliseconds since the Unix epoch, hub (virtual) clock.
        expires_ms: i64,
    },
    /// A C2D message was refused (queue full, bad TTL, too large, unknown device...).
    C2dRefused {
        /// The store's refusal, in words.
        reason: String,
    },
    /// A C2D message was sent to the device as a QoS 1 PUBLISH.
    C2dDelivered {
        /// The message's own sequence number in the device's queue (the
        /// entry's `seq` is the journal's).
        message_seq: i64,
        /// The message id.
        message_id: String,
        /// How many times it has been taken for delivery, this one included
        /// (above 1: a redelivery, DUP set).
        delivery_count: u32,
        /// The PUBLISH's MQTT packet id.
        packet_id: u16,
    },
    /// The device acknowledged a C2D message, and the hub lost the PUBACK
    /// (a fixture switch): the message stays uncompleted, the connection
    /// is reset.
    PubackLost {
        /// The message's own sequence number in the device's queue.
        message_seq: i64,
        /// The message id.
        message_id: String,
        /// The acknowledged packet id.
        packet_id: u16,
    },
    /// The device acknowledged a C2D message (PUBACK).
    C2dAcked {
        /// The message's own sequence number in the device's queue (the
        /// entry's `seq` is the journal's).
        message_seq: i64,
        /// The message id.
        message_id: String,
        /// The acknowledged packet id.
        packet_id: u16,
    },
    /// A C2D message left its queue and got a feedback record.
    Feedback {
        /// The message's own sequence number in the device's queue (the
        /// entry's `seq` is the journal's).
        message_seq: i64,
        /// The message id.
        message_id: String,
        /// The feedback status, Azure's spelling (`success`, `expired`,
        /// `deliveryCountExceeded`, `rejected`).
        status: String,
        /// How many times it had been taken for delivery.
        delivery_count: u32,
    },
    /// A direct method call was started (sent to the device if it is connected).
    MethodInvoked {
        /// The method name.
        name: String,
        /// The request id the hub chose; the device's response names it.
        rid: String,
    },
    /// A direct method call finished.
    MethodResult {
        /// The method name.
        name: String,
        /// The call's request id.
        rid: String,
        /// The device's status, or the hub's 404 (not connected or not
        /// subscribed) or 504 (no answer in time).
        status: u16,
    },
    /// The device asked for its twin.
    TwinGet {
        /// The device's request id.
        rid: String,
    },
    /// The device's reported-properties patch was applied.
    TwinReported {
        /// The device's request id.
        rid: String,
        /// The new reported version.
        version: i64,
        /// The patch as the device sent it.
        #[serde(default)]
        patch: serde_json::Value,
    },
    /// The hub received a CONNECT it will not answer (the fixture switch
    /// that withholds CONNACK): the connection stays open, silent.
    ConnackWithheld {
        /// The CONNECT's client id.
        client_id: String,
    },
    /// A desired-properties notification the hub holds (a fixture
    /// switch): sent later, after newer ones, as a stale notification.
    DesiredHeld {
        /// The desired `$version` of the held patch.
        version: i64,
    },
    /// A held desired-properties notification was released (now stale).
    DesiredReleased {
        /// The desired `$version` of the patch.
        version: i64,
        /// Whether the live session sent it (the device subscribed to
        /// desired-property updates).
        sent: bool,
    },
    /// Desired properties were patched through the hub.
    TwinDesired {
        /// The new desired version.
        version: i64,
        /// Whether the patch was passed to a live session of the device (which
        /// sends it only if the device subscribed to desired-property updates).
        notified: bool,
    },
    /// A device was registered with its first certificate.
    DeviceRegistered {
        /// The first certificate's serial, canonical hex.
        serial: String,
    },
    /// A device was enabled or disabled.
    DeviceStatusChanged {
        /// `enabled` or `disabled`.
        status: String,
    },
    /// A device was deleted (queue rejected, certificates revoked).
    DeviceDeleted {},
    /// The CA issued a device certificate (registration, admin API or EST).
    CertificateIssued {
        /// The certificate's serial, canonical hex.
        serial: String,
        /// SHA-256 of the DER certificate, lower-case hex.
        thumbprint: String,
        /// Its notAfter: milliseconds since the Unix epoch.
        not_after_ms: i64,
    },
    /// A certificate was revoked.
    Revoked {
        /// The certificate's serial, canonical hex.
        serial: String,
    },
    /// A live session closed because its certificate was revoked; `latency_us`
    /// is measured from the revoke call to the socket being shut.
    RevokedSessionClosed {
        /// The revoked certificate's serial.
        serial: String,
        /// Microseconds from the revocation to the socket being shut (monotonic clock).
        latency_us: u64,
    },
    /// EST simplereenroll issued a new certificate.
    Enrolled {
        /// The serial of the TLS client certificate the request came with.
        old_serial: String,
        /// The new certificate's serial.
        new_serial: String,
        /// SHA-256 of the new DER certificate, lower-case hex.
        thumbprint: String,
    },
    /// An EST simplereenroll request was refused (bad CSR, wrong subject,
    /// or the refuse-enrolment switch).
    EnrollRefused {
        /// The refusal, in words (also the HTTP answer's body).
        reason: String,
    },
    /// The EST cacerts request was answered with the CA certificate.
    CaCertsServed {},
    /// A firmware image was served (whole or a range).
    Download {
        /// The request path, `/firmware/{name}`.
        path: String,
        /// The request's `Range` header as sent, if any.
        range: Option<String>,
        /// The HTTP status of the answer, e.g. 200, 206 (a range) or 416.
        status: u16,
        /// The answer's announced length (`Content-Length`), bytes; 0 if unknown.
        bytes: u64,
    },
    /// A firmware answer is over: its body went out whole, or the client
    /// went away first (a cancelled or interrupted download).
    DownloadEnded {
        /// The request path, `/firmware/{name}`.
        path: String,
        /// Body bytes handed to the connection (at most what reached the client).
        sent: u64,
        /// All announced bytes were handed over.
        complete: bool,
    },
    /// An HTTPS request was refused: not authorised, no such image, or too slow.
    HttpRefused {
        /// The request path; empty when the request head never arrived whole.
        path: String,
        /// The HTTP status (403, 404, 408).
        status: u16,
        /// The refusal, in words.
        reason: String,
    },
    /// The virtual clock was moved forward.
    ClockAdvanced {
        /// How far, milliseconds.
        by_ms: i64,
        /// The new hub time: milliseconds since the Unix epoch.
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

    /// True when this hub has recorded nothing yet (entries of an earlier
    /// hub in the same journal file do not count).
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
    fn an_attempt_began_before_its_handshake() {
        let entry = |event| JournalEntry {
            seq: 1,
            at_ms: 0,
            mono_us: 5_000_000,
            device_id: None,
            peer: None,
            event,
        };
        let tls = entry(Event::TlsAccepted {
            listener: Listener::Mqtt,
            serial: "01".into(),
            tls_version: "TLSv1.3".into(),
            cipher_suite: "TLS13_AES_128_GCM_SHA256".into(),
            handshake_us: 700_000,
        });
        assert_eq!(tls.attempt_began_us(), 4_300_000);
        assert_eq!(entry(Event::DeviceDeleted {}).attempt_began_us(), 5_000_000);
        // An old journal line without the field: the accept's own time.
        let old = r#"{"seq":1,"at_ms":0,"mono_us":9,"kind":"tls_accepted","listener":"mqtt","serial":"01","tls_version":"TLSv1.3","cipher_suite":"x"}"#;
        let old: JournalEntry = serde_json::from_str(old).unwrap();
        assert_eq!(old.attempt_began_us(), 9);
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
