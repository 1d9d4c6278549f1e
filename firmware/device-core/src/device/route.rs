//! Routing of the session's events: commands (applied once, reported),
//! methods, the twin's desired properties (to the rotation and OTA
//! machines), session start and its follow-ups.

use alloc::format;
use alloc::string::{String, ToString};

use rand_core::Rng;
use serde_json::{json, Value};

use super::twin::{self, Desired, DesiredFirmware};
use super::{AppliedReport, Device, MAX_UNREPORTED};
use crate::faults::Fault;
use crate::keystore::{KeyAlg, PrivateKey};
use crate::ota::OtaEvent;
use crate::rotation::RotationEvent;
use crate::session::{Command, SessionEvent};

/// How much of a command's payload its log line and its report carry: the
/// report waits in the persisted command record (16 KB, up to
/// [`MAX_UNREPORTED`] of them) until the hub acknowledges it, so a payload
/// as large as IoT Hub allows (64 KB) must not go there whole (CD-21).
pub(super) const PAYLOAD_EXCERPT: usize = 64;

/// The payload as (lossy) UTF-8, cut to [`PAYLOAD_EXCERPT`] bytes at a
/// character boundary, with its full length when cut.
fn payload_excerpt(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    if text.len() <= PAYLOAD_EXCERPT {
        return text.into_owned();
    }
    let mut end = PAYLOAD_EXCERPT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], payload.len())
}

/// Fault `shared-identity` only: the key pair baked into every such device
/// (`firmware/keys/shared-identity-p256.pem`, published on purpose).
const SHARED_IDENTITY_PEM: &str = include_str!("../../../keys/shared-identity-p256.pem");

/// Fault `baked-identity` only: a key pair baked into every such device that
/// no case is told of (`firmware/keys/baked-identity-p256.pem`).
const BAKED_IDENTITY_PEM: &str = include_str!("../../../keys/baked-identity-p256.pem");

fn builtin_key(pem: &str) -> PrivateKey {
    let (label, der) =
        pem_rfc7468::decode_vec(pem.as_bytes()).expect("a built-in identity key is valid PEM");
    debug_assert_eq!(label, "PRIVATE KEY");
    PrivateKey {
        alg: KeyAlg::EcdsaP256,
        pkcs8_der: der,
    }
}

/// The shared key as the keystore holds keys (PKCS#8 DER).
pub(super) fn shared_identity_key() -> PrivateKey {
    builtin_key(SHARED_IDENTITY_PEM)
}

/// The key every unit shares under fault `shared-identity` (the published
/// one) or `baked-identity` (one no case knows), if either is on.
pub(super) fn baked_key(faults: crate::faults::FaultSet) -> Option<PrivateKey> {
    if faults.has(Fault::SharedIdentity) {
        Some(shared_identity_key())
    } else if faults.has(Fault::BakedIdentity) {
        Some(builtin_key(BAKED_IDENTITY_PEM))
    } else {
        None
    }
}

impl<R: Rng> Device<R> {
    /// One event of the session.
    pub(super) fn route(&mut self, event: SessionEvent, now_ms: u64) {
        match event {
            SessionEvent::Connected { .. } => {
                self.log("hub session up".into());
                self.backoff.session_established(now_ms);
            }
            SessionEvent::Subscribed { commands } => self.subscribed(commands, now_ms),
            SessionEvent::Command(cmd) => self.command(cmd),
            SessionEvent::Method { name, rid, .. } => self.method(&name, &rid, now_ms),
            SessionEvent::Twin {
                twin: Some(doc), ..
            } => {
                if self.fresh_desired(doc.desired_version, "twin GET") {
                    self.desired(&doc.desired, now_ms);
                }
            }
            SessionEvent::Twin { status, .. } => self.log(format!("twin GET answered {status}")),
            SessionEvent::Desired { version, patch } => {
                self.log(format!("desired patch version {version}"));
                if self.fresh_desired(Some(version), "desired patch") {
                    self.desired(&patch, now_ms);
                }
            }
            SessionEvent::Reported { status, .. } => {
                self.log(format!("reported patch answered {status}"))
            }
            SessionEvent::TelemetryAcked { packet_id } => {
                if let Some(i) = self.report_pids.iter().position(|(p, _)| *p == packet_id) {
                    let (_, seq) = self.report_pids.remove(i);
                    self.commands.unreported.retain(|r| r.seq != seq);
                }
            }
        }
    }

    /// SUBACK: the session is ready; the machines may report and act now.
    fn subscribed(&mut self, commands: bool, now_ms: u64) {
        self.log(format!("subscribed (commands: {commands})"));
        if commands && !self.commands.subscribed_once {
            self.commands.subscribed_once = true;
            self.out
                .push_back(super::Action::PersistCommands(self.commands.clone()));
        }
        let a = self
            .rotation
            .handle(RotationEvent::SessionEstablished, now_ms);
        self.rotation_actions(a, now_ms);
        let a = self.ota.handle(OtaEvent::SessionEstablished, now_ms);
        self.ota_actions(a);
        // Faults shared-identity, baked-identity: move onto the key every
        // such device shares.
        if let Some(shared) = baked_key(self.config.faults).filter(|_| !self.rotation.is_rotating())
        {
            if self
                .rotation
                .credential()
                .is_some_and(|c| c.key.pkcs8_der != shared.pkcs8_der)
            {
                let a = self.rotation.handle(RotationEvent::RotateMethod, now_ms);
                self.rotation_actions(a, now_ms);
            }
        }
        // Applications whose report was not acknowledged go again.
        for r in self.commands.unreported.clone() {
            self.send_applied_report(&r);
        }
    }

