//! What the device does with session events and with the rotation and OTA
//! machines' actions: the glue between `device-core` and real IO.

use device_core::faults::Fault;
use device_core::keystore::{KeyAlg, PrivateKey};
use device_core::ota::{parse_sha256_hex, FirmwareTarget, OtaAction, OtaEvent, VerifyFailure};
use device_core::rotation::{RotationAction, RotationEvent};
use device_core::session::{Session, SessionEvent};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{now_ms, store, AppliedReport, Background, Device, RESET};
use crate::bootloader::built_in_keys;
use crate::device_log;
use crate::flash::Region;
use crate::https::{HttpsError, HubHttps};

impl Device {
    pub(super) fn session_event(
        &mut self,
        event: SessionEvent,
        session: &mut Session,
    ) -> anyhow::Result<()> {
        let now = now_ms();
        match event {
            SessionEvent::Connected { .. } => {
                device_log!("app: hub session up");
                self.backoff.session_established(now);
            }
            SessionEvent::Subscribed { commands } => {
                // Ready (SUBACK): the machines may report and confirm now.
                device_log!("app: subscribed (commands: {commands})");
                if commands && !self.commands.subscribed_once {
                    self.commands.subscribed_once = true;
                    store::COMMANDS.store(&self.flash, &self.commands)?;
                }
                let a = self.rotation.handle(RotationEvent::SessionEstablished, now);
                self.rotation_actions(a, Some(session))?;
                let a = self.ota.handle(OtaEvent::SessionEstablished, now);
                self.ota_actions(a, Some(session))?;
                // Fault shared-identity: move onto the key every such device shares.
                if self.faults.has(Fault::SharedIdentity) && !self.rotation.is_rotating() {
                    let shared = shared_identity_key()?.serialize_der();
                    if self
                        .rotation
                        .credential()
                        .is_some_and(|c| c.key.pkcs8_der != shared)
                    {
                        let a = self.rotation.handle(RotationEvent::RotateMethod, now);
                        self.rotation_actions(a, Some(session))?;
                    }
                }
                // Applications whose report was not acknowledged go again.
                for r in self.commands.unreported.clone() {
                    self.send_applied_report(session, &r);
                }
            }
            SessionEvent::Command(cmd) => {
                let seq = self.commands.next_seq;
                self.commands.next_seq += 1;
                let payload = String::from_utf8_lossy(&cmd.payload).into_owned();
                device_log!(
                    "app: command applied mid={} seq={seq} payload={payload}",
                    cmd.mid
                );
                let report = AppliedReport {
                    seq,
                    mid: cmd.mid.clone(),
                    payload,
                };
                self.commands.unreported.push(report.clone());
                // Bounded: the oldest unreported application is dropped first.
                if self.commands.unreported.len() > 32 {
                    self.commands.unreported.remove(0);
                }
                // The session now asks to persist the ids (with this record), then PUBACKs.
                session
                    .command_applied(&cmd.mid)
                    .map_err(|e| anyhow::anyhow!("command_applied: {e}"))?;
                self.send_applied_report(session, &report);
            }
            SessionEvent::Method { name, rid, payload } => {
                self.method(session, &name, &rid, &payload)?
            }
            SessionEvent::Twin {
                twin: Some(doc), ..
            } => self.desired(session, &doc.desired)?,
            SessionEvent::Twin { status, .. } => device_log!("app: twin GET answered {status}"),
            SessionEvent::Desired { version, patch } => {
                device_log!("app: desired patch version {version}");
                self.desired(session, &patch)?
            }
            SessionEvent::Reported { status, .. } => {
                device_log!("app: reported patch answered {status}")
            }
            SessionEvent::TelemetryAcked { packet_id } => {
                if let Some(i) = self.report_pids.iter().position(|(p, _)| *p == packet_id) {
                    let (_, seq) = self.report_pids.remove(i);
                    self.commands.unreported.retain(|r| r.seq != seq);
                }
            }
        }
        Ok(())
    }

    fn send_applied_report(&mut self, session: &mut Session, r: &AppliedReport) {
        let body = json!({ "mid": r.mid, "seq": r.seq, "payload": r.payload }).to_string();
        if let Ok(pid) = session.send_telemetry(body.as_bytes(), &[("kind", "command-applied")]) {
            self.report_pids.push((pid, r.seq));
        }
    }

