use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::keystore::{self, KeyAlg, REGION_SIZE};

const T0: u64 = 1_790_000_000_000; // 2026-09-21, the device clock at boot
const NOT_AFTER: u64 = 1_800_000_000_000;

/// Fake key pairs: private "secret-N", public "public-N".
fn key(n: u32) -> PrivateKey {
    PrivateKey {
        alg: KeyAlg::EcdsaP256,
        pkcs8_der: format!("secret-{n}").into_bytes(),
    }
}

fn public_of(key: &PrivateKey) -> String {
    String::from_utf8(key.pkcs8_der.clone())
        .unwrap()
        .replace("secret", "public")
}

/// A credential works if its certificate certifies its key's public half.
fn works(c: &Credential) -> bool {
    let cert = String::from_utf8(c.cert.der.clone()).unwrap();
    cert.starts_with(&format!("cert:{}:", public_of(&c.key)))
}

/// The emulated shell: flash region, key generator, CSR builder, a fake EST
/// hub, and the MQTT connection. Executes actions, feeds answers back.
struct Shell {
    region: Vec<u8>,
    rot: Rotation,
    now: u64,
    next_key: u32,
    serial: u32,
    refuse: Option<(u16, String)>,
    csrs: Vec<String>,
    generated: Vec<u8>,
    reconnects: Vec<u8>,
    reports: Vec<CredentialsReport>,
    /// Power cut before write number `cut.0`, which lands torn: its first
    /// `cut.1` bytes over the old ones.
    cut: Option<(usize, usize)>,
    writes_done: usize,
    dead: bool,
}

impl Shell {
    /// A device provisioned with key 1, powered on.
    fn provisioned(faults: FaultSet) -> Shell {
        let mut region = vec![0xff; REGION_SIZE];
        let mut ks = Keystore::decode(&region).unwrap();
        let mut writes = ks.store_pending_key(key(1)).unwrap();
        writes.extend(
            ks.store_pending_cert(
                Certificate::new(b"cert:public-1:0".to_vec(), NOT_AFTER, 0).valid_from(T0 - 1000),
            )
            .unwrap(),
        );
        writes.extend(ks.commit_pending().unwrap());
        keystore::apply(&mut region, &writes).unwrap();
        Shell::boot(region, faults)
    }

    fn boot(region: Vec<u8>, faults: FaultSet) -> Shell {
        let (rot, actions) = Rotation::power_on(Keystore::decode(&region).unwrap(), faults);
        let mut shell = Shell {
            region,
            rot,
            now: T0,
            next_key: 2,
            serial: 1,
            refuse: None,
            csrs: Vec::new(),
            generated: Vec::new(),
            reconnects: Vec::new(),
            reports: Vec::new(),
            cut: None,
            writes_done: 0,
            dead: false,
        };
        shell.execute(actions);
        shell
    }

