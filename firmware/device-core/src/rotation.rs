//! Credential rotation: EST re-enrolment (RFC 7030 `simplereenroll`), steps
//! 1–5 of the contract's "Credential rotation", as a sans-IO state machine.
//!
//! # Flow
//! 1. Trigger: the `credentials/rotate` method, or desired
//!    `credentials.rotateAfter` at or before now — also when it arrives in the
//!    twin GET at session start after a time offline, or when the time comes
//!    later ([`Rotation::next_deadline`], [`RotationEvent::Tick`]). A
//!    `rotateAfter` is honoured once: not if the active certificate was
//!    stored at or after it, and not again after it failed in this power
//!    cycle (no hammering the hub).
//! 2. [`RotationAction::GenerateKey`]: the shell makes a key pair and answers
//!    [`RotationEvent::KeyGenerated`]; the key goes to the keystore's
//!    pending slot ([`RotationAction::Persist`]).
//! 3. [`RotationAction::BuildCsr`] → [`RotationEvent::CsrBuilt`] →
//!    [`RotationAction::PostSimpleReenroll`] over mTLS with the credential of
//!    [`Rotation::credential`] → [`RotationEvent::Enrolled`] or a refusal.
//! 4. The certificate is stored in the pending slot and committed (one
//!    atomic header flip, see `keystore`), then
//!    [`RotationAction::Reconnect`] with the new credential.
//! 5. At the next session: report `credentials {thumbprint, notAfter,
//!    state: "rotated"}`.
//!
//! Refusal or any failure keeps the old credential, discards the pending
//! one and reports `state: "failed"` with the reason. At power-on a pending
//! credential (a rotation cut short) is discarded: only a committed
//! credential is ever used, so the device always boots with one that works.
//!
//! # Renewal before expiry
//! The device also rotates by itself when its active certificate reaches
//! [`RENEW_AT_PERCENT`] of its validity (notBefore..notAfter, on its own
//! clock): [`Rotation::renewal_due_at`]. A renewal that fails is tried again
//! halfway to notAfter (at least [`RENEW_RETRY_MIN_MS`] later), so a device
//! keeps trying before its certificate expires without hammering the hub.
//!
//! # Time
//! `now_ms` is the device's wall clock, Unix ms (it is compared with the
//! twin's `rotateAfter` and the certificate's validity).
//!
//! # Faults (each does exactly its one wrong thing)
//! `rotate-same-key`: no new key, the CSR is for the current key.
//! `keep-old-cert`: after the commit, keeps connecting with the old
//! credential. `leak-key-in-csr`: `BuildCsr { include_private_key: true }`.
//! `rotate-non-atomic`: writes the new certificate over the active one, then
//! the new key over the active key (a cut between leaves a mismatched pair).
//! `ignore-twin-rotate`: ignores `rotateAfter`. `drop-cred-on-error`: erases
//! the keystore when the hub refuses. `no-renewal`: never renews by itself
//! (only when asked), so it runs into expiry.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use crate::faults::{Fault, FaultSet};
use crate::keystore::{Certificate, Credential, Keystore, KeystoreError, PrivateKey, Write};

/// The share of its validity a certificate reaches before the device renews it.
pub const RENEW_AT_PERCENT: u64 = 80;
/// A failed renewal is retried no sooner than this, ms.
pub const RENEW_RETRY_MIN_MS: u64 = 1_000;

/// The `credentials.state` reported in the twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialState {
    /// No rotation has happened in this power cycle.
    Idle,
    /// A rotation is in progress.
    Rotating,
    /// The last rotation succeeded; the device is connected with the new credential.
    Rotated,
    /// The last rotation failed; the old credential is kept (`reason` says why).
    Failed,
}

impl CredentialState {
    /// The reported string.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialState::Idle => "idle",
            CredentialState::Rotating => "rotating",
            CredentialState::Rotated => "rotated",
            CredentialState::Failed => "failed",
        }
    }
}

/// The reported `credentials` property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsReport {
    /// SHA-256 of the active certificate, lower-case hex (None: no credential).
    pub thumbprint: Option<String>,
    /// notAfter of the active certificate, RFC 3339 UTC.
    pub not_after: Option<String>,
    /// Where rotation stands, or how the last one ended.
    pub state: CredentialState,
    /// Why the last rotation failed; `None` otherwise.
    pub reason: Option<String>,
}

