//! Cloud-to-device commands: apply once per `$.mid`, persist before PUBACK,
//! survive power cuts; the three session faults; the applied-ids record.

use super::*;

/// A C2D PUBLISH as the hub builds it: `$.mid`, `$.to`, `$.exp`, then the
/// user properties, URL-encoded; QoS 1 with `packet_id`.
fn c2d(mid: &str, packet_id: u16, dup: bool, payload: &[u8]) -> Vec<u8> {
    let mut bag = form_urlencoded::Serializer::new(String::new());
    bag.append_pair("$.mid", mid)
        .append_pair("$.to", "/devices/dev-1/messages/deviceBound")
        .append_pair("$.exp", "2026-11-25T18:00:00.000Z")
        .append_pair("color", "dark red")
        .append_pair("k&=", "v/?");
    let topic = format!("devices/dev-1/messages/devicebound/{}", bag.finish());
    publish(&topic, Some(packet_id), dup, payload)
}

fn command_mid(o: &Out) -> Option<&str> {
    match o {
        Out::Event(SessionEvent::Command(c)) => Some(&c.mid),
        _ => None,
    }
}

fn faulty(fault: Fault) -> FaultSet {
    FaultSet::NONE.with(fault)
}

#[test]
fn command_is_surfaced_then_persisted_then_acked() {
    let mut s = ready();
    s.receive(2, &c2d("m-1", 7, false, b"set 1"));
    assert_eq!(
        outs(&mut s),
        [Out::Event(SessionEvent::Command(Command {
            mid: "m-1".into(),
            expiry: Some("2026-11-25T18:00:00.000Z".into()),
            properties: vec![
                ("color".into(), "dark red".into()),
                ("k&=".into(), "v/?".into())
            ],
            system_properties: vec![
                ("$.mid".into(), "m-1".into()),
                ("$.to".into(), "/devices/dev-1/messages/deviceBound".into()),
                ("$.exp".into(), "2026-11-25T18:00:00.000Z".into()),
            ],
            payload: b"set 1".to_vec(),
            redelivered: false,
        }))],
        "no PUBACK before the app applied it"
    );
    assert_eq!(s.pending_commands(), ["m-1"]);
    assert_eq!(s.command_applied("m-2"), Err(SessionError::UnknownCommand));
    s.command_applied("m-1").unwrap();
    let o = outs(&mut s);
    let [Out::Persist(bytes), Out::Puback(7)] = &o[..] else {
        panic!("persist, then PUBACK: {o:?}")
    };
    let persisted = AppliedIds::decode(bytes).unwrap();
    assert!(persisted.contains("m-1"));
    assert_eq!(&persisted, s.applied());
    assert!(s.pending_commands().is_empty());
    assert_eq!(s.command_applied("m-1"), Err(SessionError::UnknownCommand));
}

#[test]
fn redelivered_applied_command_is_acked_not_surfaced() {
    let mut s = ready();
    s.receive(2, &c2d("m-1", 7, false, b"x"));
    s.command_applied("m-1").unwrap();
    outs(&mut s);
    // DUP (the hub's redelivery), and without DUP (a hub that forgot to set it).
    s.receive(3, &c2d("m-1", 8, true, b"x"));
    s.receive(3, &c2d("m-1", 9, false, b"x"));
    assert_eq!(outs(&mut s), [Out::Puback(8), Out::Puback(9)]);
    assert!(s.pending_commands().is_empty());
}

#[test]
fn commands_are_surfaced_in_order_and_a_duplicate_in_flight_once() {
    let mut s = ready();
    let mut stream = c2d("m-1", 1, false, b"1");
    stream.extend(c2d("m-2", 2, false, b"2"));
    stream.extend(c2d("m-1", 3, true, b"1"));
    s.receive(2, &stream);
    let o = outs(&mut s);
    assert_eq!(
        o.iter().filter_map(command_mid).collect::<Vec<_>>(),
        ["m-1", "m-2"]
    );
    assert_eq!(o.len(), 2, "nothing acked yet: {o:?}");
    s.command_applied("m-1").unwrap();
    let o = outs(&mut s);
    assert!(
        matches!(&o[..], [Out::Persist(_), Out::Puback(1), Out::Puback(3)]),
        "{o:?}"
    );
}

