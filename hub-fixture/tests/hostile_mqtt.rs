//! The hostile-input battery, MQTT surface: a device with a valid
//! certificate ("mallory") sends what a device must not — packets before or
//! instead of CONNECT, identities that are not its own, other protocol
//! versions, QoS 2, packets only a server sends, other devices' topics and
//! filters, wills on them, oversize, lying and malformed lengths, malformed
//! fields — and a slowloris CONNECT. Each input ends only mallory's
//! connection, with the precise journal entry (and CONNACK where MQTT 3.1.1
//! defines one); the good device is served after each; RSS stays bounded.
//! Inputs that a session survives (twin and method abuse) are checked to
//! get IoT Hub's answer with the session still up.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;
mod hostile;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use common::GUARD;
use hostile::*;
use hub_fixture::journal::{CloseReason, Event, RefuseReason};
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, LastWill, Packet, PubComp, PubRec, PubRel, Publish, SubAck, Subscribe,
    SubscribeFilter, SubscribeReasonCode, UnsubAck,
};
use rumqttc::{ConnectReturnCode, QoS};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The battery hub's CONNECT timeout: short, so lying lengths before
/// CONNECT are cut quickly.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);

fn enc(p: Packet) -> Vec<u8> {
    let mut b = BytesMut::new();
    p.write(&mut b, usize::MAX).unwrap();
    b.to_vec()
}

fn user(id: &str) -> String {
    format!("localhost/{id}/?api-version=2021-04-12")
}

fn connect_as(client_id: &str, user_name: Option<&str>, keep_alive: u16) -> Connect {
    let mut c = Connect::new(client_id);
    c.keep_alive = keep_alive;
    if let Some(u) = user_name {
        c.set_login(u, "");
    }
    c
}

/// Mallory's own, valid CONNECT.
fn mallory_connect(keep_alive: u16) -> Vec<u8> {
    enc(Packet::Connect(connect_as(
        MALLORY,
        Some(&user(MALLORY)),
        keep_alive,
    )))
}

/// Mallory's CONNECT with a will on `topic`.
fn with_will(topic: &str) -> Vec<u8> {
    let mut c = connect_as(MALLORY, Some(&user(MALLORY)), 0);
    c.last_will = Some(LastWill::new(topic, "bye", QoS::AtLeastOnce, false));
    enc(Packet::Connect(c))
}

/// Mallory's valid CONNECT with `flags` OR-ed into its connect flags.
fn connect_flags_or(flags: u8) -> Vec<u8> {
    let mut b = mallory_connect(0);
    // Fixed header (1 + 1 length byte here), "MQTT" (2 + 4), level (1).
    assert!(b[1] < 0x80);
    b[2 + 6 + 1] |= flags;
    b
}

/// A CONNECT in another protocol's framing: protocol `name` and `level`,
/// then `rest` (flags onwards).
fn connect_framed(name: &str, level: u8, rest: &[u8]) -> Vec<u8> {
    let mut body = (name.len() as u16).to_be_bytes().to_vec();
    body.extend(name.as_bytes());
    body.push(level);
    body.extend(rest);
    let mut b = vec![0x10];
    b.extend(remaining_length(body.len()));
    b.extend(body);
    b
}

fn mqtt_str(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend(s.as_bytes());
    v
}

/// An MQTT 5 CONNECT as an MQTT 5 client sends it: clean start, a user
/// name, keep-alive 60, empty properties.
fn mqtt5_connect() -> Vec<u8> {
    let mut rest = vec![0x82, 0, 60, 0];
    rest.extend(mqtt_str(MALLORY));
    rest.extend(mqtt_str(&user(MALLORY)));
    connect_framed("MQTT", 5, &rest)
}

/// A 3.1-style CONNECT: `name` and level 3, clean session, a user name.
fn level3_connect(name: &str) -> Vec<u8> {
    let mut rest = vec![0x82, 0, 60];
    rest.extend(mqtt_str(MALLORY));
    rest.extend(mqtt_str(&user(MALLORY)));
    connect_framed(name, 3, &rest)
}

