//! Unit tests of the session logic, without sockets: a fake hub behind
//! [`HubPort`] and MQTT packets encoded with the same codec a client uses.

use super::*;
use crate::store::{InFlightC2d, StoredSession, Twin};
use rumqttc::mqttbytes::v4::{Connect, Login, Subscribe, SubscribeFilter};

#[derive(Default)]
struct FakeHub {
    status: Option<DeviceStatus>,
    revoked: bool,
    queue: Vec<QueuedMessage>,
    completed: Vec<i64>,
    reported: serde_json::Value,
    reported_version: i64,
    method_results: Vec<(String, u16, Bytes)>,
    events: Vec<Event>,
    /// The certificate is revoked between the CONNECT's checks and go-live.
    revoked_at_go_live: bool,
    live_calls: usize,
    /// The device's stored persistent session.
    stored: Option<StoredSession>,
    /// Another connection took over: saves are refused (as the hub's live check does).
    evicted: bool,
    /// The next PUBACK is lost (the CD-22 switch).
    lose_puback: bool,
}

impl FakeHub {
    fn enabled() -> Self {
        Self {
            status: Some(DeviceStatus::Enabled),
            reported: serde_json::json!({}),
            ..Default::default()
        }
    }
    fn push(&mut self, seq: i64) {
        self.queue.push(QueuedMessage {
            seq,
            device_id: "dev-1".into(),
            message_id: format!("m{seq}"),
            payload: format!("cmd {seq}").into_bytes(),
            properties: vec![("k".into(), "v".into())],
            enqueued_ms: 0,
            expires_ms: 3_600_000,
            delivery_count: 0,
        });
    }
}

impl HubPort for FakeHub {
    fn device_status(&mut self, _: &str) -> Option<DeviceStatus> {
        self.status
    }
    fn serial_revoked(&mut self, _: &Serial) -> bool {
        self.revoked
    }
    fn go_live(&mut self, _: &str, _: &Serial) -> bool {
        self.live_calls += 1;
        !self.revoked_at_go_live
    }
    fn load_session(&mut self, _: &str) -> Option<StoredSession> {
        self.stored.clone()
    }
    fn save_session(&mut self, _: &str, session: &StoredSession) {
        if !self.evicted {
            self.stored = Some(session.clone());
        }
    }
    fn drop_session(&mut self, _: &str) {
        self.stored = None;
    }
    fn take_redelivery(&mut self, _: &str, seq: i64) -> Option<QueuedMessage> {
        let m = self.queue.iter_mut().find(|m| m.seq == seq)?;
        m.delivery_count += 1;
        Some(m.clone())
    }
    fn take_c2d(&mut self, _: &str, in_flight: &[i64], limit: usize) -> Vec<QueuedMessage> {
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
    fn complete_c2d(&mut self, _: &str, seq: i64) {
        self.queue.retain(|m| m.seq != seq);
        self.completed.push(seq);
    }
    fn twin(&mut self, _: &str) -> Option<Twin> {
        Some(Twin {
            desired: serde_json::json!({"telemetryIntervalSeconds": 5}),
            desired_version: 3,
            reported: self.reported.clone(),
            reported_version: self.reported_version,
        })
    }
    fn patch_reported(&mut self, _: &str, patch: &serde_json::Value) -> Result<i64, (u16, String)> {
        if !patch.is_object() {
            return Err((400, "not an object".into()));
        }
        self.reported = patch.clone();
        self.reported_version += 1;
        Ok(self.reported_version)
    }
    fn method_result(&mut self, _: &str, rid: &str, status: u16, payload: Bytes) {
        self.method_results.push((rid.into(), status, payload));
    }
    fn journal(&mut self, _: &str, event: Event) {
        self.events.push(event);
    }
    fn take_lost_puback(&mut self, _: &str) -> bool {
        std::mem::take(&mut self.lose_puback)
    }
}

fn session() -> Session {
    Session::new(
        SessionConfig {
            hub_host: "hub.test".into(),
            max_packet_size: 1024,
            c2d_window: 2,
        },
        ClientIdentity {
            device_id: "dev-1".into(),
            serial: Serial::parse("01ab").unwrap(),
        },
    )
}

fn bytes(p: Packet) -> Vec<u8> {
    let mut b = BytesMut::new();
    p.write(&mut b, usize::MAX).unwrap();
    b.to_vec()
}

fn connect(client_id: &str, user: &str) -> Vec<u8> {
    let mut c = Connect::new(client_id);
    c.keep_alive = 30;
    c.login = Some(Login::new(user, ""));
    bytes(Packet::Connect(c))
}

fn good_connect() -> Vec<u8> {
    connect("dev-1", "hub.test/dev-1/?api-version=2021-04-12")
}

/// Decodes everything the session wants to send.
fn sent(s: &mut Session) -> Vec<Packet> {
    let mut buf = BytesMut::from(&s.take_output().unwrap_or_default()[..]);
    let mut out = Vec::new();
    while !buf.is_empty() {
        out.push(Packet::read(&mut buf, usize::MAX).unwrap());
    }
    out
}

fn subscribe(filters: &[&str]) -> Vec<u8> {
    let filters = filters
        .iter()
        .map(|f| SubscribeFilter::new(f.to_string(), QoS::AtLeastOnce))
        .collect();
    bytes(Packet::Subscribe(Subscribe { pkid: 7, filters }))
}

fn connected(hub: &mut FakeHub) -> Session {
    let mut s = session();
    s.receive(hub, &good_connect()).unwrap();
    assert_eq!(
        sent(&mut s),
        vec![Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Success,
            false
        ))]
    );
    s
}

