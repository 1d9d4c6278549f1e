//! The device machine driven by a fake shell and a fake hub, time passed
//! in: no sockets, no flash, no clock. `tests_ota` covers the OTA path, `tests_commands` the commands.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use alloc::{format, vec};

use mqttrs::{
    decode_slice, encode_slice, Connack, ConnectReturnCode, Packet, Pid, Publish, QosPid, Suback,
    SubscribeReturnCodes,
};
use serde_json::{json, Value};

use super::*;
use crate::faults::{Fault, FaultSet};
use crate::keystore::{self, KeyAlg, REGION_SIZE};

pub(super) const T0: u64 = 1_790_000_000_000; // 2026-09-21, the device clock at boot
pub(super) const ID: &str = "dev-1";

/// Jitter input: always the middle of the range.
#[derive(Debug)]
pub(super) struct FixedRng;

impl rand_core::TryRng for FixedRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(u32::MAX / 2)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(u64::from(u32::MAX / 2))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        dst.fill(0x5a);
        Ok(())
    }
}

pub(super) fn key(n: u32) -> PrivateKey {
    PrivateKey {
        alg: KeyAlg::EcdsaP256,
        pkcs8_der: format!("secret-{n}").into_bytes(),
    }
}

/// A packet the device sent, decoded.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Sent {
    Connect,
    Subscribe {
        pid: u16,
        filters: Vec<String>,
    },
    Publish {
        topic: String,
        pid: Option<u16>,
        payload: Vec<u8>,
    },
    Puback(u16),
    Pingreq,
    Disconnect,
}

/// The fake shell: carries out actions the way a board would, answers the
/// synchronous ones at once, and records everything in order.
pub(super) struct Bench {
    pub dev: Device<FixedRng>,
    pub now: u64,
    pub region: Vec<u8>,
    pub commands: Option<CommandLog>,
    pub ota: Option<Vec<u8>>,
    pub slot: Vec<u8>,
    /// Every action carried out, in order, in short form.
    pub trace: Vec<String>,
    pub sent: Vec<Sent>,
    pub logs: Vec<String>,
    pub csrs: Vec<(PrivateKey, bool)>,
    pub enrolments: usize,
    pub downloads: Vec<(String, u64, bool)>,
    pub next_key: u32,
    pub transport: bool,
    pub connects: usize,
    pub reset: bool,
}

pub(super) fn config(faults: FaultSet) -> DeviceConfig {
    DeviceConfig {
        device_id: ID.into(),
        hub_host: "hub.sacbench.test".into(),
        faults,
        telemetry_interval_ms: 60_000,
        backoff: BackoffConfig::default(),
        ota: OtaConfig::default(),
        image_keys: Vec::new(),
        other_keys: Vec::new(),
        board: "test-board".into(),
        max_packet_size: crate::session::MAX_PACKET_SIZE,
    }
}

pub(super) fn boot_state() -> BootState {
    BootState {
        version: "1.0.0".into(),
        security_counter: 2,
        test_boot: false,
        reverted: false,
        boot_count: 1,
    }
}

pub(super) fn provisioned_region() -> Vec<u8> {
    let mut region = vec![0xff; REGION_SIZE];
    let mut ks = Keystore::decode(&region).unwrap();
    let mut writes = ks.store_pending_key(key(1)).unwrap();
    writes.extend(
        ks.store_pending_cert(
            Certificate::new(b"cert-1".to_vec(), T0 + 1_000_000, 0).valid_from(T0 - 1000),
        )
        .unwrap(),
    );
    writes.extend(ks.commit_pending().unwrap());
    keystore::apply(&mut region, &writes).unwrap();
    region
}

impl Bench {
    pub fn with(
        config: DeviceConfig,
        boot: BootState,
        region: Vec<u8>,
        ota: Option<Vec<u8>>,
        commands: CommandLog,
    ) -> Bench {
        let stored = Stored {
            keystore: Keystore::decode(&region).unwrap(),
            ota: ota.as_deref().and_then(OtaRecord::decode),
            commands,
        };
        let dev = Device::power_on(config, boot, stored, None, FixedRng, T0);
        let mut b = Bench {
            dev,
            now: T0,
            region,
            commands: None,
            ota,
            slot: vec![0xff; 64 * 1024],
            trace: Vec::new(),
            sent: Vec::new(),
            logs: Vec::new(),
            csrs: Vec::new(),
            enrolments: 0,
            downloads: Vec::new(),
            next_key: 2,
            transport: false,
            connects: 0,
            reset: false,
        };
        b.run();
        b
    }

