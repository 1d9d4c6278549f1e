//! Durability: the hub binary is killed with SIGKILL while it holds queued
//! commands, restarted on the same data directory, and everything it had
//! accepted is still delivered. Driven entirely through the admin HTTP API.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;

use common::{addr, spawn_hub, GUARD};
use hub_fixture::admin::AdminClient;
use hub_fixture::client::{ConnectOptions, DeviceClient};
use hub_fixture::hub::DeviceCredentials;
use serde_json::json;

#[tokio::test]
async fn kill_9_with_queued_commands_then_restart_delivers_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hub, ready) = spawn_hub(dir.path()).await;
    let admin = AdminClient::new(addr(&ready, "admin"));
    let creds: DeviceCredentials = serde_json::from_value(
        admin
            .call("POST", "/devices", Some(json!({"device_id": "d"})))
            .await
            .unwrap(),
    )
    .unwrap();
    for i in 0..5 {
        let r = admin
            .call(
                "POST",
                "/devices/d/messages",
                Some(json!({"payload": format!("cmd-{i}"), "ttl_seconds": 3600})),
            )
            .await
            .unwrap();
        assert_eq!(r["delivery_count"], 0);
    }
    // An over-limit TTL is refused with a clear error, not stored.
    let err = admin
        .call(
            "POST",
            "/devices/d/messages",
            Some(json!({"payload": "x", "ttl_seconds": 49 * 3600})),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("400"), "{err}");

    hub.start_kill().unwrap(); // SIGKILL: no shutdown path runs
    hub.wait().await.unwrap();

    let (_hub, ready) = spawn_hub(dir.path()).await;
    let admin = AdminClient::new(addr(&ready, "admin"));
    assert_eq!(
        admin
            .call("GET", "/devices/d/messages", None)
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let (mut c, ack) =
        DeviceClient::connect(addr(&ready, "mqtt"), &creds, ConnectOptions::default())
            .await
            .unwrap();
    assert_eq!(
        ack.code,
        rumqttc::ConnectReturnCode::Success,
        "the restarted hub kept CA and registry"
    );
    c.subscribe_c2d("d").await.unwrap();
    for i in 0..5 {
        let p = c.next_publish(GUARD).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&p.payload), format!("cmd-{i}"));
        c.puback(p.pkid).await.unwrap();
    }
    // The session handles packets in order: once our QoS 1 publish is acked,
    // every PUBACK before it has completed its message.
    c.publish(
        "devices/d/messages/events/",
        rumqttc::QoS::AtLeastOnce,
        b"sync",
    )
    .await
    .unwrap();
    let fb = admin.call("GET", "/feedback?device=d", None).await.unwrap();
    let successes = fb
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "success")
        .count();
    assert_eq!(successes, 5, "{fb}");
}

/// A persistent session (CleanSession=0) is as durable as the queue: its
/// subscription and its unacknowledged delivery survive a SIGKILL, and the
/// device, without subscribing again, gets that delivery again (same packet
/// id, DUP) and then the next command.
#[tokio::test]
async fn kill_9_keeps_persistent_sessions_and_their_unacked_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hub, ready) = spawn_hub(dir.path()).await;
    let admin = AdminClient::new(addr(&ready, "admin"));
    let creds: DeviceCredentials = serde_json::from_value(
        admin
            .call("POST", "/devices", Some(json!({"device_id": "p"})))
            .await
            .unwrap(),
    )
    .unwrap();
    let persistent = ConnectOptions {
        persistent: true,
        ..ConnectOptions::default()
    };
    let (mut c, _) = DeviceClient::connect(addr(&ready, "mqtt"), &creds, persistent.clone())
        .await
        .unwrap();
    c.subscribe_c2d("p").await.unwrap();
    admin
        .call(
            "POST",
            "/devices/p/messages",
            Some(json!({ "payload": "first" })),
        )
        .await
        .unwrap();
    let first = c.next_publish(GUARD).await.unwrap(); // never acknowledged
    assert!(!first.dup);

    hub.start_kill().unwrap(); // SIGKILL: no shutdown path runs
    hub.wait().await.unwrap();
    drop(c);
    let (_hub, ready) = spawn_hub(dir.path()).await;
    let admin = AdminClient::new(addr(&ready, "admin"));
    let (mut c, ack) = DeviceClient::connect(addr(&ready, "mqtt"), &creds, persistent)
        .await
        .unwrap();
    assert!(ack.session_present, "the session survived the kill");
    let again = c.next_publish(GUARD).await.unwrap();
    assert_eq!((again.pkid, again.dup), (first.pkid, true));
    assert_eq!(again.payload, first.payload);
    c.puback(again.pkid).await.unwrap();
    admin
        .call(
            "POST",
            "/devices/p/messages",
            Some(json!({ "payload": "second" })),
        )
        .await
        .unwrap();
    let second = c.next_publish(GUARD).await.unwrap();
    assert_eq!(&second.payload[..], b"second", "no SUBSCRIBE was needed");
}