impl CredentialsReport {
    /// The JSON object to report as `credentials`:
    /// `{"thumbprint":…,"notAfter":…,"state":…,"reason":…}` (absent values are `null`).
    pub fn to_json(&self) -> String {
        format!(
            r#"{{"thumbprint":{},"notAfter":{},"state":"{}","reason":{}}}"#,
            json_opt(self.thumbprint.as_deref()),
            json_opt(self.not_after.as_deref()),
            self.state.as_str(),
            json_opt(self.reason.as_deref())
        )
    }
}

/// What happened, as the shell (or the session) tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationEvent {
    /// A hub session is up (CONNACK accepted).
    SessionEstablished,
    /// The hub session is gone.
    SessionLost,
    /// The `credentials/rotate` method arrived (the session replies 202).
    RotateMethod,
    /// Desired `credentials.rotateAfter` (RFC 3339), from the twin GET or a
    /// desired patch; `None` when it is absent or null.
    DesiredRotateAfter(Option<String>),
    /// Answer to [`RotationAction::GenerateKey`].
    KeyGenerated(PrivateKey),
    /// Answer to [`RotationAction::BuildCsr`]: the PKCS#10 DER.
    CsrBuilt(Vec<u8>),
    /// The hub issued a certificate (the leaf of the PKCS#7 reply; the shell
    /// parsed its notAfter).
    Enrolled {
        /// The new certificate, DER.
        cert_der: Vec<u8>,
        /// Its notAfter, Unix ms.
        not_after_ms: u64,
        /// Its notBefore, Unix ms.
        not_before_ms: u64,
    },
    /// The hub answered the re-enrolment with an error status.
    EnrollRefused {
        /// The HTTP status of the hub's answer.
        status: u16,
        /// The hub's explanation (body), reported as the failure reason.
        reason: String,
    },
    /// Key generation, CSR building or the HTTPS exchange failed locally or
    /// in transport (not a refusal by the hub).
    Failed {
        /// What failed; reported as the failure reason.
        reason: String,
    },
    /// Time passed (see [`Rotation::next_deadline`]).
    Tick,
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationAction {
    /// Apply these keystore writes, in order, before the next action.
    Persist(Vec<Write>),
    /// Make a new key pair for `slot`; answer [`RotationEvent::KeyGenerated`].
    GenerateKey {
        /// The keystore's pending slot, where the key will be stored.
        slot: u8,
    },
    /// Build a PKCS#10 CSR (subject = device id) for the key in keystore
    /// `slot`, signed with it; with `include_private_key` also put the key's
    /// PKCS#8 DER in as an attribute (the `leak-key-in-csr` fault). Answer
    /// [`RotationEvent::CsrBuilt`].
    BuildCsr {
        /// Keystore slot of the key to certify (the active one with
        /// `rotate-same-key`).
        slot: u8,
        /// Add the private key to the CSR (only the `leak-key-in-csr` fault).
        include_private_key: bool,
    },
    /// POST the CSR to `https://{hub}/.well-known/est/simplereenroll`,
    /// authenticated with [`Rotation::credential`]. Answer `Enrolled`,
    /// `EnrollRefused` or `Failed`.
    PostSimpleReenroll {
        /// The PKCS#10 CSR, DER (the shell sends it base64 as EST wants).
        csr_der: Vec<u8>,
    },
    /// Close the hub session and reconnect presenting the credential in
    /// keystore `slot` (= [`Rotation::credential`]).
    Reconnect {
        /// Keystore slot of the credential to present.
        slot: u8,
    },
    /// Report `credentials` in the twin.
    Report(CredentialsReport),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Idle,
    GeneratingKey,
    BuildingCsr { same_key: bool },
    Enrolling { same_key: bool },
    Reconnecting,
}

