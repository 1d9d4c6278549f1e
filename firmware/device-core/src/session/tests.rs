//! Session tests, without sockets: hub packets are encoded with the same codec
//! (or built by hand where the point is malformation), fed to the session,
//! and its actions decoded back and compared.

mod c2d;
mod reconnect;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use alloc::{format, vec};

use mqttrs::{
    decode_slice, encode_slice, Connack, ConnectReturnCode, Packet, Pid, Publish, QosPid, Suback,
    SubscribeReturnCodes,
};
use serde_json::json;

use super::*;
use crate::faults::{Fault, FaultSet};

const ID: &str = "dev-1";
const HUB: &str = "hub.sacbench.test";

fn config() -> SessionConfig {
    SessionConfig::new(ID, HUB)
}

/// An action with the sent packet decoded into owned fields.
#[derive(Debug, Clone, PartialEq)]
enum Out {
    Connect {
        client_id: String,
        user: Option<String>,
        password: bool,
        clean: bool,
        keep_alive: u16,
    },
    Subscribe {
        pid: u16,
        filters: Vec<(String, u8)>,
    },
    Publish {
        topic: String,
        qos: u8,
        pid: Option<u16>,
        payload: Vec<u8>,
    },
    Puback(u16),
    Pingreq,
    Disconnect,
    Persist(Vec<u8>),
    Event(SessionEvent),
    Close(CloseReason),
}

fn decode_sent(bytes: &[u8]) -> Out {
    let packet = decode_slice(bytes)
        .unwrap()
        .expect("one whole packet per Send");
    match packet {
        Packet::Connect(c) => Out::Connect {
            client_id: c.client_id.to_string(),
            user: c.username.map(ToString::to_string),
            password: c.password.is_some(),
            clean: c.clean_session,
            keep_alive: c.keep_alive,
        },
        Packet::Subscribe(s) => Out::Subscribe {
            pid: s.pid.get(),
            filters: s
                .topics
                .iter()
                .map(|t| (t.topic_path.as_str().to_string(), t.qos as u8))
                .collect(),
        },
        Packet::Publish(p) => Out::Publish {
            topic: p.topic_name.to_string(),
            qos: p.qospid.qos() as u8,
            pid: p.qospid.pid().map(Pid::get),
            payload: p.payload.to_vec(),
        },
        Packet::Puback(pid) => Out::Puback(pid.get()),
        Packet::Pingreq => Out::Pingreq,
        Packet::Disconnect => Out::Disconnect,
        other => panic!("a client does not send {other:?}"),
    }
}

/// Drains the session's actions, decoded.
fn outs(s: &mut Session) -> Vec<Out> {
    s.take_actions()
        .into_iter()
        .map(|a| match a {
            Action::Send(bytes) => decode_sent(&bytes),
            Action::PersistApplied(bytes) => Out::Persist(bytes),
            Action::Event(e) => Out::Event(e),
            Action::Close(r) => Out::Close(r),
        })
        .collect()
}

