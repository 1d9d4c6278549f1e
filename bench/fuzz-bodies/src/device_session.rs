//! The reference device's MQTT session (`device_core::session::Session`),
//! whose `receive` runs every packet through the framing guard and then
//! `mqttrs`, fed the hub's byte stream.

use bytes::BytesMut;
use device_core::faults::{Fault, FaultSet};
use device_core::session::{Action, AppliedIds, Session, SessionConfig, SessionEvent};
use rumqttc::mqttbytes::v4::Packet;
use rumqttc::mqttbytes::QoS;

use crate::input::pieces;

const HUB: &str = "hub.sacbench.test";
const DEVICE: &str = "dut-1";

// Bits of the first input byte.
/// Send the stream as is; otherwise a CONNACK (accepted) goes first.
pub(crate) const RAW: u8 = 0x01;
/// After the CONNACK, also a SUBACK granting the four subscriptions (for
/// packet id 1, the session's first), so the stream starts in `Ready`.
const SUBACKED: u8 = 0x02;
/// The app does not apply surfaced commands nor answer methods.
const LAZY_APP: u8 = 0x04;
/// The app sends telemetry after every piece.
pub(crate) const TELEMETRY: u8 = 0x08;
/// The session's three faults (each does one wrong thing on purpose).
const NO_RESUBSCRIBE: u8 = 0x10;
pub(crate) const NO_DEDUPE: u8 = 0x20;
const ACK_BEFORE_PERSIST: u8 = 0x40;
/// Not the first session since power-on (matters with `NO_RESUBSCRIBE`).
const NOT_FIRST: u8 = 0x80;

/// An accepted CONNACK.
pub(crate) const CONNACK: [u8; 4] = [0x20, 0x02, 0x00, 0x00];
/// A SUBACK for packet id 1 granting four subscriptions (C2D at QoS 1).
pub(crate) const SUBACK: [u8; 8] = [0x90, 0x06, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00];

/// What the device sent, checked with the hub's codec (rumqttc).
#[derive(Default)]
struct Checker {
    closed: bool,
}

impl Checker {
    /// Each `Send` is exactly one MQTT packet the hub's codec reads, of a
    /// kind a client sends, never QoS 2; after `Close` only `PersistApplied`
    /// may follow (an id applied after the session closed is still stored).
    fn check(&mut self, actions: &[Action]) {
        for action in actions {
            if self.closed {
                assert!(
                    matches!(action, Action::PersistApplied(_)),
                    "{action:?} after Close"
                );
            }
            match action {
                Action::Send(bytes) => {
                    let mut buf = BytesMut::from(&bytes[..]);
                    let packet = Packet::read(&mut buf, usize::MAX).unwrap_or_else(|e| {
                        panic!("the device sent bytes the hub's codec cannot read: {e:?}")
                    });
                    assert!(buf.is_empty(), "one Send held more than one packet");
                    match packet {
                        Packet::Connect(_)
                        | Packet::Subscribe(_)
                        | Packet::PubAck(_)
                        | Packet::PingReq
                        | Packet::Disconnect => {}
                        Packet::Publish(p) => assert_ne!(p.qos, QoS::ExactlyOnce),
                        other => panic!("the device sent a server's packet: {other:?}"),
                    }
                }
                Action::PersistApplied(bytes) => {
                    let ids = AppliedIds::decode(bytes).expect("persisted ids decode");
                    assert_eq!(&ids.encode(), bytes, "persisted ids re-encode differently");
                }
                Action::Close(_) => self.closed = true,
                Action::Event(_) => {}
            }
        }
    }
}

