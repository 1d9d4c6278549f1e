//! The fixture hub's MQTT session (`hub_fixture::session::Session`) fed a
//! device's byte stream.

use bytes::{Bytes, BytesMut};
use hub_fixture::journal::Event;
use hub_fixture::serial::Serial;
use hub_fixture::session::{ClientIdentity, HubPort, Session, SessionConfig};
use hub_fixture::store::{DeviceStatus, InFlightC2d, QueuedMessage, StoredSession, Twin};
use hub_fixture::topics::Subscription;
use rumqttc::mqttbytes::v4::{ConnAck, ConnectReturnCode, Packet};
use rumqttc::mqttbytes::QoS;

use crate::input::pieces;

pub(crate) const HUB: &str = "hub.sacbench.test";
pub(crate) const DEVICE: &str = "dut-1";
pub(crate) const SERIAL: &str = "01ab";
/// Small, so that the size limit is reachable from small inputs.
pub(crate) const MAX_PACKET: usize = 2048;

// Bits of the first input byte.
/// Send the stream as is (the fuzzer must build the CONNECT itself);
/// otherwise a valid CONNECT for the device goes first.
pub(crate) const RAW: u8 = 0x01;
/// After every piece, the hub side acts too: fills the C2D window, sends a
/// method request and a desired-properties patch.
pub(crate) const HUB_EVENTS: u8 = 0x02;
/// The device is disabled (with `UNKNOWN`: unknown).
const DISABLED: u8 = 0x04;
const UNKNOWN: u8 = 0x08;
/// The certificate is revoked (checked at CONNECT), or revoked between the
/// CONNECT's checks and going live.
const REVOKED: u8 = 0x10;
const REVOKED_AT_GO_LIVE: u8 = 0x20;
/// The hub has no twin for the device.
const NO_TWIN: u8 = 0x40;
/// The hub holds a stored session for the device (all four subscriptions,
/// message 1 in flight), and the CONNECT put first asks to resume it
/// (CleanSession=0).
pub(crate) const STORED: u8 = 0x80;

/// The hub's side, as a fake: a small C2D queue, a twin, and a journal that
/// serialises every event as the real journal does.
pub(crate) struct FakeHub {
    flags: u8,
    queue: Vec<QueuedMessage>,
    reported: serde_json::Value,
    reported_version: i64,
    events: Vec<Event>,
    live_calls: usize,
    stored: Option<StoredSession>,
}

impl FakeHub {
    pub(crate) fn new(flags: u8) -> Self {
        let queue = (1..=3)
            .map(|seq| QueuedMessage {
                seq,
                device_id: DEVICE.into(),
                message_id: format!("m{seq}"),
                // One binary payload: the journal keeps it as base64.
                payload: if seq == 2 {
                    vec![0xff, 0x00, 0xfe]
                } else {
                    format!("{{\"cmd\":{seq}}}").into_bytes()
                },
                properties: vec![("k".into(), "v w/ü".into())],
                enqueued_ms: 0,
                expires_ms: 3_600_000,
                delivery_count: 0,
            })
            .collect();
        Self {
            flags,
            queue,
            reported: serde_json::json!({}),
            reported_version: 0,
            events: Vec::new(),
            live_calls: 0,
            stored: (flags & STORED != 0).then(|| StoredSession {
                subscriptions: vec![
                    Subscription::CloudToDevice,
                    Subscription::Methods,
                    Subscription::TwinResponses,
                    Subscription::TwinDesired,
                ],
                in_flight: vec![InFlightC2d {
                    packet_id: 7,
                    seq: 1,
                }],
            }),
        }
    }

    fn connected_events(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Connected { .. }))
            .count()
    }
}

impl HubPort for FakeHub {
    fn device_status(&mut self, device_id: &str) -> Option<DeviceStatus> {
        assert_eq!(
            device_id, DEVICE,
            "the session asks only about its own device"
        );
        match (self.flags & UNKNOWN != 0, self.flags & DISABLED != 0) {
            (true, true) => None,
            (_, true) => Some(DeviceStatus::Disabled),
            _ => Some(DeviceStatus::Enabled),
        }
    }

    fn serial_revoked(&mut self, serial: &Serial) -> bool {
        assert_eq!(serial.as_str(), SERIAL);
        self.flags & REVOKED != 0
    }