fn enc(packet: Packet<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = encode_slice(&packet, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn pid(n: u16) -> Pid {
    Pid::try_from(n).unwrap()
}

fn connack(code: ConnectReturnCode) -> Vec<u8> {
    enc(Packet::Connack(Connack {
        session_present: false,
        code,
    }))
}

fn suback(id: u16, codes: &[SubscribeReturnCodes]) -> Vec<u8> {
    let mut list = heapless::Vec::new();
    for c in codes {
        list.push(*c).unwrap();
    }
    enc(Packet::Suback(Suback::new(pid(id), list)))
}

fn granted(n: usize) -> Vec<SubscribeReturnCodes> {
    vec![SubscribeReturnCodes::Success(mqttrs::QoS::AtLeastOnce); n]
}

/// A hub PUBLISH: QoS 1 with `packet_id`, or QoS 0 when `None`.
fn publish(topic: &str, packet_id: Option<u16>, dup: bool, payload: &[u8]) -> Vec<u8> {
    enc(Packet::Publish(Publish {
        dup,
        qospid: packet_id.map_or(QosPid::AtMostOnce, |n| QosPid::AtLeastOnce(pid(n))),
        retain: false,
        topic_name: topic,
        payload,
    }))
}

fn subscribe_pid(outs: &[Out]) -> u16 {
    outs.iter()
        .find_map(|o| match o {
            Out::Subscribe { pid, .. } => Some(*pid),
            _ => None,
        })
        .expect("a SUBSCRIBE")
}

/// A session through CONNECT, CONNACK and SUBACK at `now`, with its
/// actions drained (the automatic twin GET has rid 1).
fn ready_with(
    config: SessionConfig,
    faults: FaultSet,
    first: bool,
    applied: AppliedIds,
) -> Session {
    let mut s = Session::new(config, faults, first, applied).unwrap();
    s.connect(0).unwrap();
    s.receive(1000, &connack(ConnectReturnCode::Accepted));
    let o = outs(&mut s);
    let n = o
        .iter()
        .find_map(|o| match o {
            Out::Subscribe { filters, .. } => Some(filters.len()),
            _ => None,
        })
        .unwrap();
    s.receive(1000, &suback(subscribe_pid(&o), &granted(n)));
    outs(&mut s);
    assert!(s.is_ready());
    s
}

fn ready() -> Session {
    ready_with(config(), FaultSet::NONE, true, AppliedIds::new())
}

fn all_filters() -> Vec<(String, u8)> {
    vec![
        ("devices/dev-1/messages/devicebound/#".into(), 1),
        ("$iothub/methods/POST/#".into(), 0),
        ("$iothub/twin/res/#".into(), 0),
        ("$iothub/twin/PATCH/properties/desired/#".into(), 0),
    ]
}

fn closed_with(o: &[Out]) -> Option<&CloseReason> {
    o.iter().find_map(|o| match o {
        Out::Close(r) => Some(r),
        _ => None,
    })
}

#[test]
fn connect_sequence_uses_the_hub_names_and_topics() {
    let mut s = Session::new(config(), FaultSet::NONE, true, AppliedIds::new()).unwrap();
    assert_eq!(s.send_telemetry(b"x", &[]), Err(SessionError::NotConnected));
    s.connect(0).unwrap();
    assert_eq!(s.connect(0), Err(SessionError::AlreadyStarted));
    assert_eq!(
        outs(&mut s),
        [Out::Connect {
            client_id: "dev-1".into(),
            user: Some("hub.sacbench.test/dev-1/?api-version=2021-04-12".into()),
            password: false,
            clean: true,
            keep_alive: 60,
        }]
    );
    s.receive(5, &connack(ConnectReturnCode::Accepted));
    let o = outs(&mut s);
    assert_eq!(
        o[0],
        Out::Event(SessionEvent::Connected {
            session_present: false
        })
    );
    let sub = subscribe_pid(&o);
    assert_eq!(
        o[1..],
        [Out::Subscribe {
            pid: sub,
            filters: all_filters()
        }]
    );
    assert!(s.is_connected() && !s.is_ready());
    s.receive(6, &suback(sub, &granted(4)));
    assert_eq!(
        outs(&mut s),
        [
            Out::Event(SessionEvent::Subscribed { commands: true }),
            Out::Publish {
                topic: "$iothub/twin/GET/?$rid=1".into(),
                qos: 0,
                pid: None,
                payload: vec![]
            },
        ]
    );
    assert!(s.is_ready());
}

#[test]
fn refused_connack_closes_with_its_return_code() {
    let mut s = Session::new(config(), FaultSet::NONE, true, AppliedIds::new()).unwrap();
    s.connect(0).unwrap();
    outs(&mut s);
    s.receive(1, &connack(ConnectReturnCode::NotAuthorized));
    assert_eq!(outs(&mut s), [Out::Close(CloseReason::ConnectRefused(5))]);
    assert!(s.is_closed());
    assert_eq!(s.send_telemetry(b"x", &[]), Err(SessionError::Closed));
    // Nothing more comes out of a closed session.
    s.receive(2, &connack(ConnectReturnCode::Accepted));
    s.poll(60_000_000);
    assert_eq!(outs(&mut s), []);
}

#[test]
fn refused_subscription_closes_naming_the_filter() {
    let mut s = Session::new(config(), FaultSet::NONE, true, AppliedIds::new()).unwrap();
    s.connect(0).unwrap();
    s.receive(1, &connack(ConnectReturnCode::Accepted));
    let sub = subscribe_pid(&outs(&mut s));
    let mut codes = granted(4);
    codes[1] = SubscribeReturnCodes::Failure;
    s.receive(2, &suback(sub, &codes));
    assert_eq!(
        outs(&mut s),
        [Out::Close(CloseReason::SubscribeRefused(
            "$iothub/methods/POST/#".into()
        ))]
    );
    // A SUBACK with the wrong number of codes is refused too.
    let mut s = Session::new(config(), FaultSet::NONE, true, AppliedIds::new()).unwrap();
    s.connect(0).unwrap();
    s.receive(1, &connack(ConnectReturnCode::Accepted));
    let sub = subscribe_pid(&outs(&mut s));
    s.receive(2, &suback(sub, &granted(3)));
    assert!(matches!(
        closed_with(&outs(&mut s)),
        Some(CloseReason::Protocol(_))
    ));
}

/// The hub's side of a whole conversation, as one byte stream.
fn conversation() -> Vec<u8> {
    let mut stream = connack(ConnectReturnCode::Accepted);
    // The session's first packet id goes to SUBSCRIBE.
    stream.extend(suback(1, &granted(4)));
    stream.extend(publish(
        "$iothub/twin/res/200/?$rid=1",
        None,
        false,
        br#"{"desired":{"$version":3},"reported":{"$version":1}}"#,
    ));
    stream.extend(publish(
        "devices/dev-1/messages/devicebound/%24.mid=m-1&%24.to=%2Fdevices%2Fdev-1%2Fmessages%2FdeviceBound",
        Some(1),
        false,
        b"on",
    ));
    stream.extend(publish(
        "$iothub/methods/POST/reboot/?$rid=9",
        None,
        false,
        b"{}",
    ));
    stream
}

#[test]
fn split_and_coalesced_reads_give_the_same_result() {
    let stream = conversation();
    let run = |chunks: &[&[u8]]| {
        let mut s = Session::new(config(), FaultSet::NONE, true, AppliedIds::new()).unwrap();
        s.connect(0).unwrap();
        for c in chunks {
            s.receive(1, c);
        }
        outs(&mut s)
    };
    let whole = run(&[&stream]);
    assert_eq!(whole.len(), 8, "{whole:?}");
    assert!(matches!(
        &whole[5],
        Out::Event(SessionEvent::Twin { rid: 1, status: 200, twin: Some(t) })
            if t.desired_version == Some(3) && t.reported_version == Some(1)
    ));
    assert!(matches!(&whole[6], Out::Event(SessionEvent::Command(c)) if c.mid == "m-1"));
    assert!(matches!(&whole[7], Out::Event(SessionEvent::Method { name, .. }) if name == "reboot"));
    assert_eq!(closed_with(&whole), None);
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(run(&bytes), whole, "one byte at a time");
    for cut in [1, 2, 5, 17, stream.len() - 1] {
        let (a, b) = stream.split_at(cut);
        assert_eq!(run(&[a, b]), whole, "split at {cut}");
    }
}

#[test]
fn telemetry_carries_the_property_bag_and_waits_for_puback() {
    let mut cfg = config();
    cfg.telemetry_properties = vec![
        ("$.ct".into(), "application/json".into()),
        ("$.ce".into(), "utf-8".into()),
    ];
    cfg.max_in_flight = 2;
    let mut s = ready_with(cfg, FaultSet::NONE, true, AppliedIds::new());
    let a = s
        .send_telemetry(br#"{"t":21.5}"#, &[("alert", "high temp")])
        .unwrap();
    let o = outs(&mut s);
    let topic = "devices/dev-1/messages/events/$.ct=application%2Fjson&$.ce=utf-8&alert=high+temp";
    assert_eq!(
        o,
        [Out::Publish {
            topic: topic.into(),
            qos: 1,
            pid: Some(a),
            payload: br#"{"t":21.5}"#.to_vec()
        }]
    );
    // The hub decodes the bag with form_urlencoded, as here.
    let bag: Vec<(String, String)> =
        form_urlencoded::parse(topic.rsplit('/').next().unwrap().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    assert_eq!(bag[2], ("alert".into(), "high temp".into()));
    let b = s.send_telemetry(b"2", &[]).unwrap();
    assert_ne!(a, b);
    assert_eq!(s.send_telemetry(b"3", &[]), Err(SessionError::InFlightFull));
    assert_eq!(s.unacked_telemetry(), [a, b]);
    outs(&mut s);
    s.receive(2, &enc(Packet::Puback(pid(a))));
    assert_eq!(
        outs(&mut s),
        [Out::Event(SessionEvent::TelemetryAcked { packet_id: a })]
    );
    assert_eq!(s.unacked_telemetry(), [b]);
    // A PUBACK for nothing in flight is the hub's mistake: close.
    s.receive(3, &enc(Packet::Puback(pid(a))));
    assert!(matches!(
        closed_with(&outs(&mut s)),
        Some(CloseReason::Protocol(_))
    ));
}

#[test]
fn methods_are_surfaced_and_answered_on_their_rid() {
    let mut s = ready();
    s.receive(
        2,
        &publish(
            "$iothub/methods/POST/credentials/rotate/?$rid=42",
            None,
            false,
            b"{}",
        ),
    );
    assert_eq!(
        outs(&mut s),
        [Out::Event(SessionEvent::Method {
            name: "credentials/rotate".into(),
            rid: "42".into(),
            payload: b"{}".to_vec()
        })]
    );
    assert_eq!(
        s.respond_method("41", 200, b"{}"),
        Err(SessionError::UnknownMethod)
    );
    s.respond_method("42", 202, br#"{"accepted":true}"#)
        .unwrap();
    assert_eq!(
        outs(&mut s),
        [Out::Publish {
            topic: "$iothub/methods/res/202/?$rid=42".into(),
            qos: 0,
            pid: None,
            payload: br#"{"accepted":true}"#.to_vec()
        }]
    );
    assert_eq!(
        s.respond_method("42", 200, b"{}"),
        Err(SessionError::UnknownMethod),
        "answered once"
    );
    // A method request without $rid cannot be answered: malformed.
    s.receive(
        3,
        &publish("$iothub/methods/POST/reboot/", None, false, b"{}"),
    );
    assert!(matches!(
        closed_with(&outs(&mut s)),
        Some(CloseReason::Malformed(_))
    ));
}

#[test]
fn twin_get_desired_and_reported() {
    let mut s = ready();
    // The automatic GET after SUBACK had rid 1.
    let body = json!({
        "desired": {"telemetryIntervalSeconds": 30, "$version": 4},
        "reported": {"firmware": {"version": "1.3.0"}, "$version": 2}
    });
    s.receive(
        2,
        &publish(
            "$iothub/twin/res/200/?$rid=1",
            None,
            false,
            body.to_string().as_bytes(),
        ),
    );
    assert_eq!(
        outs(&mut s),
        [Out::Event(SessionEvent::Twin {
            rid: 1,
            status: 200,
            twin: Some(TwinDocument {
                desired: body["desired"].clone(),
                reported: body["reported"].clone(),
                desired_version: Some(4),
                reported_version: Some(2),
            })
        })]
    );
    let patch = json!({"telemetryIntervalSeconds": 10, "$version": 5});
    s.receive(
        3,
        &publish(
            "$iothub/twin/PATCH/properties/desired/?$version=5",
            None,
            false,
            patch.to_string().as_bytes(),
        ),
    );
    assert_eq!(
        outs(&mut s),
        [Out::Event(SessionEvent::Desired { version: 5, patch })]
    );
    let reported = json!({"firmware": {"version": "1.3.0", "state": "idle"}});
    let rid = s.report(&reported).unwrap();
    assert_eq!(rid, 2);
    let o = outs(&mut s);
    let Out::Publish {
        topic,
        qos: 0,
        payload,
        ..
    } = &o[0]
    else {
        panic!("{o:?}")
    };
    assert_eq!(topic, "$iothub/twin/PATCH/properties/reported/?$rid=2");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(payload).unwrap(),
        reported
    );
    s.receive(
        4,
        &publish("$iothub/twin/res/204/?$rid=2&$version=3", None, false, b""),
    );
    assert_eq!(
        outs(&mut s),
        [Out::Event(SessionEvent::Reported {
            rid: 2,
            status: 204,
            version: Some(3)
        })]
    );
    // A failed GET surfaces its status and no document.
    let rid = s.twin_get().unwrap();
    outs(&mut s);
    s.receive(
        5,
        &publish(
            &format!("$iothub/twin/res/404/?$rid={rid}"),
            None,
            false,
            b"",
        ),
    );
    assert_eq!(
        outs(&mut s),
        [Out::Event(SessionEvent::Twin {
            rid,
            status: 404,
            twin: None
        })]
    );
    // A response to a rid never asked (or already answered) closes.
    s.receive(
        6,
        &publish("$iothub/twin/res/204/?$rid=2", None, false, b""),
    );
    assert!(matches!(
        closed_with(&outs(&mut s)),
        Some(CloseReason::Protocol(_))
    ));
}

#[test]
fn twin_bodies_that_are_not_json_close() {
    let mut s = ready();
    s.receive(
        2,
        &publish("$iothub/twin/res/200/?$rid=1", None, false, b"{not json"),
    );
    assert!(matches!(
        closed_with(&outs(&mut s)),
        Some(CloseReason::Malformed(_))
    ));
    let mut s = ready();
    s.receive(
        2,
        &publish(
            "$iothub/twin/PATCH/properties/desired/?$version=x",
            None,
            false,
            b"{}",
        ),
    );
    assert!(matches!(
        closed_with(&outs(&mut s)),
        Some(CloseReason::Malformed(_))
    ));
}

#[test]
fn keep_alive_pings_and_detects_a_dead_connection() {
    let mut cfg = config();
    cfg.keep_alive_secs = 30;
    cfg.ping_timeout_ms = 5_000;
    // CONNACK arrives at t = 1000.
    let mut s = ready_with(cfg, FaultSet::NONE, true, AppliedIds::new());
    assert_eq!(s.next_deadline(), Some(31_000));
    s.poll(30_999);
    assert_eq!(outs(&mut s), []);
    s.poll(31_000);
    assert_eq!(outs(&mut s), [Out::Pingreq]);
    assert_eq!(s.next_deadline(), Some(36_000), "PINGRESP due");
    s.poll(35_999);
    s.receive(35_999, &enc(Packet::Pingresp));
    assert_eq!(outs(&mut s), []);
    assert_eq!(s.next_deadline(), Some(61_000));
    s.poll(61_000);
    assert_eq!(outs(&mut s), [Out::Pingreq]);
    s.poll(65_999);
    assert_eq!(outs(&mut s), []);
    s.poll(66_000);
    assert_eq!(outs(&mut s), [Out::Close(CloseReason::PingTimeout)]);
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn connack_timeout_and_unsolicited_pingresp_close() {
    let mut s = Session::new(config(), FaultSet::NONE, true, AppliedIds::new()).unwrap();
    s.connect(100).unwrap();
    outs(&mut s);
    assert_eq!(s.next_deadline(), Some(10_100));
    s.poll(10_099);
    assert_eq!(outs(&mut s), []);
    s.poll(10_100);
    assert_eq!(outs(&mut s), [Out::Close(CloseReason::ConnackTimeout)]);

    let mut s = ready();
    s.receive(2, &enc(Packet::Pingresp));
    assert!(matches!(
        closed_with(&outs(&mut s)),
        Some(CloseReason::Protocol(_))
    ));
}

#[test]
fn disconnect_sends_disconnect_then_closes() {
    let mut s = ready();
    s.disconnect().unwrap();
    assert_eq!(
        outs(&mut s),
        [Out::Disconnect, Out::Close(CloseReason::Requested)]
    );
    assert_eq!(s.disconnect(), Err(SessionError::Closed));
}

#[test]
fn malformed_or_out_of_place_input_closes_without_panic() {
    // Each of these would make mqttrs 0.4 index past its input, or is a
    // packet a server never sends, or breaks the fixed header.
    let cases: &[(&str, &[u8])] = &[
        ("PUBACK without packet id", &[0x40, 0x00]),
        ("PUBACK one byte short", &[0x40, 0x01, 0x00]),
        ("CONNACK empty", &[0x20, 0x00]),
        ("SUBACK without codes", &[0x90, 0x02, 0x00, 0x01]),
        (
            "QoS 1 PUBLISH without packet id",
            &[0x32, 0x03, 0x00, 0x01, b'a'],
        ),
        (
            "topic longer than the packet",
            &[0x30, 0x03, 0x00, 0x05, b'a', 0x40, 0x02, 0x00, 0x01],
        ),
        ("QoS 3 PUBLISH", &[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01]),
        ("QoS 2 PUBLISH", &[0x34, 0x05, 0x00, 0x01, b'a', 0x00, 0x01]),
        (
            "PUBLISH packet id 0",
            &[0x32, 0x05, 0x00, 0x01, b'a', 0x00, 0x00],
        ),
        ("topic not UTF-8", &[0x30, 0x04, 0x00, 0x02, 0xc3, 0x28]),
        (
            "five-byte remaining length",
            &[0x30, 0xff, 0xff, 0xff, 0xff, 0x01],
        ),
        ("PUBACK with flags", &[0x42, 0x02, 0x00, 0x01]),
        ("PUBREC (QoS 2)", &[0x50, 0x02, 0x00, 0x01]),
        ("CONNECT from the server", &[0x10, 0x00]),
        ("PINGREQ from the server", &[0xc0, 0x00]),
        ("reserved type 0", &[0x00, 0x00]),
        ("reserved type 15", &[0xf0, 0x00]),
        ("UNSUBACK for nothing", &[0xb0, 0x02, 0x00, 0x01]),
        ("second CONNACK", &[0x20, 0x02, 0x00, 0x00]),
        ("SUBACK when subscribed", &[0x90, 0x03, 0x00, 0x01, 0x00]),
    ];
    for (what, bytes) in cases {
        let mut s = ready();
        s.receive(2, bytes);
        let o = outs(&mut s);
        assert!(
            matches!(
                closed_with(&o),
                Some(CloseReason::Malformed(_) | CloseReason::Protocol(_))
            ),
            "{what}: {o:?}"
        );
        assert!(s.is_closed(), "{what}");
    }
    // Another device's topic, or one never subscribed.
    for topic in [
        "devices/dev-2/messages/devicebound/%24.mid=1",
        "$iothub/other",
        "a/b",
    ] {
        let mut s = ready();
        s.receive(2, &publish(topic, None, false, b""));
        assert_eq!(
            closed_with(&outs(&mut s)),
            Some(&CloseReason::UnexpectedTopic(topic.into()))
        );
    }
}

#[test]
fn oversized_packet_is_refused_before_it_is_buffered() {
    let mut cfg = config();
    cfg.max_packet_size = 1024;
    let mut s = ready_with(cfg, FaultSet::NONE, true, AppliedIds::new());
    // Header announcing 2000 bytes; the body never needs to arrive.
    s.receive(2, &[0x30, 0xd0, 0x0f]);
    assert_eq!(
        closed_with(&outs(&mut s)),
        Some(&CloseReason::TooLarge(2000))
    );
}

#[test]
fn data_before_connect_is_refused() {
    let mut s = Session::new(config(), FaultSet::NONE, true, AppliedIds::new()).unwrap();
    s.receive(0, &connack(ConnectReturnCode::Accepted));
    assert!(matches!(
        closed_with(&outs(&mut s)),
        Some(CloseReason::Protocol(_))
    ));
    // Before CONNACK, only CONNACK is acceptable.
    let mut s = Session::new(config(), FaultSet::NONE, true, AppliedIds::new()).unwrap();
    s.connect(0).unwrap();
    s.receive(0, &enc(Packet::Pingresp));
    assert!(matches!(
        closed_with(&outs(&mut s)),
        Some(CloseReason::Protocol(_))
    ));
}

#[test]
fn random_bytes_never_panic() {
    // Deterministic pseudo-random streams, fed in pieces, after a valid
    // prefix so that every state gets garbage.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..3000 {
        let mut s = Session::new(config(), FaultSet::NONE, true, AppliedIds::new()).unwrap();
        s.connect(0).unwrap();
        if round % 2 == 0 {
            s.receive(1, &connack(ConnectReturnCode::Accepted));
        }
        let len = (next() % 64) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Bias towards plausible headers so the decoder is reached.
        if let Some(b) = bytes.first_mut() {
            *b = [0x20, 0x30, 0x32, 0x40, 0x90, 0xd0][(next() % 6) as usize];
        }
        if let Some(b) = bytes.get_mut(1) {
            *b %= 64;
        }
        for chunk in bytes.chunks(1 + (next() % 7) as usize) {
            s.receive(2, chunk);
        }
        s.take_actions();
    }
}

#[test]
fn config_is_validated() {
    for (id, host) in [
        ("", HUB),
        ("a/b", HUB),
        ("a#", HUB),
        ("a+", HUB),
        (ID, ""),
        (ID, "h/x"),
    ] {
        assert!(matches!(
            Session::new(
                SessionConfig::new(id, host),
                FaultSet::NONE,
                true,
                AppliedIds::new()
            ),
            Err(SessionError::InvalidConfig(_))
        ));
    }
    let long = "d".repeat(129);
    assert!(Session::new(
        SessionConfig::new(long, HUB),
        FaultSet::NONE,
        true,
        AppliedIds::new()
    )
    .is_err());
    let ok = "d".repeat(128);
    assert!(Session::new(
        SessionConfig::new(ok, HUB),
        FaultSet::NONE,
        true,
        AppliedIds::new()
    )
    .is_ok());
}