#[test]
fn connect_is_accepted_and_keep_alive_sets_idle_timeout() {
    let mut hub = FakeHub::enabled();
    let s = connected(&mut hub);
    assert!(s.is_connected());
    assert_eq!(s.idle_timeout(), Some(Duration::from_secs(45)));
    assert!(matches!(hub.events[0], Event::Connected { .. }));
    assert_eq!(hub.live_calls, 1, "live before it is journalled connected");
}

/// The MT-12 race: a revocation between the CONNECT's checks and the
/// session going live is refused as a revocation — never journalled as
/// connected, never a live session the revocation could not reach.
#[test]
fn a_revocation_during_the_connect_refuses_it_and_nothing_is_connected() {
    let mut hub = FakeHub {
        revoked_at_go_live: true,
        ..FakeHub::enabled()
    };
    let mut s = session();
    let end = s.receive(&mut hub, &good_connect()).unwrap_err();
    assert_eq!(end.reason, CloseReason::ConnectRefused);
    assert!(!s.is_connected());
    assert!(!hub
        .events
        .iter()
        .any(|e| matches!(e, Event::Connected { .. })));
    assert!(hub.events.iter().any(|e| matches!(
        e,
        Event::ConnectRefused {
            reason: RefuseReason::CertificateRevoked,
            ..
        }
    )));
}

#[test]
fn connect_refusals_name_their_reason() {
    let cases: Vec<(Vec<u8>, FakeHub, ConnectReturnCode, RefuseReason)> = vec![
        (
            connect("dev-2", "hub.test/dev-2/?api-version=1"),
            FakeHub::enabled(),
            ConnectReturnCode::NotAuthorized,
            RefuseReason::ClientIdMismatch,
        ),
        (
            connect("dev-1", "other/dev-1/?api-version=1"),
            FakeHub::enabled(),
            ConnectReturnCode::BadUserNamePassword,
            RefuseReason::BadUserName,
        ),
        (
            good_connect(),
            FakeHub::default(),
            ConnectReturnCode::NotAuthorized,
            RefuseReason::UnknownDevice,
        ),
        (
            good_connect(),
            FakeHub {
                status: Some(DeviceStatus::Disabled),
                ..FakeHub::enabled()
            },
            ConnectReturnCode::NotAuthorized,
            RefuseReason::DeviceDisabled,
        ),
        (
            good_connect(),
            FakeHub {
                revoked: true,
                ..FakeHub::enabled()
            },
            ConnectReturnCode::NotAuthorized,
            RefuseReason::CertificateRevoked,
        ),
    ];
    for (packet, mut hub, code, reason) in cases {
        let mut s = session();
        let end = s.receive(&mut hub, &packet).unwrap_err();
        assert_eq!(end.reason, CloseReason::ConnectRefused);
        assert_eq!(
            sent(&mut s),
            vec![Packet::ConnAck(ConnAck::new(code, false))]
        );
        assert!(
            matches!(&hub.events[0], Event::ConnectRefused { reason: r, .. } if *r == reason),
            "{:?}",
            hub.events
        );
        assert!(!s.is_connected());
    }
}

#[test]
fn first_packet_must_be_connect() {
    let mut hub = FakeHub::enabled();
    let mut s = session();
    let end = s.receive(&mut hub, &bytes(Packet::PingReq)).unwrap_err();
    assert_eq!(end.reason, CloseReason::ProtocolViolation);
}