    fn send(&mut self, event: RotationEvent) {
        let mut queue = VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            if self.dead {
                return;
            }
            let actions = self.rot.handle(event, self.now);
            queue.extend(self.execute(actions));
        }
    }

    fn execute(&mut self, actions: Vec<RotationAction>) -> Vec<RotationEvent> {
        let mut answers = Vec::new();
        for action in actions {
            if self.dead {
                break;
            }
            match action {
                RotationAction::Persist(writes) => {
                    for w in writes {
                        if self.cut.is_some_and(|(at, _)| at == self.writes_done) {
                            let torn = self.cut.unwrap().1.min(w.bytes.len());
                            let start = w.offset as usize;
                            self.region[start..start + torn].copy_from_slice(&w.bytes[..torn]);
                            self.dead = true;
                            break;
                        }
                        keystore::apply(&mut self.region, &[w]).unwrap();
                        self.writes_done += 1;
                    }
                }
                RotationAction::GenerateKey { slot } => {
                    self.generated.push(slot);
                    answers.push(RotationEvent::KeyGenerated(key(self.next_key)));
                    self.next_key += 1;
                }
                RotationAction::BuildCsr {
                    slot,
                    include_private_key,
                } => {
                    // The shell reads the key from flash, as a real one would.
                    let ks = Keystore::decode(&self.region).unwrap();
                    let key = match (ks.pending(), ks.active()) {
                        (Some(p), _) if p.slot == slot => p.key.clone(),
                        (_, Some(a)) if a.slot == slot => a.key.clone(),
                        _ => panic!("BuildCsr for slot {slot}, which holds no key"),
                    };
                    let mut csr = format!("csr:{}", public_of(&key));
                    if include_private_key {
                        csr += &format!(";attr:{}", String::from_utf8(key.pkcs8_der).unwrap());
                    }
                    self.csrs.push(csr.clone());
                    answers.push(RotationEvent::CsrBuilt(csr.into_bytes()));
                }
                RotationAction::PostSimpleReenroll { csr_der } => {
                    assert!(
                        self.rot.credential().is_some(),
                        "re-enrolment needs a client certificate"
                    );
                    answers.push(match &self.refuse {
                        Some((status, reason)) => RotationEvent::EnrollRefused {
                            status: *status,
                            reason: reason.clone(),
                        },
                        None => {
                            let csr = String::from_utf8(csr_der).unwrap();
                            let public = csr
                                .trim_start_matches("csr:")
                                .split(';')
                                .next()
                                .unwrap()
                                .to_string();
                            self.serial += 1;
                            let cert_der = format!("cert:{public}:{}", self.serial).into_bytes();
                            RotationEvent::Enrolled {
                                cert_der,
                                not_after_ms: NOT_AFTER + u64::from(self.serial),
                                not_before_ms: self.now,
                            }
                        }
                    });
                }
                RotationAction::Reconnect { slot } => {
                    self.reconnects.push(slot);
                    answers.push(RotationEvent::SessionLost);
                    answers.push(RotationEvent::SessionEstablished);
                }
                RotationAction::Report(r) => self.reports.push(r),
            }
        }
        answers
    }

    fn active(&self) -> Credential {
        Keystore::decode(&self.region)
            .unwrap()
            .active()
            .cloned()
            .unwrap()
    }

    fn last_report(&self) -> &CredentialsReport {
        self.reports.last().unwrap()
    }
}

fn faults(f: Fault) -> FaultSet {
    FaultSet::NONE.with(f)
}

/// Connects and asks for a rotation through the method.
fn rotate_by_method(shell: &mut Shell) {
    shell.send(RotationEvent::SessionEstablished);
    shell.send(RotationEvent::RotateMethod);
}

#[test]
fn happy_path_new_key_new_cert_reconnect_and_report() {
    let mut s = Shell::provisioned(FaultSet::NONE);
    let old = s.active();
    assert_eq!(s.rot.credential(), Some(&old));
    rotate_by_method(&mut s);
    let new = s.active();
    assert!(works(&new));
    assert_ne!(new.key, old.key, "KR-01: a new key");
    assert_ne!(new.slot, old.slot);
    assert_eq!(
        s.generated,
        vec![new.slot],
        "the key is generated for the pending slot"
    );
    assert_eq!(
        s.csrs,
        vec!["csr:public-2".to_string()],
        "KR-03: the CSR carries only the public key"
    );
    assert_eq!(
        s.reconnects,
        vec![new.slot],
        "KR-02: reconnect with the new certificate"
    );
    assert_eq!(s.rot.credential(), Some(&new));
    assert!(Keystore::decode(&s.region).unwrap().pending().is_none());
    let states: Vec<_> = s.reports.iter().map(|r| r.state).collect();
    assert_eq!(
        states,
        [
            CredentialState::Idle,
            CredentialState::Rotating,
            CredentialState::Rotated
        ]
    );
    let report = s.last_report();
    assert_eq!(
        report.thumbprint.as_deref(),
        Some(new.cert.thumbprint_hex().as_str())
    );
    assert_eq!(
        report.not_after,
        Some(format_rfc3339(new.cert.not_after_ms))
    );
    assert_eq!(report.reason, None);
    assert!(!s.rot.is_rotating() && s.rot.state() == CredentialState::Rotated);
    // And again: the slots alternate, the machine is reusable.
    rotate_by_method(&mut s);
    assert_eq!(s.active().slot, old.slot);
    assert!(works(&s.active()));
}