    fn method(
        &mut self,
        session: &mut Session,
        name: &str,
        rid: &str,
        _payload: &[u8],
    ) -> anyhow::Result<()> {
        device_log!("app: method {name}");
        let respond = |s: &mut Session, status: u16, body: Value| {
            let _ = s.respond_method(rid, status, body.to_string().as_bytes());
        };
        match name {
            "reboot" => {
                respond(session, 200, json!({ "rebooting": true }));
                self.exit = Some(RESET);
            }
            "diag/state" => {
                let cred = self.rotation.credential();
                let body = json!({
                    "firmware": { "version": self.boot.version, "slot": 0, "testBoot": self.boot.test_boot },
                    "credentials": { "thumbprint": cred.map(|c| c.cert.thumbprint_hex()) },
                    "counters": { "sessions": self.sessions, "commandsApplied": self.commands.next_seq,
                                  "bootCount": self.boot.boot_count },
                });
                respond(session, 200, body);
            }
            "credentials/rotate" => {
                respond(session, 202, json!({ "accepted": true }));
                let a = self.rotation.handle(RotationEvent::RotateMethod, now_ms());
                self.rotation_actions(a, Some(session))?;
            }
            _ => respond(
                session,
                404,
                json!({ "error": format!("no method {name}") }),
            ),
        }
        Ok(())
    }

    /// Applies desired properties (a whole twin's or a patch).
    fn desired(&mut self, session: &mut Session, desired: &Value) -> anyhow::Result<()> {
        if let Some(secs) = desired
            .get("telemetryIntervalSeconds")
            .and_then(Value::as_u64)
        {
            if secs > 0 {
                self.telemetry_interval = std::time::Duration::from_secs(secs);
            }
        }
        if let Some(creds) = desired.get("credentials") {
            let after = creds
                .get("rotateAfter")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let a = self
                .rotation
                .handle(RotationEvent::DesiredRotateAfter(after), now_ms());
            self.rotation_actions(a, Some(session))?;
        }
        if let Some(fw) = desired.get("firmware") {
            let target = (|| {
                Some(FirmwareTarget {
                    version: fw.get("version")?.as_str()?.to_owned(),
                    url: fw.get("url")?.as_str()?.to_owned(),
                    sha256: parse_sha256_hex(fw.get("sha256")?.as_str()?)?,
                    size: u32::try_from(fw.get("size")?.as_u64()?).ok()?,
                })
            })();
            if target.is_none() && !fw.is_null() {
                device_log!("app: desired firmware is malformed: {fw}");
            }
            let a = self.ota.handle(OtaEvent::Desired(target), now_ms());
            self.ota_actions(a, Some(session))?;
        }
        Ok(())
    }

    pub(super) fn tick(&mut self, mut session: Option<&mut Session>) -> anyhow::Result<()> {
        let now = now_ms();
        if self.rotation.next_deadline().is_some_and(|d| d <= now) {
            let a = self.rotation.handle(RotationEvent::Tick, now);
            self.rotation_actions(a, session.as_deref_mut())?;
        }
        if self.ota.next_deadline().is_some_and(|d| d <= now) {
            let a = self.ota.handle(OtaEvent::Tick, now);
            self.ota_actions(a, session)?;
        }
        Ok(())
    }

    pub(super) fn background(
        &mut self,
        bg: Background,
        session: Option<&mut Session>,
    ) -> anyhow::Result<()> {
        let now = now_ms();
        match bg {
            Background::Enrolled(result) => {
                let event = match result {
                    Ok(cert_der) => {
                        let not_after_ms = super::not_after_ms(&cert_der);
                        RotationEvent::Enrolled {
                            cert_der,
                            not_after_ms,
                        }
                    }
                    Err((0, reason)) => RotationEvent::Failed { reason },
                    Err((status, reason)) => RotationEvent::EnrollRefused { status, reason },
                };
                let a = self.rotation.handle(event, now);
                self.rotation_actions(a, session)
            }
            Background::Chunk { offset, data } => {
                if std::mem::take(&mut self.awaiting_first_chunk) {
                    // Once per (re)start: the bench knows bytes are arriving.
                    device_log!("app: OTA: receiving from byte {offset}");
                }
                let a = self.ota.handle(
                    OtaEvent::Chunk {
                        offset: offset as u32,
                        data,
                    },
                    now,
                );
                self.ota_actions(a, session)
            }
            Background::DownloadEnded(Ok(())) => Ok(()),
            Background::DownloadEnded(Err(reason)) => {
                let a = self
                    .ota
                    .handle(OtaEvent::DownloadInterrupted { reason }, now);
                self.ota_actions(a, session)
            }
        }
    }

    fn https(&self) -> anyhow::Result<HubHttps> {
        Ok(HubHttps {
            addr: self.prov.hub_https()?,
            host: self.prov.hub_host.clone(),
            tls: self.tls(&[b"http/1.1"])?,
        })
    }