#[test]
fn packets_split_across_reads_are_reassembled() {
    let mut hub = FakeHub::enabled();
    let mut s = session();
    let c = good_connect();
    for b in &c {
        s.receive(&mut hub, std::slice::from_ref(b)).unwrap();
    }
    assert!(s.is_connected());
}

#[test]
fn malformed_and_oversize_packets_end_the_session() {
    let mut hub = FakeHub::enabled();
    let mut s = connected(&mut hub);
    // PUBLISH with remaining length 2000 > limit 1024: refused from the header alone.
    let end = s.receive(&mut hub, &[0x30, 0xd0, 0x0f]).unwrap_err();
    assert_eq!(end.reason, CloseReason::PacketTooLarge);
    let mut s = connected(&mut hub);
    // Packet type 0 is reserved.
    let end = s.receive(&mut hub, &[0x00, 0x00]).unwrap_err();
    assert_eq!(end.reason, CloseReason::MalformedPacket);
    let mut s = session();
    let end = s
        .receive(&mut hub, &[0x10, 0x03, 0x00, 0x04, b'M'])
        .unwrap_err();
    assert_eq!(end.reason, CloseReason::MalformedPacket);
}

#[test]
fn telemetry_is_journalled_and_acked_at_qos1() {
    let mut hub = FakeHub::enabled();
    let mut s = connected(&mut hub);
    let mut p = Publish::new(
        "devices/dev-1/messages/events/a=1",
        QoS::AtLeastOnce,
        "21.5",
    );
    p.pkid = 9;
    s.receive(&mut hub, &bytes(Packet::Publish(p))).unwrap();
    assert_eq!(sent(&mut s), vec![Packet::PubAck(PubAck::new(9))]);
    assert!(
        matches!(&hub.events[1], Event::Telemetry { payload, properties, .. } if payload == "21.5" && properties[0].0 == "a")
    );
}

#[test]
fn qos2_publish_closes() {
    let mut hub = FakeHub::enabled();
    let mut s = connected(&mut hub);
    let mut p = Publish::new("devices/dev-1/messages/events/", QoS::ExactlyOnce, "x");
    p.pkid = 1;
    let end = s.receive(&mut hub, &bytes(Packet::Publish(p))).unwrap_err();
    assert_eq!(end.reason, CloseReason::Qos2Unsupported);
}

#[test]
fn other_devices_topics_close_the_session() {
    for (action, packet) in [
        (
            "publish",
            bytes(Packet::Publish(Publish::new(
                "devices/dev-2/messages/events/",
                QoS::AtMostOnce,
                "x",
            ))),
        ),
        (
            "subscribe",
            subscribe(&["devices/dev-2/messages/devicebound/#"]),
        ),
        ("subscribe", subscribe(&["#"])),
    ] {
        let mut hub = FakeHub::enabled();
        let mut s = connected(&mut hub);
        let end = s.receive(&mut hub, &packet).unwrap_err();
        assert_eq!(end.reason, CloseReason::AclViolation, "{action}");
        assert!(matches!(&hub.events[1], Event::AclViolation { action: a, .. } if a == action));
    }
}