/// The device's MQTT session (`Session::receive`: the framing guard, then
/// `mqttrs`) fed the hub's byte stream, with the app answering as the
/// reference firmware does.
///
/// Input: byte 0 = flags (whether the stream starts with an accepted
/// CONNACK and a SUBACK or is raw; whether the app applies commands and
/// answers methods, sends telemetry; the session faults `no-resubscribe`,
/// `no-dedupe`, `ack-before-persist`), byte 1 = how the stream is cut into
/// `receive` calls (see `input::pieces`), the rest = the stream. Time
/// advances 1 s per piece, with `poll` after each.
///
/// Asserts: no panic (the guard's promise: nothing from the network panics
/// `mqttrs` or the session); every packet the device sends is one whole
/// MQTT packet the hub's codec (rumqttc) reads, of a client's kinds, never
/// QoS 2; nothing but persisting ids after `Close`; persisted ids round-trip;
/// the session is closed exactly when it said `Close`. Also: arbitrary bytes
/// as persisted ids (`AppliedIds::decode`) re-encode identically when they
/// decode.
pub fn device_session(data: &[u8]) {
    if let Ok(ids) = AppliedIds::decode(data) {
        assert_eq!(
            AppliedIds::decode(&ids.encode()).map(|d| d.encode()),
            Ok(ids.encode()),
            "decoded ids do not round-trip"
        );
    }
    let (&flags, rest) = data.split_first().unwrap_or((&0, &[]));
    let (&cut, stream) = rest.split_first().unwrap_or((&0, &[]));
    let mut faults = FaultSet::NONE;
    for (bit, fault) in [
        (NO_RESUBSCRIBE, Fault::NoResubscribe),
        (NO_DEDUPE, Fault::NoDedupe),
        (ACK_BEFORE_PERSIST, Fault::AckBeforePersist),
    ] {
        if flags & bit != 0 {
            faults = faults.with(fault);
        }
    }
    let mut config = SessionConfig::new(DEVICE, HUB);
    config.max_packet_size = 4096;
    config.max_in_flight = 4;
    config.keep_alive_secs = 5;
    let mut applied = AppliedIds::new();
    applied.insert("applied-before");
    let mut session = Session::new(config, faults, flags & NOT_FIRST == 0, applied)
        .expect("a valid configuration");
    let mut checker = Checker::default();
    session.connect(0).expect("connect on a new session");
    let actions = session.take_actions();
    assert!(matches!(actions.as_slice(), [Action::Send(_)]));
    checker.check(&actions);

    let mut input = Vec::new();
    if flags & RAW == 0 {
        input.extend_from_slice(&CONNACK);
        if flags & SUBACKED != 0 {
            input.extend_from_slice(&SUBACK);
        }
    }
    input.extend_from_slice(stream);
    for (i, piece) in pieces(&input, cut).enumerate() {
        let now = 1000 * (i as u64 + 1);
        session.receive(now, piece);
        session.poll(now);
        let actions = session.take_actions();
        checker.check(&actions);
        let mut app_actions = Vec::new();
        if flags & LAZY_APP == 0 {
            for action in &actions {
                match action {
                    Action::Event(SessionEvent::Command(c)) => {
                        session
                            .command_applied(&c.mid)
                            .expect("a surfaced command can be applied");
                        // The id is persisted before the command's PUBACK.
                        let batch = session.take_actions();
                        if !session.is_closed() && flags & ACK_BEFORE_PERSIST == 0 {
                            assert!(
                                matches!(batch.first(), Some(Action::PersistApplied(_))),
                                "a command's PUBACK before its id is persisted: {batch:?}"
                            );
                        }
                        app_actions.extend(batch);
                    }
                    Action::Event(SessionEvent::Method { rid, .. }) if !session.is_closed() => {
                        let _ = session.respond_method(rid, 200, br#"{"ok":true}"#);
                        app_actions.extend(session.take_actions());
                    }
                    _ => {}
                }
            }
        }
        if flags & TELEMETRY != 0 && session.is_connected() {
            let _ = session.send_telemetry(b"{\"t\":21.5}", &[("unit", "C")]);
        }
        app_actions.extend(session.take_actions());
        checker.check(&app_actions);
        assert_eq!(session.is_closed(), checker.closed);
        if checker.closed {
            break;
        }
    }
    // A closed session takes no more data and sends nothing.
    if session.is_closed() {
        session.receive(u64::MAX, &CONNACK);
        assert!(session.take_actions().is_empty());
    }
}