    fn take_c2d(&mut self, device_id: &str, in_flight: &[i64], limit: usize) -> Vec<QueuedMessage> {
        assert_eq!(device_id, DEVICE);
        let mut out = Vec::new();
        for m in self
            .queue
            .iter_mut()
            .filter(|m| !in_flight.contains(&m.seq))
            .take(limit)
        {
            m.delivery_count += 1;
            out.push(m.clone());
        }
        out
    }

    fn complete_c2d(&mut self, device_id: &str, seq: i64) {
        assert_eq!(device_id, DEVICE);
        let before = self.queue.len();
        self.queue.retain(|m| m.seq != seq);
        assert_eq!(
            self.queue.len() + 1,
            before,
            "completed a message in flight"
        );
    }

    fn twin(&mut self, _: &str) -> Option<Twin> {
        (self.flags & NO_TWIN == 0).then(|| Twin {
            desired: serde_json::json!({"telemetryIntervalSeconds": 5}),
            desired_version: 3,
            reported: self.reported.clone(),
            reported_version: self.reported_version,
        })
    }

    fn patch_reported(&mut self, _: &str, patch: &serde_json::Value) -> Result<i64, (u16, String)> {
        if !patch.is_object() {
            return Err((400, "not a JSON object".into()));
        }
        if patch.to_string().len() > 512 {
            return Err((413, "over the size limit".into()));
        }
        self.reported = patch.clone();
        self.reported_version += 1;
        Ok(self.reported_version)
    }

    fn method_result(&mut self, _: &str, _: &str, _: u16, _: Bytes) {}

    fn journal(&mut self, device_id: &str, event: Event) {
        assert_eq!(device_id, DEVICE);
        serde_json::to_string(&event).expect("a journal event serialises");
        self.events.push(event);
    }

    fn go_live(&mut self, device_id: &str, serial: &Serial) -> bool {
        assert_eq!((device_id, serial.as_str()), (DEVICE, SERIAL));
        self.live_calls += 1;
        self.flags & REVOKED_AT_GO_LIVE == 0
    }

    fn load_session(&mut self, device_id: &str) -> Option<StoredSession> {
        assert_eq!(device_id, DEVICE);
        self.stored.clone()
    }