#[test]
fn c2d_is_delivered_on_subscribe_in_order_within_the_window_and_completed_by_puback() {
    let mut hub = FakeHub::enabled();
    for seq in 1..=3 {
        hub.push(seq);
    }
    let mut s = connected(&mut hub);
    s.receive(
        &mut hub,
        &subscribe(&["devices/dev-1/messages/devicebound/#"]),
    )
    .unwrap();
    let out = sent(&mut s);
    assert!(
        matches!(&out[0], Packet::SubAck(a) if a.return_codes == vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)])
    );
    let pubs: Vec<&Publish> = out
        .iter()
        .filter_map(|p| {
            if let Packet::Publish(p) = p {
                Some(p)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(pubs.len(), 2, "window is 2");
    assert_eq!(pubs[0].payload, Bytes::from("cmd 1"));
    assert_eq!(pubs[1].payload, Bytes::from("cmd 2"));
    assert_eq!(pubs[0].qos, QoS::AtLeastOnce);
    let bag = topics::parse_property_bag(
        pubs[0]
            .topic
            .strip_prefix("devices/dev-1/messages/devicebound/")
            .unwrap(),
    );
    assert!(bag.contains(&("$.mid".into(), "m1".into())));
    assert!(bag.contains(&("k".into(), "v".into())));
    assert!(bag
        .iter()
        .any(|(k, v)| k == "$.exp" && v.starts_with("1970-01-01T01:00:00")));
    let first = pubs[0].pkid;
    s.receive(&mut hub, &bytes(Packet::PubAck(PubAck::new(first))))
        .unwrap();
    assert_eq!(hub.completed, vec![1]);
    let out = sent(&mut s);
    assert!(matches!(&out[..], [Packet::Publish(p)] if p.payload == "cmd 3"));
    // A duplicate PUBACK for a packet id no longer in flight is ignored.
    s.receive(&mut hub, &bytes(Packet::PubAck(PubAck::new(first))))
        .unwrap();
    assert_eq!(hub.completed, vec![1]);
}

/// A session subscribed to commands, and the packet id of the first one
/// delivered.
fn subscribed_and_delivered(hub: &mut FakeHub) -> (Session, u16) {
    let mut s = connected(hub);
    s.receive(hub, &subscribe(&["devices/dev-1/messages/devicebound/#"]))
        .unwrap();
    let pid = sent(&mut s)
        .iter()
        .find_map(|p| match p {
            Packet::Publish(p) => Some(p.pkid),
            _ => None,
        })
        .unwrap();
    (s, pid)
}

#[test]
fn a_lost_puback_leaves_the_command_uncompleted_and_resets_the_connection() {
    let mut hub = FakeHub::enabled();
    hub.push(1);
    let (mut s, pid) = subscribed_and_delivered(&mut hub);
    hub.lose_puback = true;
    let end = s
        .receive(&mut hub, &bytes(Packet::PubAck(PubAck::new(pid))))
        .unwrap_err();
    assert_eq!(end.reason, CloseReason::HubReset);
    assert!(
        end.detail.contains("lost the PUBACK of m1"),
        "{}",
        end.detail
    );
    assert!(hub.completed.is_empty(), "the command stays in the queue");
    assert!(hub.events.iter().any(|e| matches!(
        e,
        Event::PubackLost { message_seq: 1, message_id, packet_id } if message_id == "m1" && *packet_id == pid
    )));
    // Armed once: the next session's PUBACK completes it.
    let (mut s, pid) = subscribed_and_delivered(&mut hub);
    s.receive(&mut hub, &bytes(Packet::PubAck(PubAck::new(pid))))
        .unwrap();
    assert_eq!(hub.completed, vec![1]);
}

#[test]
fn redelivery_sets_dup() {
    let mut hub = FakeHub::enabled();
    hub.push(1);
    hub.queue[0].delivery_count = 1;
    let mut s = connected(&mut hub);
    s.receive(
        &mut hub,
        &subscribe(&["devices/dev-1/messages/devicebound/#"]),
    )
    .unwrap();
    let out = sent(&mut s);
    assert!(matches!(&out[1], Packet::Publish(p) if p.dup));
}

#[test]
fn no_c2d_without_subscription() {
    let mut hub = FakeHub::enabled();
    hub.push(1);
    let mut s = connected(&mut hub);
    s.deliver_c2d(&mut hub);
    assert!(sent(&mut s).is_empty());
}

#[test]
fn twin_get_and_reported_patch() {
    let mut hub = FakeHub::enabled();
    let mut s = connected(&mut hub);
    s.receive(
        &mut hub,
        &bytes(Packet::Publish(Publish::new(
            "$iothub/twin/GET/?$rid=1",
            QoS::AtMostOnce,
            "",
        ))),
    )
    .unwrap();
    let out = sent(&mut s);
    let Packet::Publish(res) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(res.topic, "$iothub/twin/res/200/?$rid=1");
    let body: serde_json::Value = serde_json::from_slice(&res.payload).unwrap();
    assert_eq!(body["desired"]["$version"], 3);
    assert_eq!(body["desired"]["telemetryIntervalSeconds"], 5);
    let patch = Publish::new(
        "$iothub/twin/PATCH/properties/reported/?$rid=2",
        QoS::AtMostOnce,
        r#"{"firmware":{"state":"idle"}}"#,
    );
    s.receive(&mut hub, &bytes(Packet::Publish(patch))).unwrap();
    let out = sent(&mut s);
    assert!(
        matches!(&out[0], Packet::Publish(p) if p.topic == "$iothub/twin/res/204/?$rid=2&$version=1")
    );
    let bad = Publish::new(
        "$iothub/twin/PATCH/properties/reported/?$rid=3",
        QoS::AtMostOnce,
        "not json",
    );
    s.receive(&mut hub, &bytes(Packet::Publish(bad))).unwrap();
    let out = sent(&mut s);
    assert!(matches!(&out[0], Packet::Publish(p) if p.topic == "$iothub/twin/res/400/?$rid=3"));
}

#[test]
fn methods_need_a_subscription_and_responses_reach_the_hub() {
    let mut hub = FakeHub::enabled();
    let mut s = connected(&mut hub);
    assert!(!s.send_method("reboot", "1", b"{}".to_vec()));
    s.receive(&mut hub, &subscribe(&["$iothub/methods/POST/#"]))
        .unwrap();
    sent(&mut s);
    assert!(s.send_method("reboot", "1", b"{}".to_vec()));
    let out = sent(&mut s);
    assert!(
        matches!(&out[0], Packet::Publish(p) if p.topic == "$iothub/methods/POST/reboot/?$rid=1")
    );
    let res = Publish::new("$iothub/methods/res/202/?$rid=1", QoS::AtMostOnce, "{}");
    s.receive(&mut hub, &bytes(Packet::Publish(res))).unwrap();
    assert_eq!(
        hub.method_results,
        vec![("1".to_string(), 202, Bytes::from("{}"))]
    );
}

#[test]
fn desired_notifications_carry_the_version() {
    let mut hub = FakeHub::enabled();
    let mut s = connected(&mut hub);
    assert!(!s.send_desired(4, &serde_json::json!({"a": 1})));
    s.receive(
        &mut hub,
        &subscribe(&[
            "$iothub/twin/PATCH/properties/desired/#",
            "$iothub/twin/res/#",
        ]),
    )
    .unwrap();
    sent(&mut s);
    assert!(s.send_desired(4, &serde_json::json!({"a": 1})));
    let out = sent(&mut s);
    let Packet::Publish(p) = &out[0] else {
        panic!()
    };
    assert_eq!(p.topic, "$iothub/twin/PATCH/properties/desired/?$version=4");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&p.payload).unwrap(),
        serde_json::json!({"a": 1, "$version": 4})
    );
}