#[test]
fn a_refusal_keeps_the_old_credential_and_reports_failed() {
    let mut s = Shell::provisioned(FaultSet::NONE);
    let old = s.active();
    s.refuse = Some((503, "enrolment is refused".into()));
    rotate_by_method(&mut s);
    assert_eq!(s.active(), old);
    assert_eq!(s.rot.credential(), Some(&old));
    assert!(
        Keystore::decode(&s.region).unwrap().pending().is_none(),
        "the pending key is discarded"
    );
    assert!(s.reconnects.is_empty());
    let r = s.last_report();
    assert_eq!(r.state, CredentialState::Failed);
    assert_eq!(
        r.thumbprint.as_deref(),
        Some(old.cert.thumbprint_hex().as_str())
    );
    assert!(r.reason.as_deref().unwrap().contains("503"), "{r:?}");
    // A later attempt that the hub accepts still works.
    s.refuse = None;
    s.send(RotationEvent::RotateMethod);
    assert!(works(&s.active()) && s.active() != old);
}

#[test]
fn a_local_failure_also_keeps_the_old_credential() {
    let mut s = Shell::provisioned(FaultSet::NONE);
    let old = s.active();
    s.send(RotationEvent::SessionEstablished);
    // Drive by hand so the CSR step can fail.
    let actions = s.rot.handle(RotationEvent::RotateMethod, T0);
    assert!(matches!(
        actions[..],
        [
            RotationAction::Report(_),
            RotationAction::GenerateKey { .. }
        ]
    ));
    let actions = s.rot.handle(RotationEvent::KeyGenerated(key(9)), T0);
    s.execute(actions);
    let actions = s.rot.handle(
        RotationEvent::Failed {
            reason: "no entropy".into(),
        },
        T0,
    );
    s.execute(actions);
    assert_eq!(s.active(), old);
    assert!(Keystore::decode(&s.region).unwrap().pending().is_none());
    assert!(s
        .last_report()
        .reason
        .as_deref()
        .unwrap()
        .contains("no entropy"));
    // Stale answers after the failure change nothing.
    assert!(s
        .rot
        .handle(
            RotationEvent::Enrolled {
                cert_der: b"cert:public-9:9".to_vec(),
                not_after_ms: 0,
                not_before_ms: 0,
            },
            T0
        )
        .is_empty());
    assert!(s
        .rot
        .handle(RotationEvent::CsrBuilt(b"x".to_vec()), T0)
        .is_empty());
    assert_eq!(s.rot.keystore().active(), Some(&old));
}

/// Runs a method-triggered rotation with a power cut before write `at`
/// (torn after `torn` bytes), then reboots and returns the shell after boot
/// and whether the cut left a pending credential.
fn rotation_cut_at(faults: FaultSet, at: usize, torn: usize) -> Option<(Shell, bool)> {
    let mut s = Shell::provisioned(faults);
    s.cut = Some((at, torn));
    rotate_by_method(&mut s);
    if !s.dead {
        return None;
    }
    let had_pending = Keystore::decode(&s.region).unwrap().pending().is_some();
    let mut rebooted = Shell::boot(s.region, faults);
    rebooted.send(RotationEvent::SessionEstablished);
    Some((rebooted, had_pending))
}

const TORN: [usize; 6] = [0, 1, 20, 24, 100, 4095];

#[test]
fn a_power_cut_at_every_write_boots_with_a_working_credential() {
    let mut cuts = 0;
    for at in 0.. {
        let mut done = false;
        for torn in TORN {
            let Some((mut s, had_pending)) = rotation_cut_at(FaultSet::NONE, at, torn) else {
                done = true;
                break;
            };
            cuts += 1;
            let active = s
                .rot
                .credential()
                .cloned()
                .expect("KR-04: a credential after every cut");
            assert!(works(&active), "cut {at}/{torn}: {active:?}");
            assert!(
                active.key == key(1) || active.key == key(2),
                "old or new only"
            );
            // The boot recovery's writes leave no pending credential behind.
            assert!(Keystore::decode(&s.region).unwrap().pending().is_none());
            assert_eq!(Keystore::decode(&s.region).unwrap().active(), Some(&active));
            if had_pending {
                assert_eq!(
                    s.last_report().state,
                    CredentialState::Failed,
                    "the cut rotation is reported"
                );
            }
            // And the device can rotate again afterwards.
            s.send(RotationEvent::RotateMethod);
            assert!(works(&s.active()));
        }
        if done {
            break;
        }
    }
    assert!(
        cuts >= 4 * TORN.len(),
        "the rotation should take several writes, saw {cuts} cuts"
    );
}

