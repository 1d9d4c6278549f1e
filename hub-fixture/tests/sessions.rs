//! Revocation, ACLs, methods and twin over real TLS sessions.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;

use std::time::Duration;

use common::*;
use hub_fixture::client::{ConnectOptions, DeviceClient};
use hub_fixture::journal::{CloseReason, Event, HandshakeFailure};
use rumqttc::mqttbytes::v4::Packet;
use rumqttc::{ConnectReturnCode, QoS};
use serde_json::json;

#[tokio::test]
async fn revocation_closes_the_live_session_and_later_handshakes_fail() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let creds = hub.register_device("d").unwrap();
    let (mut c, ack) = DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default())
        .await
        .unwrap();
    assert_eq!(ack.code, ConnectReturnCode::Success);
    let mark = hub.journal().len();
    hub.revoke(&creds.serial).unwrap();
    assert!(
        c.closed_by_hub(GUARD).await,
        "revoked session must be closed by the hub"
    );
    let e = expect_entry(&hub, mark, "revoked session closed", |e| {
        matches!(e.event, Event::RevokedSessionClosed { .. })
    })
    .await;
    let Event::RevokedSessionClosed { serial, latency_us } = e.event else {
        unreachable!()
    };
    assert_eq!(serial, creds.serial);
    assert!(latency_us > 0, "latency is measured");
    expect_entry(&hub, mark, "session closed", |e| {
        matches!(
            e.event,
            Event::SessionClosed {
                reason: CloseReason::CertificateRevoked,
                ..
            }
        )
    })
    .await;

    let mark = hub.journal().len();
    assert!(
        DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default())
            .await
            .is_err()
    );
    expect_entry(&hub, mark, "revoked handshake", |e| {
        matches!(
            e.event,
            Event::HandshakeFailed {
                reason: HandshakeFailure::CertificateRevoked,
                ..
            }
        )
    })
    .await;
}

#[tokio::test]
async fn touching_another_devices_topic_closes_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let a = hub.register_device("a").unwrap();
    hub.register_device("b").unwrap();
    let (mut c, _) = DeviceClient::connect(hub.mqtt_addr(), &a, ConnectOptions::default())
        .await
        .unwrap();
    let mark = hub.journal().len();
    c.send(Packet::Publish(rumqttc::Publish::new(
        "devices/b/messages/events/",
        QoS::AtMostOnce,
        "spoof",
    )))
    .await
    .unwrap();
    assert!(c.closed_by_hub(GUARD).await);
    expect_entry(&hub, mark, "acl close", |e| {
        matches!(
            e.event,
            Event::SessionClosed {
                reason: CloseReason::AclViolation,
                ..
            }
        )
    })
    .await;

    let (mut c, _) = DeviceClient::connect(hub.mqtt_addr(), &a, ConnectOptions::default())
        .await
        .unwrap();
    let mark = hub.journal().len();
    let _ = c.subscribe(&["devices/b/messages/devicebound/#"]).await;
    assert!(c.closed_by_hub(GUARD).await);
    expect_entry(&hub, mark, "acl close", |e| {
        matches!(e.event, Event::AclViolation { .. })
    })
    .await;
}

#[tokio::test]
async fn methods_reach_only_a_connected_device_and_offline_is_404_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let creds = hub.register_device("d").unwrap();
    let r = hub
        .invoke_method("d", "reboot", &json!({}), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(r.status, 404);

    let (mut c, _) = DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default())
        .await
        .unwrap();
    c.subscribe(&["$iothub/methods/POST/#"]).await.unwrap();
    let h = hub.clone();
    let call = tokio::spawn(async move {
        h.invoke_method("d", "diag/state", &json!({"x": 1}), GUARD)
            .await
    });
    let p = c.next_publish(GUARD).await.unwrap();
    assert!(
        p.topic
            .starts_with("$iothub/methods/POST/diag/state/?$rid="),
        "{}",
        p.topic
    );
    let rid = p.topic.rsplit("$rid=").next().unwrap().to_owned();
    c.publish(
        &format!("$iothub/methods/res/200/?$rid={rid}"),
        QoS::AtMostOnce,
        br#"{"version":"1.0.0"}"#,
    )
    .await
    .unwrap();
    let r = call.await.unwrap().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.payload, json!({"version": "1.0.0"}));

    // No answer: 504 after the timeout.
    let r = hub
        .invoke_method("d", "slow", &json!({}), Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(r.status, 504);
}

#[tokio::test]
async fn twin_get_reported_patch_and_desired_notification() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let creds = hub.register_device("d").unwrap();
    hub.patch_desired("d", &json!({"telemetryIntervalSeconds": 30}))
        .unwrap();
    let (mut c, _) = DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default())
        .await
        .unwrap();
    c.subscribe(&[
        "$iothub/twin/res/#",
        "$iothub/twin/PATCH/properties/desired/#",
    ])
    .await
    .unwrap();
    c.publish("$iothub/twin/GET/?$rid=1", QoS::AtMostOnce, b"")
        .await
        .unwrap();
    let p = c.next_publish(GUARD).await.unwrap();
    assert_eq!(p.topic, "$iothub/twin/res/200/?$rid=1");
    let twin: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(twin["desired"]["telemetryIntervalSeconds"], 30);
    // A new twin is at $version 1 (IoT Hub); one patch since.
    assert_eq!(twin["desired"]["$version"], 2);

    c.publish(
        "$iothub/twin/PATCH/properties/reported/?$rid=2",
        QoS::AtMostOnce,
        br#"{"firmware":{"state":"idle"}}"#,
    )
    .await
    .unwrap();
    let p = c.next_publish(GUARD).await.unwrap();
    assert!(
        p.topic
            .starts_with("$iothub/twin/res/204/?$rid=2&$version="),
        "{}",
        p.topic
    );
    assert_eq!(hub.twin("d").unwrap().reported["firmware"]["state"], "idle");

    hub.patch_desired(
        "d",
        &json!({"credentials": {"rotateAfter": "2026-11-25T12:00:00Z"}}),
    )
    .unwrap();
    let p = c.next_publish(GUARD).await.unwrap();
    assert_eq!(p.topic, "$iothub/twin/PATCH/properties/desired/?$version=3");
    let body: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(body["credentials"]["rotateAfter"], "2026-11-25T12:00:00Z");
}

#[tokio::test]
async fn disabled_and_unknown_devices_are_not_authorised() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let creds = hub.register_device("d").unwrap();
    let (mut live, _) = DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default())
        .await
        .unwrap();
    hub.set_device_status("d", hub_fixture::store::DeviceStatus::Disabled)
        .unwrap();
    assert!(
        live.closed_by_hub(GUARD).await,
        "disabling closes the live session"
    );
    let (_, ack) = DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default())
        .await
        .unwrap();
    assert_eq!(ack.code, ConnectReturnCode::NotAuthorized);
    hub.set_device_status("d", hub_fixture::store::DeviceStatus::Enabled)
        .unwrap();
    let (_, ack) = DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default())
        .await
        .unwrap();
    assert_eq!(ack.code, ConnectReturnCode::Success);
}