/// The rotation machine; it owns the in-memory keystore (the only writer).
#[derive(Debug, Clone)]
pub struct Rotation {
    keystore: Keystore,
    faults: FaultSet,
    step: Step,
    connected: bool,
    /// A method asked for a rotation that has not started yet.
    requested: bool,
    rotate_after_ms: Option<u64>,
    /// The `rotateAfter` whose rotation failed in this power cycle.
    failed_for_ms: Option<u64>,
    /// The rotation in progress came from `rotateAfter`.
    from_twin: bool,
    /// The rotation in progress is a renewal before expiry.
    from_renewal: bool,
    /// A renewal failed: the next one is not before this.
    renew_retry_at_ms: Option<u64>,
    /// What the shell presents on every TLS connection.
    presented: Option<Credential>,
    /// `now_ms` of the last event.
    last_now_ms: u64,
    state: CredentialState,
    reason: Option<String>,
}

impl Rotation {
    /// Recovers at power-on from the decoded keystore: a pending credential
    /// (a rotation cut short) is discarded, the committed one is used.
    pub fn power_on(keystore: Keystore, faults: FaultSet) -> (Rotation, Vec<RotationAction>) {
        let mut r = Rotation {
            presented: keystore.active().cloned(),
            keystore,
            faults,
            step: Step::Idle,
            connected: false,
            requested: false,
            rotate_after_ms: None,
            failed_for_ms: None,
            from_twin: false,
            from_renewal: false,
            renew_retry_at_ms: None,
            last_now_ms: 0,
            state: CredentialState::Idle,
            reason: None,
        };
        let mut actions = Vec::new();
        if r.keystore.pending().is_some() {
            actions.push(RotationAction::Persist(r.keystore.discard_pending()));
            r.fail("rotation interrupted by a reset; kept the previous credential".into());
        }
        if r.presented.is_none() {
            let why = if r.keystore.is_damaged() {
                "keystore damaged"
            } else {
                "keystore empty"
            };
            r.fail(format!("no working credential: {why}"));
        }
        (r, actions)
    }

    /// The credential to present on every TLS connection (MQTT and HTTPS);
    /// `None`: the device cannot authenticate and must not connect.
    pub fn credential(&self) -> Option<&Credential> {
        self.presented.as_ref()
    }

    /// The keystore as the writes so far leave it.
    pub fn keystore(&self) -> &Keystore {
        &self.keystore
    }

    /// The reported state.
    pub fn state(&self) -> CredentialState {
        self.state
    }

    /// A rotation is in progress.
    pub fn is_rotating(&self) -> bool {
        self.step != Step::Idle
    }

    /// When [`RotationEvent::Tick`] is next needed: a `rotateAfter` still in
    /// the future (as of the last event). A due one starts with the next
    /// event that finds a session up, so it needs no tick.
    pub fn next_deadline(&self) -> Option<u64> {
        let twin = self
            .rotate_after_ms
            .filter(|at| !self.faults.has(Fault::IgnoreTwinRotate) && *at > self.last_now_ms);
        let renewal = self.renewal_due_at().filter(|at| *at > self.last_now_ms);
        [twin, renewal].into_iter().flatten().min()
    }

    /// When the device renews its active certificate by itself: at
    /// [`RENEW_AT_PERCENT`] of its validity, or at the retry time after a
    /// failed renewal. `None`: no certificate, or fault `no-renewal`.
    pub fn renewal_due_at(&self) -> Option<u64> {
        if self.faults.has(Fault::NoRenewal) {
            return None;
        }
        let cert = &self.keystore.active()?.cert;
        let (from, to) = (cert.not_before_ms, cert.not_after_ms);
        let at = from + to.saturating_sub(from).saturating_mul(RENEW_AT_PERCENT) / 100;
        Some(self.renew_retry_at_ms.map_or(at, |r| r.max(at)))
    }

    /// The `credentials` report for the current state.
    pub fn report(&self) -> CredentialsReport {
        let cert = self.keystore.active().map(|c| &c.cert);
        CredentialsReport {
            thumbprint: cert.map(Certificate::thumbprint_hex),
            not_after: cert.map(|c| format_rfc3339(c.not_after_ms)),
            state: self.state,
            reason: self.reason.clone(),
        }
    }