#[test]
fn power_cut_between_apply_and_puback_does_not_apply_twice() {
    // Session 1: the command arrives, the app applies it, the id is
    // persisted, and the power goes before the PUBACK leaves.
    let mut s = ready();
    s.receive(2, &c2d("m-1", 7, false, b"x"));
    outs(&mut s);
    s.command_applied("m-1").unwrap();
    let mut flash = None;
    for action in s.take_actions() {
        match action {
            Action::PersistApplied(bytes) => flash = Some(bytes),
            // Power cut: nothing after the persist is carried out.
            Action::Send(_) => break,
            other => panic!("{other:?}"),
        }
    }
    drop(s);
    // Boot: the session is rebuilt from flash; the hub redelivers.
    let applied = AppliedIds::decode(&flash.expect("persisted before the PUBACK")).unwrap();
    let mut s = ready_with(config(), FaultSet::NONE, true, applied);
    s.receive(2, &c2d("m-1", 1, true, b"x"));
    assert_eq!(outs(&mut s), [Out::Puback(1)], "acked, not applied again");
}

#[test]
fn power_cut_before_apply_redelivers_and_applies() {
    // No PUBACK and nothing persisted: the command comes back and is applied.
    let mut s = ready();
    s.receive(2, &c2d("m-1", 7, false, b"x"));
    assert!(!outs(&mut s).contains(&Out::Puback(7)));
    drop(s);
    let mut s = ready_with(config(), FaultSet::NONE, true, AppliedIds::new());
    s.receive(2, &c2d("m-1", 1, true, b"x"));
    let o = outs(&mut s);
    assert!(
        matches!(&o[..], [Out::Event(SessionEvent::Command(c))] if c.mid == "m-1" && c.redelivered)
    );
}

#[test]
fn applied_after_the_link_dropped_is_persisted_without_puback() {
    let mut s = ready();
    s.receive(2, &c2d("m-1", 7, false, b"x"));
    s.receive(3, &[0x00, 0x00]); // the link breaks (garbage), the session closes
    outs(&mut s);
    assert!(s.is_closed());
    s.command_applied("m-1").unwrap();
    let o = outs(&mut s);
    assert!(matches!(&o[..], [Out::Persist(_)]), "{o:?}");
    // The next session knows it and only acks the redelivery.
    let mut next = ready_with(config(), FaultSet::NONE, false, s.applied().clone());
    next.receive(2, &c2d("m-1", 1, true, b"x"));
    assert_eq!(outs(&mut next), [Out::Puback(1)]);
}

#[test]
fn command_without_mid_closes() {
    let mut s = ready();
    s.receive(
        2,
        &publish(
            "devices/dev-1/messages/devicebound/color=red",
            Some(1),
            false,
            b"x",
        ),
    );
    assert!(matches!(
        closed_with(&outs(&mut s)),
        Some(CloseReason::Malformed(_))
    ));
    let mut s = ready();
    let long = format!(
        "devices/dev-1/messages/devicebound/%24.mid={}",
        "m".repeat(256)
    );
    s.receive(2, &publish(&long, Some(1), false, b"x"));
    assert!(matches!(
        closed_with(&outs(&mut s)),
        Some(CloseReason::Malformed(_))
    ));
}

#[test]
fn fault_ack_before_persist_acks_on_receipt() {
    let mut s = ready_with(
        config(),
        faulty(Fault::AckBeforePersist),
        true,
        AppliedIds::new(),
    );
    s.receive(2, &c2d("m-1", 7, false, b"x"));
    let o = outs(&mut s);
    assert_eq!(o[0], Out::Puback(7), "PUBACK before the app saw it: {o:?}");
    assert_eq!(command_mid(&o[1]), Some("m-1"));
    s.command_applied("m-1").unwrap();
    let o = outs(&mut s);
    assert!(
        matches!(&o[..], [Out::Persist(_)]),
        "no second PUBACK: {o:?}"
    );
    // A power cut right after that PUBACK loses the command: the hub
    // considers it complete, and the rebuilt device never applied it.
    // Without the fault, the PUBACK waits for the persist
    // (command_is_surfaced_then_persisted_then_acked).
    let mut s = ready();
    s.receive(2, &c2d("m-1", 7, false, b"x"));
    assert!(!outs(&mut s).contains(&Out::Puback(7)));
}

#[test]
fn fault_no_dedupe_applies_a_redelivered_command_again() {
    let mut applied = AppliedIds::new();
    applied.insert("m-1");
    let mut s = ready_with(config(), faulty(Fault::NoDedupe), false, applied.clone());
    s.receive(2, &c2d("m-1", 1, true, b"x"));
    let o = outs(&mut s);
    assert_eq!(
        o.iter().filter_map(command_mid).collect::<Vec<_>>(),
        ["m-1"],
        "{o:?}"
    );
    s.command_applied("m-1").unwrap();
    assert!(matches!(
        &outs(&mut s)[..],
        [Out::Persist(_), Out::Puback(1)]
    ));
    // Without the fault the same redelivery is only acked.
    let mut s = ready_with(config(), FaultSet::NONE, false, applied);
    s.receive(2, &c2d("m-1", 1, true, b"x"));
    assert_eq!(outs(&mut s), [Out::Puback(1)]);
}