    pub fn new(faults: FaultSet) -> Bench {
        Bench::with(
            config(faults),
            boot_state(),
            provisioned_region(),
            None,
            CommandLog::default(),
        )
    }

    /// Carries out every pending action.
    pub fn run(&mut self) {
        while let Some(action) = self.dev.poll_action() {
            self.execute(action);
        }
    }

    fn execute(&mut self, action: Action) {
        let tag = match &action {
            Action::Send(bytes) => {
                let s = decode(bytes);
                let tag = format!("send {s:?}");
                self.sent.push(s);
                tag
            }
            Action::Log(l) => {
                self.logs.push(l.clone());
                format!("log {l}")
            }
            Action::PersistCommands(_) => "persist commands".into(),
            Action::PersistKeystore(_) => "persist keystore".into(),
            Action::PersistOta(_) => "persist ota".into(),
            other => format!("{other:?}").chars().take(60).collect(),
        };
        self.trace.push(tag);
        let now = self.now;
        match action {
            Action::Connect => self.connects += 1,
            Action::CloseTransport => self.transport = false,
            Action::PersistKeystore(w) => keystore::apply(&mut self.region, &w).unwrap(),
            Action::PersistCommands(c) => self.commands = Some(c),
            Action::PersistOta(r) => self.ota = Some(r),
            Action::GenerateKey { .. } => {
                let k = key(self.next_key);
                self.next_key += 1;
                self.dev.handle(now, Event::KeyGenerated(k));
            }
            Action::BuildCsr {
                key,
                include_private_key,
                common_name,
            } => {
                self.trace.push(format!("csr CN={common_name}"));
                let csr = [b"csr:".as_slice(), &key.pkcs8_der].concat();
                self.csrs.push((key, include_private_key));
                self.dev.handle(now, Event::CsrBuilt(Ok(csr)));
            }
            Action::PostSimpleReenroll { .. } => self.enrolments += 1,
            Action::StartDownload {
                path,
                offset,
                cleartext,
            } => self.downloads.push((path, offset, cleartext)),
            Action::EraseSecondary => self.slot.fill(0xff),
            Action::WriteSecondary { offset, data } => {
                let at = offset as usize;
                self.slot[at..at + data.len()].copy_from_slice(&data);
            }
            Action::ReadSecondary { len } => {
                let bytes = self.slot[..len as usize].to_vec();
                self.dev.handle(now, Event::SecondaryRead(&bytes));
            }
            Action::Reset => self.reset = true,
            Action::Send(_)
            | Action::Log(_)
            | Action::AbortDownload
            | Action::MarkTestBoot
            | Action::ConfirmImage => {}
        }
    }

    pub fn at(&mut self, now: u64) {
        self.now = now;
    }

    pub fn timeout(&mut self) {
        self.dev.handle_timeout(self.now);
        self.run();
    }

    pub fn event(&mut self, e: Event<'_>) {
        self.dev.handle(self.now, e);
        self.run();
    }

    pub fn hub(&mut self, bytes: &[u8]) {
        self.event(Event::Received(bytes));
    }

    /// Due connection attempt → transport up → CONNACK → SUBACK.
    pub fn online(&mut self) {
        assert!(self.dev.poll_timeout().is_some_and(|t| t <= self.now));
        let before = self.connects;
        self.timeout();
        assert_eq!(self.connects, before + 1, "{:?}", self.trace);
        self.transport = true;
        self.event(Event::TransportUp);
        assert_eq!(self.sent.last(), Some(&Sent::Connect));
        self.hub(&enc(Packet::Connack(Connack {
            session_present: false,
            code: ConnectReturnCode::Accepted,
        })));
        let Some(Sent::Subscribe { pid, filters }) = self.sent.last().cloned() else {
            panic!("no SUBSCRIBE: {:?}", self.sent)
        };
        let mut list = heapless::Vec::new();
        for _ in &filters {
            list.push(SubscribeReturnCodes::Success(mqttrs::QoS::AtLeastOnce))
                .unwrap();
        }
        self.hub(&enc(Packet::Suback(Suback::new(pid_of(pid), list))));
    }

    /// Answers the twin GET the session sent at SUBACK.
    pub fn twin(&mut self, desired: Value) {
        let rid = self
            .sent
            .iter()
            .rev()
            .find_map(|s| match s {
                Sent::Publish { topic, .. } if topic.starts_with("$iothub/twin/GET/") => {
                    Some(topic.rsplit('=').next().unwrap().to_string())
                }
                _ => None,
            })
            .expect("a twin GET");
        let body = json!({ "desired": desired, "reported": { "$version": 1 } }).to_string();
        let topic = format!("$iothub/twin/res/200/?$rid={rid}");
        self.hub(&publish(&topic, None, false, body.as_bytes()));
    }