#[test]
fn rotate_non_atomic_leaves_a_broken_credential_after_some_cut() {
    let broken = (0..20)
        .flat_map(|at| TORN.map(|torn| (at, torn)))
        .any(|(at, torn)| {
            rotation_cut_at(faults(Fault::RotateNonAtomic), at, torn)
                .is_some_and(|(s, _)| s.rot.credential().is_none_or(|c| !works(c)))
        });
    assert!(broken, "KR-04 must be able to fail");
    // Without a cut the faulty path still ends with a working credential in
    // the same slot (the fault is only about atomicity).
    let mut s = Shell::provisioned(faults(Fault::RotateNonAtomic));
    let old = s.active();
    rotate_by_method(&mut s);
    assert!(works(&s.active()) && s.active().key != old.key);
    assert_eq!(s.active().slot, old.slot, "written in place");
}

#[test]
fn rotate_after_in_the_twin_at_session_start_rotates_once() {
    let mut s = Shell::provisioned(FaultSet::NONE);
    let old = s.active();
    // Offline the whole time; the twin GET at session start brings it.
    s.now = T0 + 3_600_000;
    s.send(RotationEvent::SessionEstablished);
    s.send(RotationEvent::DesiredRotateAfter(Some(format_rfc3339(T0))));
    assert_ne!(s.active().key, old.key, "KR-05");
    assert_eq!(s.last_report().state, CredentialState::Rotated);
    // The same desired value at the next session does not rotate again.
    let rotated = s.active();
    s.send(RotationEvent::SessionLost);
    s.now += 60_000;
    s.send(RotationEvent::SessionEstablished);
    s.send(RotationEvent::DesiredRotateAfter(Some(format_rfc3339(T0))));
    assert_eq!(s.active(), rotated);
}

#[test]
fn rotate_after_delivered_while_offline_waits_for_the_session() {
    let mut s = Shell::provisioned(FaultSet::NONE);
    let old = s.active();
    s.send(RotationEvent::DesiredRotateAfter(Some(
        "2020-01-01T00:00:00Z".into(),
    )));
    assert!(
        s.generated.is_empty(),
        "nothing happens without a hub session"
    );
    s.send(RotationEvent::SessionEstablished);
    assert_ne!(s.active().key, old.key);
}

#[test]
fn a_future_rotate_after_waits_for_its_time() {
    let mut s = Shell::provisioned(FaultSet::NONE);
    let old = s.active();
    s.send(RotationEvent::SessionEstablished);
    let at = T0 + 10_000;
    s.send(RotationEvent::DesiredRotateAfter(Some(format_rfc3339(at))));
    assert_eq!(s.rot.next_deadline(), Some(at));
    s.now = at - 1_000;
    s.send(RotationEvent::Tick);
    assert_eq!(s.active(), old);
    s.now = at;
    s.send(RotationEvent::Tick);
    assert_ne!(s.active().key, old.key);
    // A spent deadline is not handed out again (the shell would spin): what
    // is left is the new certificate's renewal.
    let renewal = s.rot.renewal_due_at();
    assert!(renewal.unwrap() > s.now);
    assert_eq!(s.rot.next_deadline(), renewal);
    // A null rotateAfter clears it.
    s.send(RotationEvent::DesiredRotateAfter(None));
    assert_eq!(s.rot.next_deadline(), renewal);
}

#[test]
fn a_refused_twin_rotation_is_not_retried_in_a_loop() {
    let mut s = Shell::provisioned(FaultSet::NONE);
    s.refuse = Some((400, "bad CSR".into()));
    s.send(RotationEvent::SessionEstablished);
    s.send(RotationEvent::DesiredRotateAfter(Some(format_rfc3339(
        T0 - 1,
    ))));
    s.send(RotationEvent::Tick);
    s.send(RotationEvent::SessionEstablished);
    assert_eq!(
        s.generated.len(),
        1,
        "one attempt per rotateAfter per power cycle"
    );
    assert_eq!(s.rot.state(), CredentialState::Failed);
}

#[test]
fn a_malformed_rotate_after_is_reported() {
    let mut s = Shell::provisioned(FaultSet::NONE);
    s.send(RotationEvent::SessionEstablished);
    s.send(RotationEvent::DesiredRotateAfter(Some("tomorrow".into())));
    assert!(s.generated.is_empty());
    assert!(s
        .last_report()
        .reason
        .as_deref()
        .unwrap()
        .contains("tomorrow"));
}