fn filters_of(faults: FaultSet, first: bool) -> (Vec<(String, u8)>, Session) {
    let mut s = Session::new(config(), faults, first, AppliedIds::new()).unwrap();
    s.connect(0).unwrap();
    s.receive(1, &connack(ConnectReturnCode::Accepted));
    let o = outs(&mut s);
    let filters = o
        .iter()
        .find_map(|o| match o {
            Out::Subscribe { filters, .. } => Some(filters.clone()),
            _ => None,
        })
        .unwrap();
    (filters, s)
}

#[test]
fn fault_no_resubscribe_drops_commands_after_the_first_session() {
    let fault = faulty(Fault::NoResubscribe);
    assert_eq!(
        filters_of(fault, true).0,
        all_filters(),
        "first session after power-on"
    );
    let (filters, mut s) = filters_of(fault, false);
    assert_eq!(
        filters,
        all_filters()[1..],
        "reconnect: commands not subscribed"
    );
    s.receive(2, &suback(1, &granted(3)));
    assert_eq!(
        outs(&mut s)[0],
        Out::Event(SessionEvent::Subscribed { commands: false })
    );
    // A command arriving anyway is on a topic this session did not subscribe.
    s.receive(3, &c2d("m-1", 1, false, b"x"));
    assert!(matches!(
        closed_with(&outs(&mut s)),
        Some(CloseReason::UnexpectedTopic(_))
    ));
    // Without the fault every session subscribes to commands.
    assert_eq!(filters_of(FaultSet::NONE, false).0, all_filters());
}

#[test]
fn unrelated_faults_change_nothing() {
    let others = FaultSet::NONE
        .with(Fault::NoSni)
        .with(Fault::SkipHash)
        .with(Fault::TightReconnect);
    assert_eq!(filters_of(others, false).0, all_filters());
    let mut applied = AppliedIds::new();
    applied.insert("m-1");
    let mut s = ready_with(config(), others, false, applied);
    s.receive(2, &c2d("m-1", 1, true, b"x"));
    s.receive(2, &c2d("m-2", 2, false, b"x"));
    let o = outs(&mut s);
    assert_eq!(o[0], Out::Puback(1));
    assert_eq!(command_mid(&o[1]), Some("m-2"));
    assert_eq!(o.len(), 2);
}

#[test]
fn applied_ids_round_trip_and_evict_oldest_first() {
    let mut ids = AppliedIds::new();
    assert_eq!(AppliedIds::decode(&ids.encode()).unwrap(), ids);
    for i in 0..APPLIED_CAPACITY + 2 {
        assert!(ids.insert(&format!("mid-{i}")));
    }
    assert!(!ids.insert("mid-5"), "already there");
    assert_eq!(ids.len(), APPLIED_CAPACITY);
    assert!(!ids.contains("mid-0") && !ids.contains("mid-1"));
    assert!(ids.contains("mid-2") && ids.contains(&format!("mid-{}", APPLIED_CAPACITY + 1)));
    assert_eq!(ids.iter().next(), Some("mid-2"));
    let bytes = ids.encode();
    assert_eq!(AppliedIds::decode(&bytes).unwrap(), ids);
    assert!(
        !ids.insert(&"x".repeat(MAX_MID_LEN + 1)),
        "too long to persist"
    );
    assert!(ids.insert(&"x".repeat(MAX_MID_LEN)));
    assert_eq!(AppliedIds::decode(&ids.encode()).unwrap(), ids);
}

#[test]
fn applied_ids_refuse_damaged_records() {
    let mut ids = AppliedIds::new();
    ids.insert("m-1");
    ids.insert("m-2");
    let good = ids.encode();
    assert_eq!(AppliedIds::decode(&[]), Err(AppliedIdsError::BadHeader));
    assert_eq!(
        AppliedIds::decode(b"XY\x01\x00\0\0\0\0"),
        Err(AppliedIdsError::BadHeader)
    );
    let mut other_version = good.clone();
    other_version[2] = 2;
    assert_eq!(
        AppliedIds::decode(&other_version),
        Err(AppliedIdsError::BadHeader)
    );
    for cut in 3..good.len() {
        assert!(AppliedIds::decode(&good[..cut]).is_err(), "torn at {cut}");
    }
    for i in 3..good.len() {
        let mut flipped = good.clone();
        flipped[i] ^= 0x10;
        assert!(AppliedIds::decode(&flipped).is_err(), "bit flip at {i}");
    }
    let mut longer = good.clone();
    longer.insert(good.len() - 4, b'z');
    assert!(AppliedIds::decode(&longer).is_err());
}