    /// Feeds one event; returns the actions to perform, in order.
    pub fn handle(&mut self, event: RotationEvent, now_ms: u64) -> Vec<RotationAction> {
        self.last_now_ms = now_ms;
        let mut out = Vec::new();
        match event {
            RotationEvent::SessionEstablished => {
                self.connected = true;
                if self.step == Step::Reconnecting {
                    self.step = Step::Idle;
                    self.state = CredentialState::Rotated;
                    self.reason = None;
                }
                // Every session starts with a fresh report.
                out.push(RotationAction::Report(self.report()));
            }
            RotationEvent::SessionLost => self.connected = false,
            RotationEvent::RotateMethod => self.requested = true,
            RotationEvent::DesiredRotateAfter(value) => {
                if !self.faults.has(Fault::IgnoreTwinRotate) {
                    match value.as_deref().map(parse_rfc3339) {
                        None => self.rotate_after_ms = None,
                        Some(Some(at)) => self.rotate_after_ms = Some(at),
                        Some(None) => {
                            self.rotate_after_ms = None;
                            self.fail(format!(
                                "desired credentials.rotateAfter is not RFC 3339: {value:?}"
                            ));
                            out.push(RotationAction::Report(self.report()));
                        }
                    }
                }
            }
            RotationEvent::KeyGenerated(key) if self.step == Step::GeneratingKey => {
                match self.keystore.store_pending_key(key) {
                    Ok(writes) => {
                        out.push(RotationAction::Persist(writes));
                        self.step = Step::BuildingCsr { same_key: false };
                        out.push(RotationAction::BuildCsr {
                            slot: self.keystore.pending_slot(),
                            include_private_key: self.faults.has(Fault::LeakKeyInCsr),
                        });
                    }
                    Err(e) => self.abort(format!("cannot store the new key: {e}"), false, &mut out),
                }
            }
            RotationEvent::CsrBuilt(csr_der) => {
                if let Step::BuildingCsr { same_key } = self.step {
                    self.step = Step::Enrolling { same_key };
                    out.push(RotationAction::PostSimpleReenroll { csr_der });
                }
            }
            RotationEvent::Enrolled {
                cert_der,
                not_after_ms,
                not_before_ms,
            } => {
                if let Step::Enrolling { same_key } = self.step {
                    let cert =
                        Certificate::new(cert_der, not_after_ms, now_ms).valid_from(not_before_ms);
                    match self.install(cert, same_key) {
                        Ok(writes) => {
                            out.push(RotationAction::Persist(writes));
                            if !self.faults.has(Fault::KeepOldCert) {
                                self.presented = self.keystore.active().cloned();
                            }
                            self.step = Step::Reconnecting;
                            self.renew_retry_at_ms = None;
                            if let Some(c) = &self.presented {
                                out.push(RotationAction::Reconnect { slot: c.slot });
                            }
                        }
                        Err(e) => self.abort(
                            format!("cannot store the new certificate: {e}"),
                            false,
                            &mut out,
                        ),
                    }
                }
            }
            RotationEvent::EnrollRefused { status, reason } => {
                if matches!(self.step, Step::Enrolling { .. }) {
                    self.abort(
                        format!("hub refused re-enrolment ({status}): {reason}"),
                        true,
                        &mut out,
                    );
                }
            }
            RotationEvent::Failed { reason } => {
                if matches!(
                    self.step,
                    Step::GeneratingKey | Step::BuildingCsr { .. } | Step::Enrolling { .. }
                ) {
                    self.abort(format!("re-enrolment failed: {reason}"), false, &mut out);
                }
            }
            RotationEvent::KeyGenerated(_) | RotationEvent::Tick => {}
        }
        self.maybe_start(now_ms, &mut out);
        out
    }

    /// Starts a rotation if one is due and possible (a session is up: the
    /// trigger and the reports travel over it, and a rotation attempted
    /// offline would only fail).
    fn maybe_start(&mut self, now_ms: u64, out: &mut Vec<RotationAction>) {
        if self.step != Step::Idle || !self.connected {
            return;
        }
        let twin_due = !self.faults.has(Fault::IgnoreTwinRotate)
            && self.rotate_after_ms.is_some_and(|at| {
                at <= now_ms
                    && self.failed_for_ms != Some(at)
                    && self
                        .keystore
                        .active()
                        .is_some_and(|c| c.cert.stored_at_ms < at)
            });
        let renewal_due = self.renewal_due_at().is_some_and(|at| at <= now_ms);
        if !self.requested && !twin_due && !renewal_due {
            return;
        }
        self.from_twin = twin_due;
        self.from_renewal = !self.requested && !twin_due;
        self.requested = false;
        let Some(active) = self.keystore.active() else {
            self.fail("no credential to authenticate the re-enrolment".into());
            out.push(RotationAction::Report(self.report()));
            return;
        };
        let active_slot = active.slot;
        self.state = CredentialState::Rotating;
        self.reason = None;
        out.push(RotationAction::Report(self.report()));
        if self.faults.has(Fault::RotateSameKey) {
            self.step = Step::BuildingCsr { same_key: true };
            out.push(RotationAction::BuildCsr {
                slot: active_slot,
                include_private_key: self.faults.has(Fault::LeakKeyInCsr),
            });
        } else {
            self.step = Step::GeneratingKey;
            out.push(RotationAction::GenerateKey {
                slot: self.keystore.pending_slot(),
            });
        }
    }