    fn save_session(&mut self, device_id: &str, session: &StoredSession) {
        assert_eq!(device_id, DEVICE);
        assert!(self.live_calls >= 1, "a session saved before going live");
        let mut ids: Vec<u16> = session.in_flight.iter().map(|f| f.packet_id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(
            ids.len(),
            session.in_flight.len(),
            "a packet id in flight twice"
        );
        assert!(!ids.contains(&0), "packet id 0 in flight");
        self.stored = Some(session.clone());
    }

    fn drop_session(&mut self, device_id: &str) {
        assert_eq!(device_id, DEVICE);
        self.stored = None;
    }

    fn take_redelivery(&mut self, device_id: &str, seq: i64) -> Option<QueuedMessage> {
        assert_eq!(device_id, DEVICE);
        let m = self.queue.iter_mut().find(|m| m.seq == seq)?;
        m.delivery_count += 1;
        Some(m.clone())
    }
}

fn encode(packet: Packet) -> Vec<u8> {
    let mut b = BytesMut::new();
    packet
        .write(&mut b, usize::MAX)
        .expect("encoding a test packet");
    b.to_vec()
}

/// A CONNECT the hub accepts for [`DEVICE`].
pub(crate) fn good_connect(clean_session: bool) -> Vec<u8> {
    let mut c = rumqttc::mqttbytes::v4::Connect::new(DEVICE);
    c.keep_alive = 30;
    c.clean_session = clean_session;
    c.login = Some(rumqttc::mqttbytes::v4::Login::new(
        format!("{HUB}/{DEVICE}/?api-version=2021-04-12"),
        "",
    ));
    encode(Packet::Connect(c))
}

/// What the session sent so far, checked packet by packet.
#[derive(Default)]
struct Sent {
    connacks: usize,
    accepted: bool,
    packets: usize,
}

impl Sent {
    /// Every byte the session sends must be whole MQTT 3.1.1 packets that the
    /// codec (the one a device's client uses too) reads back, of the kinds a
    /// server sends, with a CONNACK first and only once.
    fn check(&mut self, out: Option<Bytes>) {
        let Some(out) = out else { return };
        assert!(!out.is_empty(), "take_output returned empty bytes");
        let mut buf = BytesMut::from(&out[..]);
        while !buf.is_empty() {
            let packet = Packet::read(&mut buf, usize::MAX)
                .unwrap_or_else(|e| panic!("the session sent bytes its codec cannot read: {e:?}"));
            self.packets += 1;
            match packet {
                Packet::ConnAck(ConnAck { code, .. }) => {
                    assert_eq!(self.connacks, 0, "a second CONNACK");
                    assert_eq!(self.packets, 1, "CONNACK is not the first packet");
                    self.connacks += 1;
                    self.accepted = code == ConnectReturnCode::Success;
                }
                other => {
                    assert!(self.accepted, "{other:?} sent before an accepted CONNACK");
                    match other {
                        Packet::Publish(p) => {
                            assert_ne!(p.qos, QoS::ExactlyOnce, "the hub published QoS 2");
                            assert_eq!(
                                p.qos == QoS::AtLeastOnce,
                                p.pkid != 0,
                                "packet id {} on a QoS {:?} publish",
                                p.pkid,
                                p.qos
                            );
                        }
                        Packet::PubAck(_)
                        | Packet::SubAck(_)
                        | Packet::UnsubAck(_)
                        | Packet::PingResp => {}
                        other => panic!("the hub sent a client's packet: {other:?}"),
                    }
                }
            }
        }
    }
}

/// The hub's MQTT session (`Session::receive`) fed a device's byte stream.
///
/// Input: byte 0 = flags (the fake hub's answers: device enabled, disabled
/// or unknown, certificate revoked before or during the CONNECT, twin or
/// none; whether the stream starts with a valid CONNECT or is raw; whether
/// the hub also delivers C2D messages, method requests and desired patches
/// between pieces; whether a stored session is resumed), byte 1 = how the stream is cut into `receive` calls
/// (see `input::pieces`), the rest = the stream.
///
/// Asserts: no panic; everything the session sends is well-formed MQTT
/// that the codec re-reads, of server packet kinds, a CONNACK first and
/// once, nothing before an accepted CONNACK, no QoS 2; the device is
/// journalled connected at most once, and only if the CONNACK accepted it
/// and the session went live first; once `receive` fails, the session stays
/// ended; every journal event serialises to JSON; a stored session is
/// saved only once live, never with a packet id twice or 0.
pub fn hub_session(data: &[u8]) {
    let (&flags, rest) = data.split_first().unwrap_or((&0, &[]));
    let (&cut, stream) = rest.split_first().unwrap_or((&0, &[]));
    let mut hub = FakeHub::new(flags);
    let mut session = Session::new(
        SessionConfig {
            hub_host: HUB.into(),
            max_packet_size: MAX_PACKET,
            c2d_window: 2,
        },
        ClientIdentity {
            device_id: DEVICE.into(),
            serial: Serial::parse(SERIAL).expect("a serial"),
        },
    );
    let mut input = if flags & RAW == 0 {
        good_connect(flags & STORED == 0)
    } else {
        Vec::new()
    };
    input.extend_from_slice(stream);
    let mut sent = Sent::default();
    let mut ended = false;
    for (i, piece) in pieces(&input, cut).enumerate() {
        let result = session.receive(&mut hub, piece);
        sent.check(session.take_output());
        if let Err(end) = result {
            assert!(!end.detail.is_empty(), "a session end without a detail");
            assert!(!session.is_connected(), "ended but still connected");
            ended = true;
            break;
        }
        if flags & HUB_EVENTS != 0 {
            session.deliver_c2d(&mut hub);
            let rid = i.to_string();
            session.send_method("reboot", &rid, br#"{"delay":1}"#.to_vec());
            session.send_desired(i as i64 + 4, &serde_json::json!({"interval": i}));
            sent.check(session.take_output());
        }
    }
    if ended {
        assert!(
            session.receive(&mut hub, b"\xc0\x00").is_err(),
            "an ended session took more data"
        );
        assert!(
            session.take_output().is_none(),
            "an ended session sent more"
        );
    }
    let connected = hub.connected_events();
    assert!(connected <= 1, "journalled connected {connected} times");
    assert_eq!(
        connected == 1,
        sent.accepted,
        "journalled connected without an accepted CONNACK, or the reverse"
    );
    if connected == 1 {
        assert!(hub.live_calls >= 1, "connected without going live");
    }
    assert_eq!(session.is_connected(), sent.accepted && !ended);
}