fn remaining_length(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return out;
        }
    }
}

fn publish(topic: &str, qos: QoS) -> Vec<u8> {
    let mut p = Publish::new(topic, qos, "x");
    if qos != QoS::AtMostOnce {
        p.pkid = 1;
    }
    enc(Packet::Publish(p))
}

fn subscribe(filters: &[&str]) -> Vec<u8> {
    enc(Packet::Subscribe(Subscribe {
        pkid: 1,
        filters: filters
            .iter()
            .map(|f| SubscribeFilter::new(f.to_string(), QoS::AtLeastOnce))
            .collect(),
    }))
}

/// A packet header announcing `declared` bytes, followed by `sent` of them.
fn lying(first: u8, declared: usize, sent: usize) -> Vec<u8> {
    let mut b = vec![first];
    b.extend(remaining_length(declared));
    b.extend(std::iter::repeat_n(0x41, sent));
    b
}

/// What the hub must do with an input.
enum Expect {
    /// Close without a word; the session ends with this reason and detail.
    Closed(CloseReason, &'static str),
    /// CONNACK with this code, then close; journalled as refused.
    Refused(ConnectReturnCode, RefuseReason, &'static str),
    /// Close as an ACL violation of `action` on `topic`.
    Acl(&'static str, String),
}

struct Case {
    name: &'static str,
    /// Keep-alive of mallory's CONNECT first, or `None`: the input comes
    /// instead of CONNECT.
    connected: Option<u16>,
    bytes: Vec<u8>,
    /// The client closes its side after the input (else it stays, quiet).
    then_close: bool,
    expect: Expect,
}

fn before(name: &'static str, bytes: Vec<u8>, expect: Expect) -> Case {
    Case {
        name,
        connected: None,
        bytes,
        then_close: false,
        expect,
    }
}

fn after(name: &'static str, bytes: Vec<u8>, expect: Expect) -> Case {
    Case {
        connected: Some(0),
        ..before(name, bytes, expect)
    }
}

fn cases() -> Vec<Case> {
    use CloseReason as C;
    use ConnectReturnCode as Code;
    use Expect::*;
    use RefuseReason as R;
    let pv = C::ProtocolViolation;
    let mal = C::MalformedPacket;
    let q2 = C::Qos2Unsupported;
    let acl = |action, topic: &str| Acl(action, topic.to_owned());
    vec![
        // Before CONNECT.
        before(
            "PUBLISH before CONNECT",
            publish("devices/mallory/messages/events/", QoS::AtLeastOnce),
            Closed(pv, "first packet must be CONNECT, got PUBLISH"),
        ),
        before(
            "SUBSCRIBE before CONNECT",
            subscribe(&["$iothub/methods/POST/#"]),
            Closed(pv, "got SUBSCRIBE"),
        ),
        before(
            "PINGREQ before CONNECT",
            enc(Packet::PingReq),
            Closed(pv, "got PINGREQ"),
        ),
        before(
            "DISCONNECT before CONNECT",
            enc(Packet::Disconnect),
            Closed(pv, "got DISCONNECT"),
        ),
        before(
            "CONNECT with the good device's client id (CN is mallory)",
            enc(Packet::Connect(connect_as(GOOD, Some(&user(GOOD)), 0))),
            Refused(
                Code::NotAuthorized,
                R::ClientIdMismatch,
                "differs from the certificate CN",
            ),
        ),
        before(
            "CONNECT with an empty client id",
            enc(Packet::Connect(connect_as("", Some(&user(MALLORY)), 0))),
            Refused(
                Code::NotAuthorized,
                R::ClientIdMismatch,
                "differs from the certificate CN",
            ),
        ),
        before(
            "CONNECT without a user name",
            enc(Packet::Connect(connect_as(MALLORY, None, 0))),
            Refused(Code::BadUserNamePassword, R::BadUserName, "is not"),
        ),
        before(
            "CONNECT with the good device's user name",
            enc(Packet::Connect(connect_as(MALLORY, Some(&user(GOOD)), 0))),
            Refused(Code::BadUserNamePassword, R::BadUserName, "is not"),
        ),
        before(
            "CONNECT with another hub's user name",
            enc(Packet::Connect(connect_as(
                MALLORY,
                Some("evil.example/mallory/?api-version=2021-04-12"),
                0,
            ))),
            Refused(Code::BadUserNamePassword, R::BadUserName, "is not"),
        ),
        before(
            "CONNECT with a user name without api-version",
            enc(Packet::Connect(connect_as(
                MALLORY,
                Some("localhost/mallory/?x=1"),
                0,
            ))),
            Refused(Code::BadUserNamePassword, R::BadUserName, "no api-version"),
        ),
        // §3.1.2.1 lets a server just close on another protocol name; the
        // hub tells an MQTT 3.1 client what it speaks instead (CONNACK 0x01).
        before(
            "MQTT 3.1 CONNECT (MQIsdp, level 3)",
            level3_connect("MQIsdp"),
            Refused(
                ConnectReturnCode::RefusedProtocolVersion,
                RefuseReason::UnsupportedProtocol,
                "level 3",
            ),
        ),
        before(
            "CONNECT with will QoS but no will flag",
            connect_flags_or(0x18),
            Closed(mal, "Incorrect packet format"),
        ),
        before(
            "CONNECT with a will on the good device's telemetry topic",
            with_will("devices/good/messages/events/"),
            acl("will", "devices/good/messages/events/"),
        ),
        before(
            "CONNECT with a will on the good device's C2D topic",
            with_will("devices/good/messages/devicebound/"),
            acl("will", "devices/good/messages/devicebound/"),
        ),
        before(
            "CONNECT with a will on a method request topic",
            with_will("$iothub/methods/POST/reboot/?$rid=1"),
            acl("will", "$iothub/methods/POST/reboot/?$rid=1"),
        ),
        before(
            "an empty CONNECT (remaining length 0)",
            vec![0x10, 0x00],
            Closed(mal, "Payload required"),
        ),
        before(
            "a remaining length of 5 continuation bytes",
            vec![0x10, 0xff, 0xff, 0xff, 0xff, 0x7f],
            Closed(mal, "Malformed remaining length"),
        ),
        before(
            "a CONNECT announcing 200 MB",
            lying(0x10, 200_000_000, 16),
            Closed(C::PacketTooLarge, "exceeds the limit"),
        ),
        before(
            "a CONNECT announcing 1000 bytes, 10 sent, then quiet",
            lying(0x10, 1000, 10),
            Closed(C::ConnectTimeout, "no CONNECT within"),
        ),
        Case {
            then_close: true,
            ..before(
                "a CONNECT announcing 1000 bytes, 10 sent, then close",
                lying(0x10, 1000, 10),
                Closed(C::PeerClosed, "closed by the client"),
            )
        },
        before(
            "reserved packet type 0 before CONNECT",
            vec![0x00, 0x00],
            Closed(mal, "Invalid packet type: 0"),
        ),
        // After a good CONNECT.
        after(
            "a second CONNECT",
            mallory_connect(0),
            Closed(pv, "a client may not send CONNECT"),
        ),
        after(
            "a QoS 2 PUBLISH",
            publish("devices/mallory/messages/events/", QoS::ExactlyOnce),
            Closed(q2, "QoS 2 publish"),
        ),
        after(
            "PUBREC from the client",
            enc(Packet::PubRec(PubRec::new(1))),
            Closed(q2, "PUBREC"),
        ),
        after(
            "PUBREL from the client",
            enc(Packet::PubRel(PubRel::new(1))),
            Closed(q2, "PUBREL"),
        ),
        after(
            "PUBCOMP from the client",
            enc(Packet::PubComp(PubComp::new(1))),
            Closed(q2, "PUBCOMP"),
        ),
        after(
            "CONNACK from the client",
            enc(Packet::ConnAck(ConnAck::new(
                ConnectReturnCode::Success,
                false,
            ))),
            Closed(pv, "may not send CONNACK"),
        ),
        after(
            "SUBACK from the client",
            enc(Packet::SubAck(SubAck::new(
                1,
                vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)],
            ))),
            Closed(pv, "may not send SUBACK"),
        ),
        after(
            "UNSUBACK from the client",
            enc(Packet::UnsubAck(UnsubAck::new(1))),
            Closed(pv, "may not send UNSUBACK"),
        ),
        after(
            "PINGRESP from the client",
            enc(Packet::PingResp),
            Closed(pv, "may not send PINGRESP"),
        ),
        after(
            "publish on the good device's telemetry topic",
            publish("devices/good/messages/events/", QoS::AtLeastOnce),
            acl("publish", "devices/good/messages/events/"),
        ),
        after(
            "publish on the good device's C2D topic",
            publish("devices/good/messages/devicebound/", QoS::AtMostOnce),
            acl("publish", "devices/good/messages/devicebound/"),
        ),
        after(
            "publish on a wildcard topic",
            publish("devices/+/messages/events/", QoS::AtMostOnce),
            acl("publish", "devices/+/messages/events/"),
        ),
        after(
            "publish a method request",
            publish("$iothub/methods/POST/reboot/?$rid=1", QoS::AtMostOnce),
            acl("publish", "$iothub/methods/POST/reboot/?$rid=1"),
        ),
        after(
            "publish a desired-properties patch",
            publish(
                "$iothub/twin/PATCH/properties/desired/?$version=9",
                QoS::AtMostOnce,
            ),
            acl(
                "publish",
                "$iothub/twin/PATCH/properties/desired/?$version=9",
            ),
        ),
        after(
            "publish a reported patch without $rid",
            publish("$iothub/twin/PATCH/properties/reported/", QoS::AtMostOnce),
            acl("publish", "$iothub/twin/PATCH/properties/reported/"),
        ),
        after(
            "publish a method response with a non-numeric status",
            publish("$iothub/methods/res/ok/?$rid=1", QoS::AtMostOnce),
            acl("publish", "$iothub/methods/res/ok/?$rid=1"),
        ),
        after(
            "subscribe to the good device's C2D filter",
            subscribe(&["devices/good/messages/devicebound/#"]),
            acl("subscribe", "devices/good/messages/devicebound/#"),
        ),
        after("subscribe to '#'", subscribe(&["#"]), acl("subscribe", "#")),
        after(
            "subscribe to '$iothub/#'",
            subscribe(&["$iothub/#"]),
            acl("subscribe", "$iothub/#"),
        ),
        after(
            "subscribe to every device's C2D filter",
            subscribe(&["devices/+/messages/devicebound/#"]),
            acl("subscribe", "devices/+/messages/devicebound/#"),
        ),
        after(
            "subscribe to its own telemetry",
            subscribe(&["devices/mallory/messages/events/#"]),
            acl("subscribe", "devices/mallory/messages/events/#"),
        ),
        after(
            "subscribe to '$SYS/#'",
            subscribe(&["$SYS/#"]),
            acl("subscribe", "$SYS/#"),
        ),
        after(
            "subscribe to its own C2D filter and the good device's",
            subscribe(&[
                "devices/mallory/messages/devicebound/#",
                "devices/good/messages/devicebound/#",
            ]),
            acl("subscribe", "devices/good/messages/devicebound/#"),
        ),
        after(
            "a PUBLISH over the packet size limit by one",
            lying(0x30, 256 * 1024 + 1, 100),
            Closed(C::PacketTooLarge, "exceeds the limit"),
        ),
        after(
            "a PUBLISH announcing 200 MB",
            lying(0x30, 200_000_000, 100),
            Closed(C::PacketTooLarge, "exceeds the limit"),
        ),
        after(
            "a remaining length of 5 continuation bytes after CONNECT",
            vec![0x30, 0x80, 0x80, 0x80, 0x80, 0x01],
            Closed(mal, "Malformed remaining length"),
        ),
        after(
            "a PUBLISH with QoS 3",
            vec![0x36, 0x05, 0x00, 0x01, b't', 0x00, 0x01],
            Closed(mal, "Invalid QoS level: 3"),
        ),
        after(
            "a QoS 1 PUBLISH with packet id 0",
            vec![0x32, 0x05, 0x00, 0x01, b't', 0x00, 0x00],
            Closed(mal, "Packet id Zero"),
        ),
        after(
            "a PUBLISH whose topic is not UTF-8",
            vec![0x30, 0x05, 0x00, 0x02, 0xff, 0xfe, b'x'],
            Closed(mal, ""),
        ),
        after(
            "a SUBSCRIBE with no filters",
            vec![0x82, 0x02, 0x00, 0x01],
            Closed(mal, "atleast one filter"),
        ),
        after(
            "a topic length crossing the packet boundary",
            vec![0x30, 0x04, 0x00, 0x40, b'a', b'b'],
            Closed(mal, "boundary"),
        ),
        after(
            "reserved packet type 15",
            vec![0xf0, 0x00],
            Closed(mal, "Invalid packet type: 15"),
        ),
        Case {
            then_close: true,
            ..after(
                "a PUBLISH announcing 1000 bytes, 10 sent, then close",
                lying(0x30, 1000, 10),
                Closed(C::PeerClosed, "closed by the client"),
            )
        },
        Case {
            connected: Some(1),
            ..after(
                "a PUBLISH announcing 1000 bytes, 10 sent, then quiet (keep-alive 1 s)",
                lying(0x30, 1000, 10),
                Closed(C::KeepAliveTimeout, "keep-alive"),
            )
        },
    ]
}

/// Inputs where MQTT 3.1.1 says exactly what the server must do, and the
/// hub (its codec) does otherwise; kept apart so the battery above stays a
/// regression test while these name the gaps.
fn conformance_cases() -> Vec<Case> {
    use CloseReason as C;
    use ConnectReturnCode as Code;
    use Expect::*;
    use RefuseReason as R;
    let mal = C::MalformedPacket;
    let mut sub_reserved = subscribe(&["devices/mallory/messages/devicebound/#"]);
    sub_reserved[0] = 0x80; // SUBSCRIBE's fixed-header flags must be 0010
    vec![
        // §3.1.2.2: an unsupported protocol level MUST get CONNACK 0x01.
        before(
            "CONNECT at protocol level 3 named MQTT",
            level3_connect("MQTT"),
            Refused(
                Code::RefusedProtocolVersion,
                R::UnsupportedProtocol,
                "level 3",
            ),
        ),
        before(
            "MQTT 5 CONNECT",
            mqtt5_connect(),
            Refused(
                Code::RefusedProtocolVersion,
                R::UnsupportedProtocol,
                "3.1.1",
            ),
        ),
        // §3.1.2.3: the reserved flag MUST be 0, else disconnect.
        before(
            "CONNECT with the reserved flag bit set",
            connect_flags_or(0x01),
            Closed(mal, "reserved"),
        ),
        // §3.8.1: other SUBSCRIBE header flags are malformed: close.
        after(
            "SUBSCRIBE with reserved header flags 0000",
            sub_reserved,
            Closed(mal, ""),
        ),
    ]
}

/// Reads one MQTT packet off `s`, within the guard.
async fn read_packet(s: &mut TlsStream<TcpStream>, buf: &mut BytesMut) -> Option<Packet> {
    use tokio::io::AsyncReadExt;
    loop {
        if let Ok(p) = Packet::read(buf, usize::MAX) {
            return Some(p);
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(GUARD, s.read(&mut chunk))
            .await
            .expect("a packet within the guard")
            .unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn run_case(bench: &Bench, case: &Case) {
    let hub = &bench.hub;
    let what = case.name;
    let mark = hub.journal().len();
    let (peer, tls): (SocketAddr, _) = tls_connect(
        hub,
        hub.mqtt_addr(),
        client_config(hub, Some(&bench.mallory)),
    )
    .await;
    let mut tls = tls.expect("mallory's handshake");
    let mut buf = BytesMut::new();
    if let Some(keep_alive) = case.connected {
        tls.write_all(&mallory_connect(keep_alive)).await.unwrap();
        match read_packet(&mut tls, &mut buf).await {
            Some(Packet::ConnAck(a)) if a.code == ConnectReturnCode::Success => {}
            other => panic!("{what}: mallory's own CONNECT: {other:?}"),
        }
    }
    // The hub may close before all is written (an oversize announcement).
    let _ = tls.write_all(&case.bytes).await;
    if case.then_close {
        let _ = tls.shutdown().await;
    }
    let (rest, closed) = read_until_closed_or_guard(&mut tls).await;
    buf.extend_from_slice(&rest);
    let mut answered = Vec::new();
    while let Ok(p) = Packet::read(&mut buf, usize::MAX) {
        answered.push(p);
    }
    assert!(
        closed,
        "{what}: the hub did not close the connection; it answered {answered:?}; journal of the connection:\n{}",
        entries_of(hub, mark, peer)
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let closed = expect_peer(hub, mark, peer, what, |e| {
        matches!(e, Event::SessionClosed { .. })
    })
    .await;
    let Event::SessionClosed { reason, detail } = &closed.event else {
        unreachable!()
    };
    match &case.expect {
        Expect::Closed(want, has) => {
            assert_eq!(answered, vec![], "{what}: the hub answered");
            assert_eq!(reason, want, "{what}: detail {detail:?}");
            assert!(detail.contains(has), "{what}: detail {detail:?}");
        }
        Expect::Refused(code, want, has) => {
            assert_eq!(
                answered,
                vec![Packet::ConnAck(ConnAck::new(*code, false))],
                "{what}: the answer (session closed: {reason:?} {detail:?})"
            );
            assert_eq!(*reason, CloseReason::ConnectRefused, "{what}");
            let refused = expect_peer(hub, mark, peer, what, |e| {
                matches!(e, Event::ConnectRefused { .. })
            })
            .await;
            let Event::ConnectRefused { reason, detail, .. } = &refused.event else {
                unreachable!()
            };
            assert_eq!(reason, want, "{what}: {detail:?}");
            assert!(detail.contains(has), "{what}: detail {detail:?}");
        }
        Expect::Acl(action, topic) => {
            assert_eq!(answered, vec![], "{what}: the hub answered");
            assert_eq!(*reason, CloseReason::AclViolation, "{what}: {detail:?}");
            let violation = entries_of(hub, mark, peer)
                .into_iter()
                .find(|e| matches!(e.event, Event::AclViolation { .. }))
                .unwrap_or_else(|| panic!("{what}: no acl_violation entry"));
            assert_eq!(
                violation.event,
                Event::AclViolation {
                    action: action.to_string(),
                    topic: topic.clone()
                },
                "{what}"
            );
        }
    }
    let connected = entries_of(hub, mark, peer)
        .into_iter()
        .any(|e| matches!(e.event, Event::Connected { .. }));
    assert_eq!(connected, case.connected.is_some(), "{what}: connected?");
    bench.still_served(what).await;
}

/// Runs every input on one hub (each in a task that catches its panic, so
/// one report names every failing input), then checks RSS.
async fn run_battery(cases: Vec<Case>, what: &str) {
    let bench = std::sync::Arc::new(Bench::start(|c| c.connect_timeout = CONNECT_TIMEOUT).await);
    let mut failed = Vec::new();
    for case in cases {
        let b = bench.clone();
        let name = case.name;
        if let Err(e) = tokio::spawn(async move { run_case(&b, &case).await }).await {
            failed.push(format!("{name}: {}", panic_text(e)));
        }
    }
    assert!(failed.is_empty(), "failing inputs:\n{}", failed.join("\n"));
    bench.assert_rss_bounded(&format!("after {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_inputs_end_only_their_own_session_with_the_precise_reason() {
    let cases = cases();
    assert!(cases.len() >= 50, "{} inputs", cases.len());
    run_battery(cases, "the MQTT battery").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_subscribe_framing_follow_mqtt_3_1_1() {
    run_battery(conformance_cases(), "the MQTT 3.1.1 conformance inputs").await;
}

fn panic_text(e: tokio::task::JoinError) -> String {
    let p = e.into_panic();
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}