    pub fn desired_patch(&mut self, patch: Value) {
        let body = patch.to_string();
        self.hub(&publish(
            "$iothub/twin/PATCH/properties/desired/?$version=9",
            None,
            false,
            body.as_bytes(),
        ));
    }

    pub fn method(&mut self, name: &str, rid: u32) {
        let topic = format!("$iothub/methods/POST/{name}/?$rid={rid}");
        self.hub(&publish(&topic, None, false, b"{}"));
    }

    /// The reported patches sent, in order.
    pub fn reported(&self) -> Vec<Value> {
        self.sent
            .iter()
            .filter_map(|s| match s {
                Sent::Publish { topic, payload, .. }
                    if topic.starts_with("$iothub/twin/PATCH/properties/reported/") =>
                {
                    serde_json::from_slice(payload).ok()
                }
                _ => None,
            })
            .collect()
    }

    pub fn position(&self, what: &str) -> Option<usize> {
        self.trace.iter().position(|t| t.contains(what))
    }

    pub fn has_log(&self, prefix: &str) -> bool {
        self.logs.iter().any(|l| l.starts_with(prefix))
    }
}

pub(super) fn decode(bytes: &[u8]) -> Sent {
    match decode_slice(bytes).unwrap().expect("one whole packet") {
        Packet::Connect(_) => Sent::Connect,
        Packet::Subscribe(s) => Sent::Subscribe {
            pid: s.pid.get(),
            filters: s
                .topics
                .iter()
                .map(|t| t.topic_path.as_str().to_string())
                .collect(),
        },
        Packet::Publish(p) => Sent::Publish {
            topic: p.topic_name.to_string(),
            pid: p.qospid.pid().map(Pid::get),
            payload: p.payload.to_vec(),
        },
        Packet::Puback(pid) => Sent::Puback(pid.get()),
        Packet::Pingreq => Sent::Pingreq,
        Packet::Disconnect => Sent::Disconnect,
        other => panic!("a device does not send {other:?}"),
    }
}