    /// The keystore writes that make `cert` (and its key) the active credential.
    fn install(&mut self, cert: Certificate, same_key: bool) -> Result<Vec<Write>, KeystoreError> {
        let ks = &mut self.keystore;
        let mut writes = Vec::new();
        if same_key {
            // rotate-same-key: the certificate is for the current key.
            let key = ks.active().ok_or(KeystoreError::NoActive)?.key.clone();
            writes.extend(ks.store_pending_key(key)?);
        }
        if self.faults.has(Fault::RotateNonAtomic) {
            let key = ks.pending().ok_or(KeystoreError::NoPending)?.key.clone();
            writes.extend(ks.replace_active_cert_in_place(cert)?);
            writes.extend(ks.replace_active_key_in_place(key)?);
            writes.extend(ks.discard_pending());
        } else {
            writes.extend(ks.store_pending_cert(cert)?);
            writes.extend(ks.commit_pending()?);
        }
        Ok(writes)
    }

    /// Ends the rotation in progress as failed, keeping the old credential
    /// (or, with `drop-cred-on-error` and a refusal, erasing everything).
    fn abort(&mut self, reason: String, refused: bool, out: &mut Vec<RotationAction>) {
        let writes = if refused && self.faults.has(Fault::DropCredOnError) {
            self.presented = None;
            self.keystore.erase_all()
        } else {
            self.keystore.discard_pending()
        };
        if !writes.is_empty() {
            out.push(RotationAction::Persist(writes));
        }
        self.step = Step::Idle;
        if self.from_twin {
            self.failed_for_ms = self.rotate_after_ms;
        }
        if self.from_renewal {
            let not_after = self.keystore.active().map_or(0, |c| c.cert.not_after_ms);
            let half = not_after.saturating_sub(self.last_now_ms) / 2;
            self.renew_retry_at_ms = Some(self.last_now_ms + half.max(RENEW_RETRY_MIN_MS));
        }
        self.fail(reason);
        out.push(RotationAction::Report(self.report()));
    }

    fn fail(&mut self, reason: String) {
        self.state = CredentialState::Failed;
        self.reason = Some(reason);
    }
}

/// `"…"` with JSON escapes, or `null`.
pub(crate) fn json_opt(s: Option<&str>) -> String {
    s.map_or_else(|| String::from("null"), json_string)
}

/// A JSON string literal for `s`.
pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 date-time (`2026-11-25T12:00:00Z`, optional fraction,
/// `Z` or `±hh:mm`) to Unix ms. `None` if malformed or before 1970.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: core::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| d.iter().fold(0, |n, c| n * 10 + i64::from(c - b'0')))
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d, h, mi, sec) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    let month_days = [
        31,
        if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) {
            29
        } else {
            28
        },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo)
        || d < 1
        || d > month_days[(mo - 1) as usize]
        || h > 23
        || mi > 59
        || sec > 60
    {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0;
    if sep(i, b".") {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let ms_digits = &b[i + 1..i + 1 + digits.min(3)];
        frac_ms = ms_digits
            .iter()
            .fold(0, |n, c| n * 10 + i64::from(c - b'0'))
            * [100, 10, 1][ms_digits.len() - 1];
        i += 1 + digits;
    }
    let offset_s = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            (oh * 3600 + om * 60) * if *sign == b'+' { 1 } else { -1 }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec.min(59) - offset_s;
    u64::try_from(secs * 1000 + frac_ms).ok()
}

/// Formats Unix ms as RFC 3339 UTC with second precision (`2026-11-25T12:00:00Z`).
pub fn format_rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