#[test]
fn qos2_subscription_is_granted_qos1_and_ping_is_answered() {
    let mut hub = FakeHub::enabled();
    let mut s = connected(&mut hub);
    let sub = Subscribe {
        pkid: 3,
        filters: vec![SubscribeFilter::new(
            "$iothub/twin/res/#".into(),
            QoS::ExactlyOnce,
        )],
    };
    s.receive(&mut hub, &bytes(Packet::Subscribe(sub))).unwrap();
    s.receive(&mut hub, &bytes(Packet::PingReq)).unwrap();
    let out = sent(&mut s);
    assert!(
        matches!(&out[0], Packet::SubAck(a) if a.return_codes == vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)])
    );
    assert_eq!(out[1], Packet::PingResp);
    let end = s.receive(&mut hub, &bytes(Packet::Disconnect)).unwrap_err();
    assert_eq!(end.reason, CloseReason::ClientDisconnect);
}

fn connect_persistent() -> Vec<u8> {
    let mut c = Connect::new("dev-1");
    c.keep_alive = 30;
    c.clean_session = false;
    c.login = Some(Login::new("hub.test/dev-1/?api-version=2021-04-12", ""));
    bytes(Packet::Connect(c))
}

fn connack_present(packets: &[Packet]) -> bool {
    match packets.first() {
        Some(Packet::ConnAck(a)) if a.code == ConnectReturnCode::Success => a.session_present,
        other => panic!("expected a successful CONNACK first, got {other:?}"),
    }
}

fn publishes(packets: &[Packet]) -> Vec<(u16, bool, String)> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((p.pkid, p.dup, String::from_utf8_lossy(&p.payload).into())),
            _ => None,
        })
        .collect()
}