#[test]
fn fault_ignore_twin_rotate_ignores_only_the_twin() {
    let mut s = Shell::provisioned(faults(Fault::IgnoreTwinRotate));
    let old = s.active();
    s.send(RotationEvent::SessionEstablished);
    s.send(RotationEvent::DesiredRotateAfter(Some(format_rfc3339(
        T0 - 1,
    ))));
    s.send(RotationEvent::Tick);
    assert_eq!(s.active(), old);
    // No twin deadline: what is left is the certificate's renewal.
    assert!(s.generated.is_empty() && s.rot.next_deadline() == s.rot.renewal_due_at());
    // The method still works.
    s.send(RotationEvent::RotateMethod);
    assert_ne!(s.active().key, old.key);
}

#[test]
fn fault_rotate_same_key_asks_a_cert_for_the_current_key() {
    let mut s = Shell::provisioned(faults(Fault::RotateSameKey));
    let old = s.active();
    rotate_by_method(&mut s);
    assert!(s.generated.is_empty(), "no new key");
    assert_eq!(s.csrs, vec!["csr:public-1".to_string()]);
    let new = s.active();
    assert_eq!(new.key, old.key);
    assert_ne!(new.cert, old.cert, "a new certificate for the old key");
    assert!(works(&new));
}

#[test]
fn fault_keep_old_cert_reconnects_with_the_old_credential() {
    let mut s = Shell::provisioned(faults(Fault::KeepOldCert));
    let old = s.active();
    rotate_by_method(&mut s);
    assert_ne!(s.active().key, old.key, "the keystore did rotate");
    assert_eq!(s.reconnects, vec![old.slot]);
    assert_eq!(s.rot.credential(), Some(&old));
}

#[test]
fn fault_leak_key_in_csr_puts_the_private_key_in() {
    let mut s = Shell::provisioned(faults(Fault::LeakKeyInCsr));
    rotate_by_method(&mut s);
    assert_eq!(s.csrs, vec!["csr:public-2;attr:secret-2".to_string()]);
    // Combined with rotate-same-key it leaks the current key.
    let mut s = Shell::provisioned(faults(Fault::LeakKeyInCsr).with(Fault::RotateSameKey));
    rotate_by_method(&mut s);
    assert_eq!(s.csrs, vec!["csr:public-1;attr:secret-1".to_string()]);
}

#[test]
fn fault_drop_cred_on_error_erases_the_credential_on_refusal_only() {
    let mut s = Shell::provisioned(faults(Fault::DropCredOnError));
    s.refuse = Some((503, "no".into()));
    rotate_by_method(&mut s);
    assert!(
        Keystore::decode(&s.region).unwrap().is_empty(),
        "KR-06 must fail"
    );
    assert!(s.rot.credential().is_none());
    assert_eq!(s.last_report().thumbprint, None);
    // A local failure is not a refusal: the credential stays.
    let mut s = Shell::provisioned(faults(Fault::DropCredOnError));
    let old = s.active();
    s.send(RotationEvent::SessionEstablished);
    let actions = s.rot.handle(RotationEvent::RotateMethod, T0);
    s.execute(actions);
    let actions = s.rot.handle(
        RotationEvent::Failed {
            reason: "tls".into(),
        },
        T0,
    );
    s.execute(actions);
    assert_eq!(s.active(), old);
}

#[test]
fn power_on_with_an_empty_keystore_has_no_credential_and_cannot_rotate() {
    let mut s = Shell::boot(vec![0xff; REGION_SIZE], FaultSet::NONE);
    assert!(s.rot.credential().is_none());
    rotate_by_method(&mut s);
    assert!(s.generated.is_empty());
    assert!(s
        .last_report()
        .reason
        .as_deref()
        .unwrap()
        .contains("no credential"));
}

#[test]
fn reports_are_json() {
    let r = CredentialsReport {
        thumbprint: Some("ab".into()),
        not_after: None,
        state: CredentialState::Failed,
        reason: Some("say \"no\"\n\u{1}".into()),
    };
    assert_eq!(
        r.to_json(),
        r#"{"thumbprint":"ab","notAfter":null,"state":"failed","reason":"say \"no\"\n\u0001"}"#
    );
}