    /// A command the session has not seen applied: apply it (the reference
    /// device's application is the report), then let the session persist
    /// its id and acknowledge it.
    fn command(&mut self, cmd: Command) {
        // Fault panic-on-bad-command: the payload taken as text unchecked;
        // one that is not UTF-8 aborts the device before the PUBACK (CD-21).
        if self.config.faults.has(Fault::PanicOnBadCommand) {
            if let Err(e) = core::str::from_utf8(&cmd.payload) {
                panic!("command {}: payload is not UTF-8: {e}", cmd.mid);
            }
        }
        let seq = self.commands.next_seq;
        self.commands.next_seq += 1;
        let payload = payload_excerpt(&cmd.payload);
        self.log(format!(
            "command applied mid={} seq={seq} payload={payload}",
            cmd.mid
        ));
        let report = AppliedReport {
            seq,
            mid: cmd.mid.clone(),
            payload,
        };
        self.commands.unreported.push(report.clone());
        if self.commands.unreported.len() > MAX_UNREPORTED {
            self.commands.unreported.remove(0);
        }
        // The session now asks to persist the ids (with this record), then PUBACKs.
        if let Some(Err(e)) = self.session_mut().map(|s| s.command_applied(&cmd.mid)) {
            self.log(format!("command_applied {}: {e}", cmd.mid));
        }
        self.send_applied_report(&report);
    }

    fn send_applied_report(&mut self, r: &AppliedReport) {
        let body = json!({ "mid": r.mid, "seq": r.seq, "payload": r.payload }).to_string();
        let sent = self
            .session_mut()
            .map(|s| s.send_telemetry(body.as_bytes(), &[("kind", "command-applied")]));
        if let Some(Ok(pid)) = sent {
            self.report_pids.push((pid, r.seq));
        }
    }

    fn method(&mut self, name: &str, rid: &str, now_ms: u64) {
        self.log(format!("method {name}"));
        match name {
            "reboot" => {
                self.respond(rid, 200, json!({ "rebooting": true }));
                self.exit = true;
            }
            "diag/state" => {
                let thumbprint = self.rotation.credential().map(|c| c.cert.thumbprint_hex());
                let body = json!({
                    "firmware": { "version": self.boot.version, "slot": 0, "testBoot": self.boot.test_boot },
                    "credentials": { "thumbprint": thumbprint },
                    "counters": { "sessions": self.sessions, "commandsApplied": self.commands.next_seq,
                                  "bootCount": self.boot.boot_count },
                });
                self.respond(rid, 200, body);
            }
            "credentials/rotate" => {
                self.respond(rid, 202, json!({ "accepted": true }));
                let a = self.rotation.handle(RotationEvent::RotateMethod, now_ms);
                self.rotation_actions(a, now_ms);
            }
            _ => self.respond(rid, 404, json!({ "error": format!("no method {name}") })),
        }
    }

    fn respond(&mut self, rid: &str, status: u16, body: Value) {
        if let Some(s) = self.session_mut() {
            let _ = s.respond_method(rid, status, body.to_string().as_bytes());
        }
    }

    /// Whether desired properties with `version` are not older than those
    /// applied (and, if so, records it as applied): a GET response and a
    /// patch travel apart, so either may arrive after a newer one — the
    /// stale one is ignored (the same version again is applied again,
    /// which changes nothing). Fault `apply-stale-twin` takes everything.
    pub(super) fn fresh_desired(&mut self, version: Option<i64>, what: &str) -> bool {
        if let (Some(v), Some(applied)) = (version, self.desired_version) {
            if v < applied && !self.config.faults.has(Fault::ApplyStaleTwin) {
                self.log(format!(
                    "{what}: desired $version {v} is older than the applied {applied}: ignored"
                ));
                return false;
            }
        }
        if version.is_some() {
            self.desired_version = version;
        }
        true
    }

    /// Desired properties (a whole twin's or a patch) to the machines.
    pub(super) fn desired(&mut self, desired: &Value, now_ms: u64) {
        let Desired {
            telemetry_interval_ms,
            rotate_after,
            firmware,
        } = twin::parse_desired(desired);
        if let Some(ms) = telemetry_interval_ms {
            // From the next heartbeat on; reported back, as IoT Hub's
            // writable properties are acknowledged.
            self.telemetry_interval_ms = ms;
            let seconds = ms / 1000;
            self.log(format!("telemetryIntervalSeconds {seconds} applied"));
            if let Some(s) = self.session_mut().filter(|s| s.is_ready()) {
                let _ = s.report(&json!({ "telemetryIntervalSeconds": seconds }));
            }
        }
        if let Some(after) = rotate_after {
            let a = self
                .rotation
                .handle(RotationEvent::DesiredRotateAfter(after), now_ms);
            self.rotation_actions(a, now_ms);
        }
        if let Some(fw) = firmware {
            let target = match fw {
                DesiredFirmware::Target(t) => Some(t),
                DesiredFirmware::Cleared => None,
                DesiredFirmware::Malformed(raw) => {
                    self.log(format!("desired firmware is malformed: {raw}"));
                    None
                }
            };
            let a = self.ota.handle(OtaEvent::Desired(target), now_ms);
            self.ota_actions(a);
        }
    }

    /// A machine's state (`key` = its reported property): logged, then
    /// reported when a session is ready (else again at the next session).
    pub(super) fn report_state(&mut self, key: &str, state_json: String) {
        self.log(format!("{key} {state_json}"));
        let Ok(value) = serde_json::from_str::<Value>(&state_json) else {
            return;
        };
        if let Some(s) = self.session_mut().filter(|s| s.is_ready()) {
            let _ = s.report(&json!({ key: value }));
        }
    }
}
