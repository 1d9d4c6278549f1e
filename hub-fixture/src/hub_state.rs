//! [`HubState`]: what the listeners and the admin API share, and the
//! operations that must stay consistent between them (session registry,
//! method routing, revocation, certificate records).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::{system_time_to_ms, Clock, VirtualClock};
use crate::journal::{CloseReason, Event, Journal};
use crate::pki::{CertificateAuthority, IssuedCert, KeyAlgorithm, Validity};
use crate::serial::Serial;
use crate::session::SessionConfig;
use crate::store::{CertRecord, Feedback, Store, StoredSession};
use crate::tls::RevokedSerials;

use crate::hub::{HubConfig, HubError, MethodResponse};

/// Commands to a live session task.
#[derive(Debug)]
pub(crate) enum SessionCommand {
    Close {
        reason: CloseReason,
        detail: String,
        revoked_at: Option<(Instant, String)>,
    },
    C2dAvailable,
    Method {
        name: String,
        rid: String,
        payload: Vec<u8>,
    },
    Desired {
        version: i64,
        patch: serde_json::Value,
    },
    /// A held desired patch, sent now (stale by design) and journalled.
    HeldDesired {
        version: i64,
        patch: serde_json::Value,
    },
}

#[derive(Debug)]
pub(crate) struct SessionHandle {
    pub id: u64,
    pub serial: Serial,
    pub tx: mpsc::UnboundedSender<SessionCommand>,
}

/// State shared by the listeners and the admin API.
pub struct HubState {
    pub(crate) config: HubConfig,
    pub(crate) session_config: SessionConfig,
    pub(crate) clock: Arc<VirtualClock>,
    pub(crate) journal: Journal,
    pub(crate) store: Mutex<Store>,
    pub(crate) ca: CertificateAuthority,
    pub(crate) revoked: Arc<RevokedSerials>,
    pub(crate) sessions: Mutex<HashMap<String, SessionHandle>>,
    pub(crate) methods: Mutex<HashMap<String, (String, oneshot::Sender<MethodResponse>)>>,
    /// Devices whose EST re-enrolment the hub refuses (a fixture switch for KR-06).
    pub(crate) refuse_enrollment: Mutex<std::collections::HashSet<String>>,
    /// Firmware downloads sent at most this many bytes per second (a fixture
    /// switch: a slow link, so a case can cut one mid-download).
    pub(crate) firmware_rate: Mutex<Option<u64>>,
    /// Devices whose CONNECTs the hub does not answer (a fixture switch for CD-16).
    pub(crate) withhold_connack: Mutex<std::collections::HashSet<String>>,
    /// Devices whose next PUBACK the hub loses (a fixture switch for CD-22).
    pub(crate) lose_puback: Mutex<std::collections::HashSet<String>>,
    /// Devices whose next desired-properties notification the hub holds (a
    /// fixture switch for CD-19): `None` armed, `Some((version, patch))` held.
    pub(crate) held_desired: Mutex<HashMap<String, Option<(i64, serde_json::Value)>>>,
    pub(crate) next_id: AtomicU64,
    pub(crate) tls: Arc<rustls::ServerConfig>,
    pub(crate) shutdown: watch::Sender<bool>,
}

pub(crate) const CLOCK_OFFSET_KEY: &str = "clock_offset_ms";
pub(crate) const SUPERSEDES_PREFIX: &str = "supersedes:";

