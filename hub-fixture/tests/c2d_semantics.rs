//! Cloud-to-device queue semantics over real sessions: TTL on the virtual
//! clock, the 48 h limit, depth 50, dead-lettering after 10 deliveries, and
//! redelivery after a cut before PUBACK.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;

use std::time::Duration;

use common::*;
use hub_fixture::client::{ConnectOptions, DeviceClient};
use hub_fixture::hub::{DeviceCredentials, HubError, HubFixture};
use hub_fixture::journal::Event;
use hub_fixture::store::{FeedbackStatus, NewMessage, StoreError};

fn msg(payload: &str, ttl_ms: Option<i64>) -> NewMessage {
    NewMessage {
        message_id: None,
        payload: payload.as_bytes().to_vec(),
        properties: vec![],
        ttl_ms,
    }
}

const HOUR: i64 = 3_600_000;

async fn online(hub: &HubFixture, creds: &DeviceCredentials) -> DeviceClient {
    let (mut c, ack) = DeviceClient::connect(hub.mqtt_addr(), creds, ConnectOptions::default())
        .await
        .unwrap();
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
    c.subscribe_c2d(&creds.device_id).await.unwrap();
    c
}

#[tokio::test]
async fn ttl_expiry_and_the_two_day_limit_on_the_virtual_clock() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let creds = hub.register_device("d").unwrap();
    let short = hub.send_c2d("d", msg("short", Some(HOUR))).unwrap();
    let long = hub.send_c2d("d", msg("long", Some(48 * HOUR))).unwrap();
    let default = hub.send_c2d("d", msg("default", None)).unwrap();
    assert_eq!(
        default.expires_ms - default.enqueued_ms,
        HOUR,
        "default TTL is 1 h"
    );
    match hub.send_c2d("d", msg("too long", Some(49 * HOUR))) {
        Err(HubError::Store(StoreError::TtlTooLong { .. })) => {}
        other => panic!("a 49 h TTL must be refused, got {other:?}"),
    }

    // Two hours offline: the 1 h messages expire (feedback), the 48 h one does not.
    hub.advance_clock(Duration::from_secs(2 * 3600)).unwrap();
    let fb = hub.feedback(Some("d")).unwrap();
    let expired: Vec<i64> = fb
        .iter()
        .filter(|f| f.status == FeedbackStatus::Expired)
        .map(|f| f.seq)
        .collect();
    assert_eq!(expired, vec![short.seq, default.seq]);

    // 47 h in all: the 48 h message is still delivered, and only it.
    hub.advance_clock(Duration::from_secs(45 * 3600)).unwrap();
    let mut c = online(&hub, &creds).await;
    let p = c.next_publish(GUARD).await.unwrap();
    assert_eq!(&p.payload[..], b"long");
    c.puback(p.pkid).await.unwrap();
    let mark = hub.journal().len();
    expect_entry(&hub, 0, "success feedback", |e| {
        matches!(&e.event, Event::Feedback { status, message_seq, .. } if status == "success" && *message_seq == long.seq)
    })
    .await;
    assert!(hub
        .journal()
        .since(mark)
        .iter()
        .all(|e| !matches!(e.event, Event::C2dDelivered { .. })));
    assert!(hub.pending_c2d("d").unwrap().is_empty());
}

#[tokio::test]
async fn the_fifty_first_message_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    hub.register_device("d").unwrap();
    for i in 0..50 {
        hub.send_c2d("d", msg(&i.to_string(), None)).unwrap();
    }
    match hub.send_c2d("d", msg("51", None)) {
        Err(HubError::Store(StoreError::QueueFull { depth: 50, .. })) => {}
        other => panic!("51st must be refused, got {other:?}"),
    }
    assert!(hub
        .journal()
        .entries()
        .iter()
        .any(|e| matches!(e.event, Event::C2dRefused { .. })));
    assert_eq!(hub.pending_c2d("d").unwrap().len(), 50);
}

#[tokio::test]
async fn a_device_that_never_acks_gets_the_message_ten_times_then_it_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let creds = hub.register_device("d").unwrap();
    let m = hub.send_c2d("d", msg("never acked", None)).unwrap();
    for attempt in 1..=10u32 {
        let mut c = online(&hub, &creds).await;
        let p = c.next_publish(GUARD).await.unwrap();
        assert_eq!(&p.payload[..], b"never acked");
        assert_eq!(p.dup, attempt > 1, "redeliveries carry DUP");
        let mark = hub.journal().len();
        drop(c); // cut without PUBACK
                 // The hub unregisters a session before it journals its end.
        expect_entry(&hub, mark, "session end", |e| {
            matches!(e.event, Event::SessionClosed { .. })
        })
        .await;
        assert!(!hub.is_connected("d"));
    }
    let mark = hub.journal().len();
    let mut c = online(&hub, &creds).await;
    let fb = expect_entry(&hub, mark, "dead-letter feedback", |e| {
        matches!(e.event, Event::Feedback { .. })
    })
    .await;
    let Event::Feedback {
        status,
        message_seq: seq,
        delivery_count,
        ..
    } = fb.event
    else {
        unreachable!()
    };
    assert_eq!(
        (status.as_str(), seq, delivery_count),
        ("deliveryCountExceeded", m.seq, 10)
    );
    // Nothing is delivered an eleventh time.
    c.publish(
        "devices/d/messages/events/",
        rumqttc::QoS::AtLeastOnce,
        b"sync",
    )
    .await
    .unwrap();
    assert!(hub
        .journal()
        .since(mark)
        .iter()
        .all(|e| !matches!(e.event, Event::C2dDelivered { .. })));
}

#[tokio::test]
async fn a_cut_before_puback_means_redelivery_on_the_next_session_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let creds = hub.register_device("d").unwrap();
    for p in ["one", "two", "three"] {
        hub.send_c2d("d", msg(p, None)).unwrap();
    }
    let mut c = online(&hub, &creds).await;
    let first = c.next_publish(GUARD).await.unwrap();
    assert_eq!(&first.payload[..], b"one");
    c.puback(first.pkid).await.unwrap();
    let second = c.next_publish(GUARD).await.unwrap();
    assert_eq!(&second.payload[..], b"two");
    let mark = hub.journal().len();
    drop(c); // cut: "two" (and maybe "three") delivered but never acked
    expect_entry(&hub, mark, "session end", |e| {
        matches!(e.event, Event::SessionClosed { .. })
    })
    .await;
    assert_eq!(hub.pending_c2d("d").unwrap().len(), 2);

    let mark = hub.journal().len();
    let mut c = online(&hub, &creds).await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let p = c.next_publish(GUARD).await.unwrap();
        got.push(String::from_utf8(p.payload.to_vec()).unwrap());
        c.puback(p.pkid).await.unwrap();
    }
    assert_eq!(got, vec!["two", "three"]);
    // The PUBACKs are processed by the hub asynchronously: wait for both.
    let mut acks = 0;
    expect_entry(&hub, mark, "two acks", |e| {
        acks += usize::from(matches!(e.event, Event::C2dAcked { .. }));
        acks == 2
    })
    .await;
    let fb = hub.feedback(Some("d")).unwrap();
    assert_eq!(fb.len(), 3);
    assert!(fb.iter().all(|f| f.status == FeedbackStatus::Success));
}