#[test]
fn rfc3339_round_trips_and_rejects_garbage() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_rfc3339("2026-11-25T12:00:00Z"),
        Some(1_795_608_000_000)
    );
    assert_eq!(
        parse_rfc3339("2026-11-25T13:30:00+01:30"),
        Some(1_795_608_000_000)
    );
    assert_eq!(
        parse_rfc3339("2026-11-25T12:00:00.25Z"),
        Some(1_795_608_000_250)
    );
    assert_eq!(
        parse_rfc3339("2024-02-29T00:00:00Z"),
        Some(1_709_164_800_000)
    );
    for bad in [
        "",
        "2026-11-25",
        "2026-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2026-11-25T12:00:00",
        "1969-12-31T23:59:59Z",
        "2026-11-25T12:00:00.Z",
        "2026-11-25T24:00:00Z",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad}");
    }
    for ms in [0, 951_782_400_000, 1_795_608_000_000, 4_102_444_800_000, T0] {
        assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms / 1000 * 1000));
    }
    assert_eq!(format_rfc3339(1_795_608_000_999), "2026-11-25T12:00:00Z");
}

/// A device whose provisioned certificate is valid from T0 for 100 s.
fn short_lived(faults: FaultSet) -> Shell {
    let mut region = vec![0xff; REGION_SIZE];
    let mut ks = Keystore::decode(&region).unwrap();
    let mut writes = ks.store_pending_key(key(1)).unwrap();
    let cert = Certificate::new(b"cert:public-1:0".to_vec(), T0 + 100_000, T0).valid_from(T0);
    writes.extend(ks.store_pending_cert(cert).unwrap());
    writes.extend(ks.commit_pending().unwrap());
    keystore::apply(&mut region, &writes).unwrap();
    Shell::boot(region, faults)
}

#[test]
fn kr07_renews_by_itself_at_80_percent_of_the_validity() {
    let mut s = short_lived(FaultSet::NONE);
    let old = s.active();
    s.send(RotationEvent::SessionEstablished);
    assert_eq!(s.rot.renewal_due_at(), Some(T0 + 80_000));
    assert_eq!(s.rot.next_deadline(), Some(T0 + 80_000));
    s.now = T0 + 79_999;
    s.send(RotationEvent::Tick);
    assert_eq!(s.active(), old, "not before 80 %");
    s.now = T0 + 80_000;
    s.send(RotationEvent::Tick);
    let new = s.active();
    assert!(works(&new) && new.key != old.key, "a new key, certified");
    assert_eq!(s.rot.credential(), Some(&new));
    // The new certificate (valid from now) is renewed at its own 80 %.
    let c = &new.cert;
    assert_eq!(c.not_before_ms, T0 + 80_000);
    assert_eq!(
        s.rot.renewal_due_at(),
        Some(c.not_before_ms + (c.not_after_ms - c.not_before_ms) * 8 / 10)
    );
    s.send(RotationEvent::SessionEstablished);
    assert_eq!(s.last_report().state, CredentialState::Rotated);
}

#[test]
fn kr07_a_due_renewal_waits_for_a_session_and_a_failed_one_is_retried_later() {
    let mut s = short_lived(FaultSet::NONE);
    s.now = T0 + 90_000;
    s.send(RotationEvent::Tick);
    assert!(s.generated.is_empty(), "no rotation without a session");
    s.refuse = Some((503, "busy".into()));
    s.send(RotationEvent::SessionEstablished);
    assert_eq!(s.generated.len(), 1);
    assert_eq!(s.rot.state(), CredentialState::Failed);
    // Retried halfway to notAfter, not in a loop.
    assert_eq!(s.rot.renewal_due_at(), Some(T0 + 95_000));
    s.send(RotationEvent::Tick);
    assert_eq!(s.generated.len(), 1);
    s.refuse = None;
    s.now = T0 + 95_000;
    s.send(RotationEvent::Tick);
    assert_eq!(s.generated.len(), 2);
    assert!(s.active().cert.not_before_ms == T0 + 95_000);
}

#[test]
fn fault_no_renewal_renews_only_when_asked() {
    let mut s = short_lived(faults(Fault::NoRenewal));
    let old = s.active();
    s.send(RotationEvent::SessionEstablished);
    assert_eq!(s.rot.renewal_due_at(), None);
    assert_eq!(s.rot.next_deadline(), None);
    s.now = T0 + 99_000;
    s.send(RotationEvent::Tick);
    assert_eq!(s.active(), old, "runs into expiry");
    s.send(RotationEvent::RotateMethod);
    assert_ne!(s.active().key, old.key, "still rotates when asked");
}