/// What SDK-built devices rely on: CleanSession=0 keeps subscriptions and
/// unacknowledged C2D across connections, so a device that does not
/// subscribe again still gets its commands, method calls and — only for what
/// it subscribed — desired patches.
#[test]
fn a_persistent_session_keeps_subscriptions_and_unacked_c2d_across_connections() {
    let mut hub = FakeHub::enabled();
    hub.push(1);
    hub.push(2);
    hub.push(3);
    let mut s = session();
    s.receive(&mut hub, &connect_persistent()).unwrap();
    assert!(!connack_present(&sent(&mut s)), "no session stored yet");
    assert_eq!(
        hub.stored,
        Some(StoredSession::default()),
        "a session starts"
    );
    let filters = [
        "devices/dev-1/messages/devicebound/#",
        "$iothub/methods/POST/#",
    ];
    s.receive(&mut hub, &subscribe(&filters)).unwrap();
    let first = publishes(&sent(&mut s));
    assert_eq!(first.len(), 2, "the C2D window is 2: {first:?}");
    let stored = hub.stored.clone().unwrap();
    assert_eq!(
        stored.subscriptions,
        [Subscription::CloudToDevice, Subscription::Methods]
    );
    let flying: Vec<(u16, i64)> = stored
        .in_flight
        .iter()
        .map(|f| (f.packet_id, f.seq))
        .collect();
    assert_eq!(flying, [(first[0].0, 1), (first[1].0, 2)]);
    drop(s); // the link drops: no DISCONNECT, no PUBACK

    let mut s = session();
    s.receive(&mut hub, &connect_persistent()).unwrap();
    let out = sent(&mut s);
    assert!(connack_present(&out));
    // Sent again with their packet ids and DUP, before anything new.
    let again = publishes(&out);
    assert_eq!(
        again,
        [
            (first[0].0, true, "cmd 1".into()),
            (first[1].0, true, "cmd 2".into())
        ]
    );
    assert!(hub.events.iter().any(|e| matches!(
        e,
        Event::SessionResumed { subscriptions, in_flight: 2 } if subscriptions.len() == 2
    )));
    // No SUBSCRIBE on this connection, yet methods reach the device...
    assert!(s.send_method("reboot", "9", b"{}".to_vec()));
    // ...and only what it subscribed: no desired patches.
    assert!(!s.send_desired(4, &serde_json::json!({"a": 1})));
    sent(&mut s);
    // An ack frees the window: the third command follows, and the store knows.
    s.receive(&mut hub, &bytes(Packet::PubAck(PubAck::new(first[0].0))))
        .unwrap();
    assert_eq!(hub.completed, [1]);
    let next = publishes(&sent(&mut s));
    assert_eq!(next.len(), 1);
    assert_eq!((next[0].1, next[0].2.as_str()), (false, "cmd 3"));
    let seqs: Vec<i64> = hub
        .stored
        .as_ref()
        .unwrap()
        .in_flight
        .iter()
        .map(|f| f.seq)
        .collect();
    assert_eq!(seqs, [2, 3]);
}

#[test]
fn a_clean_session_discards_the_stored_one_and_keeps_none() {
    let mut hub = FakeHub::enabled();
    hub.stored = Some(StoredSession {
        subscriptions: vec![Subscription::Methods],
        in_flight: vec![],
    });
    let mut s = connected(&mut hub); // CleanSession=1: CONNACK session-present 0
    assert_eq!(hub.stored, None);
    assert!(
        !s.send_method("reboot", "1", Vec::new()),
        "subscriptions gone"
    );
    s.receive(&mut hub, &subscribe(&["$iothub/methods/POST/#"]))
        .unwrap();
    assert!(s.send_method("reboot", "2", Vec::new()));
    assert_eq!(hub.stored, None, "a clean session is not stored");
    assert!(!hub
        .events
        .iter()
        .any(|e| matches!(e, Event::SessionResumed { .. })));
}

#[test]
fn an_evicted_connection_does_not_overwrite_its_successors_session() {
    let mut hub = FakeHub::enabled();
    let mut s = session();
    s.receive(&mut hub, &connect_persistent()).unwrap();
    hub.evicted = true;
    s.receive(&mut hub, &subscribe(&["$iothub/methods/POST/#"]))
        .unwrap();
    assert_eq!(hub.stored, Some(StoredSession::default()));
}

#[test]
fn a_resumed_delivery_whose_message_left_the_queue_is_not_sent_again() {
    let mut hub = FakeHub::enabled();
    hub.stored = Some(StoredSession {
        subscriptions: vec![Subscription::CloudToDevice],
        in_flight: vec![InFlightC2d {
            packet_id: 5,
            seq: 77,
        }],
    });
    hub.push(1);
    let mut s = session();
    s.receive(&mut hub, &connect_persistent()).unwrap();
    let out = sent(&mut s);
    assert!(connack_present(&out));
    let p = publishes(&out);
    assert_eq!(p.len(), 1, "only the queued message: {p:?}");
    assert_eq!((p[0].1, p[0].2.as_str()), (false, "cmd 1"));
    let stored = hub.stored.unwrap();
    assert_eq!(
        stored.in_flight.iter().map(|f| f.seq).collect::<Vec<_>>(),
        [1]
    );
}
