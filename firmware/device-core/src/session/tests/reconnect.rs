//! The session after a reconnect: its CONNACK timeout, the subscription
//! and twin GET it owes whatever the hub kept, and the faults that skip
//! them (`no-connack-timeout`, `trust-session-present`, `no-twin-get`).

use super::*;

fn connect(faults: FaultSet, reconnect: bool) -> Session {
    let mut s = Session::new(config(), faults, true, AppliedIds::new()).unwrap();
    s.set_reconnect(reconnect);
    s.connect(0).unwrap();
    s
}

fn clean_flag(o: &[Out]) -> bool {
    o.iter()
        .find_map(|o| match o {
            Out::Connect { clean, .. } => Some(*clean),
            _ => None,
        })
        .expect("a CONNECT")
}

fn twin_gets(o: &[Out]) -> usize {
    o.iter()
        .filter(
            |o| matches!(o, Out::Publish { topic, .. } if topic.starts_with("$iothub/twin/GET/")),
        )
        .count()
}

#[test]
fn an_unanswered_connect_is_given_up_at_the_connack_timeout() {
    let mut s = connect(FaultSet::NONE, true);
    outs(&mut s);
    let timeout = config().connack_timeout_ms;
    assert_eq!(s.next_deadline(), Some(timeout));
    s.poll(timeout - 1);
    assert_eq!(outs(&mut s), []);
    s.poll(timeout);
    assert_eq!(outs(&mut s), [Out::Close(CloseReason::ConnackTimeout)]);
}

#[test]
fn no_connack_timeout_waits_forever() {
    let mut s = connect(FaultSet::NONE.with(Fault::NoConnackTimeout), true);
    outs(&mut s);
    assert_eq!(s.next_deadline(), None);
    s.poll(u64::MAX / 2);
    assert_eq!(outs(&mut s), []);
    assert!(!s.is_closed());
}

#[test]
fn a_reconnect_subscribes_and_gets_the_twin_whatever_session_present_says() {
    for present in [false, true] {
        let mut s = connect(FaultSet::NONE, true);
        assert!(clean_flag(&outs(&mut s)), "a clean session");
        s.receive(
            1,
            &enc(Packet::Connack(Connack {
                session_present: present,
                code: ConnectReturnCode::Accepted,
            })),
        );
        let o = outs(&mut s);
        let sub = subscribe_pid(&o);
        s.receive(2, &suback(sub, &granted(4)));
        assert_eq!(twin_gets(&outs(&mut s)), 1);
    }
}

#[test]
fn trust_session_present_skips_the_subscribe_on_reconnects_only() {
    let faults = FaultSet::NONE.with(Fault::TrustSessionPresent);
    // The first session since power-on sets the persistent session up.
    let mut first = connect(faults, false);
    assert!(!clean_flag(&outs(&mut first)), "CleanSession=0");
    first.receive(1, &connack(ConnectReturnCode::Accepted));
    assert!(outs(&mut first)
        .iter()
        .any(|o| matches!(o, Out::Subscribe { .. })));
    // A reconnect relies on it, though session-present is 0.
    let mut again = connect(faults, true);
    outs(&mut again);
    again.receive(1, &connack(ConnectReturnCode::Accepted));
    let o = outs(&mut again);
    assert!(
        !o.iter().any(|o| matches!(o, Out::Subscribe { .. })),
        "{o:?}"
    );
    assert!(o.contains(&Out::Event(SessionEvent::Subscribed { commands: true })));
    assert_eq!(twin_gets(&o), 1);
    assert!(again.is_ready());
    // Commands the hub's session still routes are taken.
    again.receive(
        2,
        &publish(
            "devices/dev-1/messages/devicebound/%24.mid=m1",
            Some(3),
            false,
            b"x",
        ),
    );
    assert!(outs(&mut again)
        .iter()
        .any(|o| matches!(o, Out::Event(SessionEvent::Command(c)) if c.mid == "m1")));
}

#[test]
fn no_twin_get_skips_the_get_on_reconnects_only() {
    let faults = FaultSet::NONE.with(Fault::NoTwinGet);
    for (reconnect, gets) in [(false, 1), (true, 0)] {
        let mut s = connect(faults, reconnect);
        outs(&mut s);
        s.receive(1, &connack(ConnectReturnCode::Accepted));
        let sub = subscribe_pid(&outs(&mut s));
        s.receive(2, &suback(sub, &granted(4)));
        assert_eq!(twin_gets(&outs(&mut s)), gets, "reconnect {reconnect}");
        assert!(s.is_ready());
    }
}