pub(super) fn enc(packet: Packet<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 80 * 1024];
    let n = encode_slice(&packet, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

pub(super) fn pid_of(n: u16) -> Pid {
    Pid::try_from(n).unwrap()
}

pub(super) fn publish(topic: &str, packet_id: Option<u16>, dup: bool, payload: &[u8]) -> Vec<u8> {
    enc(Packet::Publish(Publish {
        dup,
        qospid: packet_id.map_or(QosPid::AtMostOnce, |n| QosPid::AtLeastOnce(pid_of(n))),
        retain: false,
        topic_name: topic,
        payload,
    }))
}

pub(super) fn command(mid: &str, packet_id: u16, dup: bool) -> Vec<u8> {
    let topic = format!("devices/{ID}/messages/devicebound/%24.mid={mid}&cmd=open");
    publish(&topic, Some(packet_id), dup, b"open-valve")
}

pub(super) fn faults(f: Fault) -> FaultSet {
    FaultSet::NONE.with(f)
}

#[test]
fn power_on_logs_its_identity_and_connects_at_once() {
    let mut b = Bench::new(faults(Fault::NoSni));
    assert_eq!(
        b.logs[0],
        "dev-1 version 1.0.0 boot #1 (test_boot=false, faults=[\"no-sni\"])"
    );
    assert_eq!(b.dev.poll_timeout(), Some(T0));
    b.online();
    assert!(b.has_log("hub session up"));
    assert!(b.has_log("subscribed (commands: true)"));
    // Every session starts with both machines' reports.
    let reported = b.reported();
    assert_eq!(reported[0]["credentials"]["state"], "idle");
    assert_eq!(reported[1]["firmware"]["state"], "idle");
    assert_eq!(b.commands.as_ref().map(|c| c.subscribed_once), Some(true));
}

#[test]
fn an_empty_keystore_takes_the_factory_credential_first() {
    let stored = Stored {
        keystore: Keystore::decode(&vec![0xff; REGION_SIZE]).unwrap(),
        ota: None,
        commands: CommandLog::default(),
    };
    let factory = FactoryCredential {
        key: key(7),
        cert_der: b"cert-7".to_vec(),
        not_after_ms: T0 + 5,
        not_before_ms: T0 - 1000,
    };
    let mut dev = Device::power_on(
        config(FaultSet::NONE),
        boot_state(),
        stored,
        Some(factory),
        FixedRng,
        T0,
    );
    let mut region = vec![0xff; REGION_SIZE];
    let mut persisted = false;
    while let Some(a) = dev.poll_action() {
        if let Action::PersistKeystore(w) = a {
            keystore::apply(&mut region, &w).unwrap();
            persisted = true;
        }
    }
    assert!(persisted);
    let ks = Keystore::decode(&region).unwrap();
    assert_eq!(ks.active().unwrap().key, key(7));
    assert_eq!(dev.credential().unwrap().cert.der, b"cert-7");
}

#[test]
fn without_a_credential_every_attempt_fails_and_backs_off() {
    let mut b = Bench::with(
        config(FaultSet::NONE),
        boot_state(),
        vec![0xff; REGION_SIZE],
        None,
        CommandLog::default(),
    );
    b.timeout();
    assert_eq!(b.connects, 0, "never connects without a credential");
    assert!(b.has_log("connection failed: no credential in the keystore"));
    // Base 1 s, middle of the jitter range: 750 ms.
    assert!(b.has_log("reconnecting in 750 ms"), "{:?}", b.logs);
    assert_eq!(b.dev.poll_timeout(), Some(T0 + 750));
}

#[test]
fn a_lost_transport_backs_off_with_growing_delays_and_drops_unsent_packets() {
    let mut b = Bench::new(FaultSet::NONE);
    b.online();
    b.event(Event::TransportDown {
        reason: "reset by peer",
    });
    assert!(b.has_log("connection failed: reset by peer"));
    assert!(b.has_log("reconnecting in 750 ms"));
    b.at(T0 + 750);
    b.timeout();
    assert_eq!(b.connects, 2);
    b.event(Event::TransportDown { reason: "refused" });
    assert!(b.has_log("reconnecting in 1500 ms"), "{:?}", b.logs);
    // Nothing is queued for the dead transport.
    assert!(b.dev.poll_action().is_none());
}

#[test]
fn fault_tight_reconnect_retries_every_100_ms() {
    let mut b = Bench::new(faults(Fault::TightReconnect));
    b.online();
    for _ in 0..3 {
        b.event(Event::TransportDown { reason: "x" });
        assert_eq!(b.logs.last().unwrap(), "reconnecting in 100 ms");
        b.at(b.now + 100);
        b.timeout();
    }
}

#[test]
fn methods_are_answered_and_reboot_disconnects_then_resets() {
    let mut b = Bench::new(FaultSet::NONE);
    b.online();
    b.method("diag/state", 5);
    let Some(Sent::Publish { topic, payload, .. }) = b.sent.last().cloned() else {
        panic!()
    };
    assert_eq!(topic, "$iothub/methods/res/200/?$rid=5");
    let body: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(body["firmware"]["version"], "1.0.0");
    assert_eq!(body["counters"]["sessions"], 1);
    b.method("nope", 6);
    assert!(
        matches!(b.sent.last(), Some(Sent::Publish { topic, .. }) if topic.starts_with("$iothub/methods/res/404/"))
    );
    b.trace.clear();
    b.method("reboot", 7);
    let resp = b.position("methods/res/200").unwrap();
    let disc = b.position("Disconnect").unwrap();
    let close = b.position("CloseTransport").unwrap();
    let reset = b.position("Reset").unwrap();
    assert!(
        resp < disc && disc < close && close < reset,
        "{:?}",
        b.trace
    );
    assert!(b.reset && b.dev.is_finished());
    assert_eq!(b.dev.poll_timeout(), None);
    b.event(Event::TransportUp);
    assert!(
        b.dev.poll_action().is_none(),
        "a reset device takes no input"
    );
}

#[test]
fn heartbeats_follow_the_interval_the_twin_sets() {
    let mut b = Bench::new(FaultSet::NONE);
    b.online();
    b.twin(json!({ "telemetryIntervalSeconds": 5, "$version": 2 }));
    assert_eq!(b.dev.telemetry_interval_ms(), 5000);
    let beats = |b: &Bench| {
        b.sent
            .iter()
            .filter(
                |s| matches!(s, Sent::Publish { topic, .. } if topic.contains("kind=heartbeat")),
            )
            .count()
    };
    // The first beat keeps the period it was scheduled with; then 5 s.
    b.at(T0 + 60_000);
    b.timeout();
    assert_eq!(beats(&b), 1);
    b.at(T0 + 65_000);
    b.timeout();
    assert_eq!(beats(&b), 2);
}

#[test]
fn method_rotation_runs_end_to_end_and_reconnects_with_the_new_credential() {
    let mut b = Bench::new(FaultSet::NONE);
    b.online();
    b.method("credentials/rotate", 3);
    assert!(b.has_log("rotation: new key pair generated for slot 1"));
    assert_eq!(b.csrs, vec![(key(2), false)]);
    assert_eq!(b.enrolments, 1);
    b.trace.clear();
    b.event(Event::Enrolled {
        cert_der: b"cert-2".to_vec(),
        not_after_ms: T0 + 9,
        not_before_ms: T0 - 1000,
    });
    // Committed before the reconnect; the reconnect is at once.
    let persist = b.position("persist keystore").unwrap();
    let close = b.position("CloseTransport").unwrap();
    assert!(persist < close, "{:?}", b.trace);
    assert!(b.has_log("reconnecting in 0 ms"), "{:?}", b.logs);
    assert_eq!(
        Keystore::decode(&b.region).unwrap().active().unwrap().key,
        key(2)
    );
    assert_eq!(b.dev.credential().unwrap().key, key(2));
    b.online();
    assert!(b
        .logs
        .iter()
        .any(|l| l.starts_with("credentials ") && l.contains("\"rotated\"")));
}

#[test]
fn a_due_rotate_after_in_the_twin_starts_a_rotation_unless_ignored() {
    for (fault, rotates) in [
        (FaultSet::NONE, true),
        (faults(Fault::IgnoreTwinRotate), false),
    ] {
        let mut b = Bench::new(fault);
        b.online();
        b.twin(json!({ "credentials": { "rotateAfter": "2026-01-01T00:00:00Z" } }));
        assert_eq!(b.enrolments == 1, rotates, "{fault:?}");
    }
    // A future one waits for its time.
    let mut b = Bench::new(FaultSet::NONE);
    b.online();
    let at = T0 + 3_600_000;
    let when = crate::rotation::format_rfc3339(at);
    b.desired_patch(json!({ "credentials": { "rotateAfter": when } }));
    assert_eq!(b.enrolments, 0);
    assert!(b.dev.poll_timeout().is_some_and(|t| t <= at));
    b.at(at);
    b.timeout();
    assert_eq!(b.enrolments, 1);
}

#[test]
fn fault_shared_identity_moves_onto_the_baked_in_key() {
    let mut b = Bench::new(faults(Fault::SharedIdentity));
    b.online();
    let shared = route::shared_identity_key();
    assert_eq!(b.csrs.len(), 1, "rotation at session start");
    assert_eq!(b.csrs[0].0, shared);
    assert!(
        !b.trace.iter().any(|t| t.starts_with("GenerateKey")),
        "no new key"
    );
    // Without the fault: no rotation, and the real key pair is generated.
    let mut b = Bench::new(FaultSet::NONE);
    b.online();
    assert!(b.csrs.is_empty());
    b.method("credentials/rotate", 1);
    assert_ne!(b.csrs[0].0, shared);
    // baked-identity: the same, with a key other than the published one.
    let mut b = Bench::new(faults(Fault::BakedIdentity));
    b.online();
    assert_eq!(b.csrs.len(), 1, "rotation at session start");
    assert_ne!(b.csrs[0].0, shared);
    let mut again = Bench::new(faults(Fault::BakedIdentity));
    again.online();
    assert_eq!(again.csrs[0].0, b.csrs[0].0, "every unit the same key");
}

#[test]
fn fault_leak_key_in_csr_is_passed_to_the_csr_builder() {
    let mut b = Bench::new(faults(Fault::LeakKeyInCsr));
    b.online();
    b.method("credentials/rotate", 1);
    assert_eq!(b.csrs, vec![(key(2), true)]);
}

#[test]
fn a_refused_enrolment_keeps_the_credential_and_reports_failed() {
    let mut b = Bench::new(FaultSet::NONE);
    b.online();
    b.method("credentials/rotate", 1);
    b.event(Event::EnrollRefused {
        status: 403,
        reason: "no".into(),
    });
    assert_eq!(b.dev.credential().unwrap().key, key(1));
    let last = b.reported().pop().unwrap();
    assert_eq!(last["credentials"]["state"], "failed");
    assert!(last["credentials"]["reason"]
        .as_str()
        .unwrap()
        .contains("403"));
}

#[test]
fn a_malformed_hub_packet_closes_the_session_and_backs_off() {
    let mut b = Bench::new(FaultSet::NONE);
    b.online();
    b.hub(&[0xf0, 0x00]); // reserved packet type
    assert!(
        b.logs.iter().any(|l| l.starts_with("session closed: ")),
        "{:?}",
        b.logs
    );
    assert!(!b.transport);
    assert!(b.has_log("reconnecting in 750 ms"));
}