impl HubState {
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().expect("store lock poisoned")
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The validity of a device certificate re-enrolled now (EST).
    pub(crate) fn est_validity(&self) -> crate::pki::Validity {
        let now = self.clock.now();
        match self.config.est_cert_lifetime {
            Some(lifetime) => {
                // A second back: X.509 times are whole seconds.
                let not_before = now - std::time::Duration::from_secs(1);
                crate::pki::Validity {
                    not_before,
                    not_after: not_before + lifetime,
                }
            }
            None => crate::pki::Validity::days_from(now, self.config.device_cert_days),
        }
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub(crate) fn enrollment_refused(&self, device_id: &str) -> bool {
        self.refuse_enrollment
            .lock()
            .expect("enrolment lock")
            .contains(device_id)
    }

    /// Records feedback entries in the journal.
    pub(crate) fn journal_feedback(&self, feedback: &[Feedback]) {
        for f in feedback {
            self.journal.record(
                Some(&f.device_id),
                None,
                Event::Feedback {
                    message_seq: f.seq,
                    message_id: f.message_id.clone(),
                    status: f.status.as_str().into(),
                    delivery_count: f.delivery_count,
                },
            );
        }
    }

    /// A session finished CONNECT: make it the device's live session.
    /// Returns false if it must close at once (its certificate was revoked
    /// between handshake and now).
    pub(crate) fn register_session(&self, device_id: &str, handle: SessionHandle) -> bool {
        let serial = handle.serial.clone();
        if let Some(old) = self
            .sessions
            .lock()
            .expect("sessions lock")
            .insert(device_id.to_owned(), handle)
        {
            let _ = old.tx.send(SessionCommand::Close {
                reason: CloseReason::ReplacedBySession,
                detail: "a new session of the same device connected".into(),
                revoked_at: None,
            });
        }
        if self.revoked.contains(&serial) {
            return false;
        }
        // EST step 5: once the new certificate has a session, the old one is revoked.
        let key = format!("{SUPERSEDES_PREFIX}{serial}");
        let old = self.store().meta(&key).ok().flatten();
        if let Some(old) = old.and_then(|o| Serial::parse(&o).ok()) {
            if let Err(e) = self.revoke(&old) {
                tracing::warn!("revoking superseded certificate {old}: {e}");
            }
        }
        true
    }

    /// Stores a persistent session's state if `session_id` is still the
    /// device's live session. The registry lock is held across the write, so
    /// a connection evicted by a newer one can no longer overwrite the state
    /// its successor took up.
    pub(crate) fn save_session_if_live(
        &self,
        device_id: &str,
        session_id: u64,
        session: &StoredSession,
    ) {
        let sessions = self.sessions.lock().expect("sessions lock");
        if sessions.get(device_id).is_some_and(|h| h.id == session_id) {
            if let Err(e) = self.store().save_session(device_id, session) {
                tracing::error!("storing the session of {device_id}: {e}");
            }
        }
    }

    pub(crate) fn unregister_session(&self, device_id: &str, id: u64) {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        if sessions.get(device_id).is_some_and(|h| h.id == id) {
            sessions.remove(device_id);
        }
    }

    pub(crate) fn send_to_session(
        &self,
        device_id: &str,
        cmd: SessionCommand,
    ) -> Result<(), SessionCommand> {
        match self.sessions.lock().expect("sessions lock").get(device_id) {
            Some(h) => h.tx.send(cmd).map_err(|e| e.0),
            None => Err(cmd),
        }
    }

    /// Completes a pending method call. A response from a device other than
    /// the one called (`from`) is ignored: one device cannot answer for another.
    pub(crate) fn finish_method(&self, from: Option<&str>, rid: &str, status: u16, payload: Bytes) {
        let mut methods = self.methods.lock().expect("methods lock");
        if from.is_some_and(|d| methods.get(rid).is_some_and(|(owner, _)| owner != d)) {
            return;
        }
        let pending = methods.remove(rid);
        drop(methods);
        if let Some((_, tx)) = pending {
            let payload = serde_json::from_slice(&payload).unwrap_or_else(|_| {
                if payload.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::Value::String(String::from_utf8_lossy(&payload).into_owned())
                }
            });
            let _ = tx.send(MethodResponse { status, payload });
        }
    }

    /// Revokes a certificate by its serial in any spelling: recorded, then
    /// refused by every TLS handshake, and the live session closed.
    pub(crate) fn revoke(&self, serial: &Serial) -> Result<CertRecord, HubError> {
        let now = self.now_ms();
        let record = self
            .store()
            .revoke_certificate(serial, now)?
            .ok_or_else(|| HubError::UnknownSerial(serial.to_string()))?;
        let at = Instant::now();
        self.revoked.insert(serial);
        self.journal.record(
            Some(&record.device_id),
            None,
            Event::Revoked {
                serial: serial.to_string(),
            },
        );
        let sessions = self.sessions.lock().expect("sessions lock");
        for h in sessions.values().filter(|h| h.serial == *serial) {
            let _ = h.tx.send(SessionCommand::Close {
                reason: CloseReason::CertificateRevoked,
                detail: format!("certificate {serial} revoked"),
                revoked_at: Some((at, serial.to_string())),
            });
        }
        Ok(record)
    }

    /// Issues a device certificate and records it.
    pub(crate) fn issue_certificate(
        &self,
        device_id: &str,
        algorithm: KeyAlgorithm,
        validity: Validity,
    ) -> Result<IssuedCert, HubError> {
        let issued = self.ca.issue_device(device_id, algorithm, validity)?;
        self.record_issued(device_id, &issued)?;
        Ok(issued)
    }

    pub(crate) fn record_issued(
        &self,
        device_id: &str,
        issued: &IssuedCert,
    ) -> Result<(), HubError> {
        // The CA writes serials in canonical form; parsing says so once more.
        let serial = Serial::parse(&issued.serial).map_err(|e| HubError::InvalidName {
            what: "issued certificate serial",
            value: e.text,
            why: e.why,
        })?;
        let record = CertRecord {
            serial: serial.clone(),
            device_id: device_id.to_owned(),
            thumbprint: issued.thumbprint.clone(),
            not_before_ms: system_time_to_ms(issued.validity.not_before),
            not_after_ms: system_time_to_ms(issued.validity.not_after),
            issued_ms: self.now_ms(),
            revoked_ms: None,
        };
        self.store().add_certificate(&record)?;
        self.journal.record(
            Some(device_id),
            None,
            Event::CertificateIssued {
                serial: serial.to_string(),
                thumbprint: issued.thumbprint.clone(),
                not_after_ms: record.not_after_ms,
            },
        );
        Ok(())
    }

    /// Remembers that `new_serial` (from EST) replaces `old_serial`.
    pub(crate) fn record_supersedes(
        &self,
        new_serial: &str,
        old_serial: &Serial,
    ) -> Result<(), HubError> {
        let new_serial = Serial::parse(new_serial).map_err(|e| HubError::InvalidName {
            what: "issued certificate serial",
            value: e.text,
            why: e.why,
        })?;
        self.store().set_meta(
            &format!("{SUPERSEDES_PREFIX}{new_serial}"),
            old_serial.as_str(),
        )?;
        Ok(())
    }
}

/// Runs `f`, which blocks (SQLite under the store's mutex, a file write),
/// without holding up the runtime's other tasks: on a multi-threaded runtime
/// the worker hands them on first (`block_in_place`); a current-thread
/// runtime (a test's) has no other worker to hand them to and runs it in
/// place.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