    /// A machine's state report (`key` = its reported property): logged,
    /// then sent as `{key: state}` when a session is ready.
    fn report_state(
        session: Option<&mut Session>,
        key: &str,
        state_json: &str,
    ) -> anyhow::Result<()> {
        device_log!("app: {key} {state_json}");
        let value: Value = serde_json::from_str(state_json)?;
        Self::report(session, json!({ key: value }));
        Ok(())
    }

    fn report(session: Option<&mut Session>, patch: Value) {
        match session {
            Some(s) if s.is_ready() => {
                let _ = s.report(&patch);
            }
            // The machines report again at the next session start.
            _ => {}
        }
    }

    pub(super) fn rotation_actions(
        &mut self,
        actions: Vec<RotationAction>,
        mut session: Option<&mut Session>,
    ) -> anyhow::Result<()> {
        let mut queue = std::collections::VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            let now = now_ms();
            match action {
                RotationAction::Persist(writes) => {
                    super::KeystoreFlash { flash: &self.flash }.apply(&writes)?
                }
                RotationAction::GenerateKey { slot } => {
                    let key = if self.faults.has(Fault::SharedIdentity) {
                        shared_identity_key()?
                    } else {
                        rcgen::KeyPair::generate()?
                    };
                    device_log!("app: rotation: new key pair generated for slot {slot}");
                    let pk = PrivateKey {
                        alg: KeyAlg::EcdsaP256,
                        pkcs8_der: key.serialize_der(),
                    };
                    queue.extend(self.rotation.handle(RotationEvent::KeyGenerated(pk), now));
                }
                RotationAction::BuildCsr {
                    slot,
                    include_private_key,
                } => {
                    let ks = self.rotation.keystore();
                    let key = match ks.pending() {
                        Some(p) if p.slot == slot => p.key.clone(),
                        _ => ks
                            .active()
                            .map(|c| c.key.clone())
                            .ok_or_else(|| anyhow::anyhow!("no key for the CSR"))?,
                    };
                    let event = match build_csr(
                        &self.prov.device_id,
                        &key.pkcs8_der,
                        include_private_key,
                    ) {
                        Ok(der) => RotationEvent::CsrBuilt(der),
                        Err(e) => RotationEvent::Failed {
                            reason: format!("building the CSR: {e}"),
                        },
                    };
                    queue.extend(self.rotation.handle(event, now));
                }
                RotationAction::PostSimpleReenroll { csr_der } => {
                    device_log!("app: rotation: POST simplereenroll");
                    let https = self.https()?;
                    let tx = self.bg_tx.clone();
                    tokio::spawn(async move {
                        let result = https.simple_reenroll(&csr_der).await.map_err(|e| match e {
                            HttpsError::Status { status, body, .. } => (status, body),
                            other => (0, other.to_string()),
                        });
                        let _ = tx.send(Background::Enrolled(result));
                    });
                }
                RotationAction::Reconnect { slot } => {
                    device_log!("app: rotation: reconnecting with the credential in slot {slot}");
                    self.reconnect_now = true;
                }
                RotationAction::Report(r) => {
                    Self::report_state(session.as_deref_mut(), "credentials", &r.to_json())?
                }
            }
        }
        Ok(())
    }

    pub(super) fn ota_actions(
        &mut self,
        actions: Vec<OtaAction>,
        mut session: Option<&mut Session>,
    ) -> anyhow::Result<()> {
        let mut queue = std::collections::VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            let now = now_ms();
            match action {
                OtaAction::PersistRecord(record) => {
                    store::OTA.store(&self.flash, &record.encode())?
                }
                OtaAction::EraseSecondary => {
                    let size = self.flash.size(Region::Secondary);
                    self.flash.erase(Region::Secondary, 0, size)?;
                }
                OtaAction::StartDownload { url, offset } => self.start_download(&url, offset)?,
                OtaAction::AbortDownload => {
                    if let Some(h) = self.download.take() {
                        h.abort();
                    }
                }
                OtaAction::WriteChunk { offset, data } => {
                    self.flash
                        .write(Region::Secondary, u64::from(offset), &data)?;
                }
                OtaAction::Verify {
                    expected_sha256,
                    expected_size,
                    check_hash,
                    check_signature,
                    min_security_counter,
                } => {
                    let result = self.verify_secondary(
                        expected_sha256,
                        expected_size,
                        check_hash,
                        check_signature,
                        min_security_counter,
                    )?;
                    device_log!("app: OTA verification: {result:?}");
                    let event = match result {
                        Ok(()) => OtaEvent::Verified,
                        Err(f) => OtaEvent::VerifyFailed(f),
                    };
                    queue.extend(self.ota.handle(event, now));
                }
                OtaAction::MarkTestBoot => device_core::boot::request_test(&mut self.flash)?,
                OtaAction::Reset => {
                    device_log!("app: OTA: resetting into the new image");
                    self.exit = Some(RESET);
                }
                OtaAction::Confirm => {
                    device_core::boot::confirm(&mut self.flash)?;
                    device_log!("app: OTA: image confirmed");
                }
                OtaAction::Report(r) => {
                    Self::report_state(session.as_deref_mut(), "firmware", &r.to_json())?
                }
            }
        }
        Ok(())
    }

    fn start_download(&mut self, url: &str, offset: u32) -> anyhow::Result<()> {
        if let Some(h) = self.download.take() {
            h.abort();
        }
        let tx = self.bg_tx.clone();
        // The path part of https://{hub-host}/firmware/NAME.
        let path = url.find("://").map_or(url, |i| &url[i + 3..]);
        let path = path.find('/').map_or("/", |i| &path[i..]).to_owned();
        device_log!("app: OTA: downloading {path} from byte {offset}");
        self.awaiting_first_chunk = true;
        if self.faults.has(Fault::OtaOverHttp) {
            let addr = std::net::SocketAddr::new(self.prov.hub_https()?.ip(), 80);
            let host = self.prov.hub_host.clone();
            self.download = Some(tokio::spawn(async move {
                let r = super::plain_http_get(addr, &host, &path, u64::from(offset), &tx).await;
                let _ = tx.send(Background::DownloadEnded(r));
            }));
            return Ok(());
        }
        let https = self.https()?;
        self.download = Some(tokio::spawn(async move {
            let chunks = tx.clone();
            let r = https
                .download(&path, u64::from(offset), |off, data| {
                    chunks
                        .send(Background::Chunk {
                            offset: off,
                            data: data.to_vec(),
                        })
                        .map_err(|_| "device stopped".to_string())
                })
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
            let _ = tx.send(Background::DownloadEnded(r));
        }));
        Ok(())
    }

    /// The checks the OTA machine asks for, on the secondary slot.
    fn verify_secondary(
        &self,
        expected_sha256: [u8; 32],
        expected_size: u32,
        check_hash: bool,
        check_signature: bool,
        min_security_counter: Option<u32>,
    ) -> anyhow::Result<Result<(), VerifyFailure>> {
        let bytes = self
            .flash
            .read(Region::Secondary, 0, expected_size as usize)?;
        if check_hash && <[u8; 32]>::from(Sha256::digest(&bytes)) != expected_sha256 {
            return Ok(Err(VerifyFailure::Hash));
        }
        let image = match mcuboot_image::parse(&bytes) {
            Ok(i) => i,
            Err(e) => return Ok(Err(VerifyFailure::Malformed(e.to_string()))),
        };
        if image.len() != expected_size as usize {
            return Ok(Err(VerifyFailure::Size {
                expected: expected_size,
                actual: image.len() as u32,
            }));
        }
        if check_hash && image.check_hash().is_err() {
            return Ok(Err(VerifyFailure::Hash));
        }
        if check_signature {
            // Without the hash check (fault skip-hash) the signature is
            // checked over the stored hash TLV, as such a firmware would.
            let keys = built_in_keys();
            let ok = if check_hash {
                image.check_signature(&keys).is_ok()
            } else {
                image.check_signature_over_stored_hash(&keys).is_ok()
            };
            if !ok {
                return Ok(Err(VerifyFailure::Signature));
            }
        }
        if let Some(min) = min_security_counter {
            let counter = image.security_counter().unwrap_or(0);
            if counter < min {
                return Ok(Err(VerifyFailure::SecurityCounter {
                    image: counter,
                    minimum: min,
                }));
            }
        }
        Ok(Ok(()))
    }
}

/// Fault `shared-identity` only: the key baked into every faulty device.
fn shared_identity_key() -> anyhow::Result<rcgen::KeyPair> {
    Ok(rcgen::KeyPair::from_pem(include_str!(
        "../../../keys/shared-identity-p256.pem"
    ))?)
}

/// A CSR for `CN=device_id` signed with the PKCS#8 key. `leak` (fault
/// `leak-key-in-csr`) adds the private key as a request extension.
fn build_csr(device_id: &str, pkcs8_der: &[u8], leak: bool) -> anyhow::Result<Vec<u8>> {
    let key = rcgen::KeyPair::try_from(pkcs8_der)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, device_id);
    if leak {
        // A private-arc OID; the value is the PKCS#8 DER, in the clear.
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 55555, 1],
                pkcs8_der.to_vec(),
            ));
    }
    Ok(params.serialize_request(&key)?.der().to_vec())
}
