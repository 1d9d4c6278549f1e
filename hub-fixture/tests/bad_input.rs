//! Bad input closes only the offending connection, with a journal entry, and
//! the hub keeps serving everyone else.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;

use std::time::Duration;

use common::*;
use hub_fixture::client::{connect_tls, tls_config, ConnectOptions, DeviceClient};
use hub_fixture::hub::{HubConfig, HubFixture};
use hub_fixture::journal::{CloseReason, Event, HandshakeFailure};
use tokio::io::AsyncWriteExt;

async fn still_serving(hub: &HubFixture, creds: &hub_fixture::hub::DeviceCredentials) {
    let (c, ack) = DeviceClient::connect(hub.mqtt_addr(), creds, ConnectOptions::default())
        .await
        .unwrap();
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
    c.disconnect().await.unwrap();
}

#[tokio::test]
async fn malformed_oversize_silent_and_garbage_clients_are_dropped_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = HubConfig {
        max_packet_size: 1024,
        handshake_timeout: Duration::from_millis(300),
        ..HubConfig::for_tests(dir.path())
    };
    let hub = start_hub_with(config).await;
    let creds = hub.register_device("d").unwrap();
    // A bystander with a live session must survive everything below.
    let (mut bystander, _) =
        DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default())
            .await
            .unwrap();
    let other = hub.register_device("other").unwrap();

    // Malformed: a reserved packet type after CONNECT.
    let (mut c, _) = DeviceClient::connect(hub.mqtt_addr(), &other, ConnectOptions::default())
        .await
        .unwrap();
    let mark = hub.journal().len();
    c.send_raw(&[0xf0, 0x00]).await.unwrap();
    assert!(c.closed_by_hub(GUARD).await);
    expect_entry(&hub, mark, "malformed", |e| {
        matches!(
            e.event,
            Event::SessionClosed {
                reason: CloseReason::MalformedPacket,
                ..
            }
        )
    })
    .await;

    // Oversize: a PUBLISH announcing 4000 bytes with a 1024-byte limit.
    let (mut c, _) = DeviceClient::connect(hub.mqtt_addr(), &other, ConnectOptions::default())
        .await
        .unwrap();
    let mark = hub.journal().len();
    let mut big = vec![0x30, 0xa0, 0x1f, 0x00, 0x01, b'x'];
    big.extend(std::iter::repeat_n(0u8, 3000));
    let _ = c.send_raw(&big).await;
    assert!(c.closed_by_hub(GUARD).await);
    expect_entry(&hub, mark, "oversize", |e| {
        matches!(
            e.event,
            Event::SessionClosed {
                reason: CloseReason::PacketTooLarge,
                ..
            }
        )
    })
    .await;

    // Silent: TCP connects, never says anything; the handshake timeout drops it.
    let mark = hub.journal().len();
    let silent = tokio::net::TcpStream::connect(hub.mqtt_addr())
        .await
        .unwrap();
    expect_entry(&hub, mark, "handshake timeout", |e| {
        matches!(
            e.event,
            Event::HandshakeFailed {
                reason: HandshakeFailure::Timeout,
                ..
            }
        )
    })
    .await;
    drop(silent);

    // Garbage on the TLS port.
    let mark = hub.journal().len();
    let mut garbage = tokio::net::TcpStream::connect(hub.mqtt_addr())
        .await
        .unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    expect_entry(&hub, mark, "garbage", |e| {
        matches!(
            e.event,
            Event::HandshakeFailed {
                reason: HandshakeFailure::NotTls,
                ..
            }
        )
    })
    .await;

    let (mut c, _) = DeviceClient::connect(hub.mqtt_addr(), &other, ConnectOptions::default())
        .await
        .unwrap();
    let mark = hub.journal().len();
    let mut p = rumqttc::Publish::new(
        "devices/other/messages/events/",
        rumqttc::QoS::ExactlyOnce,
        "x",
    );
    p.pkid = 1;
    c.send(rumqttc::mqttbytes::v4::Packet::Publish(p))
        .await
        .unwrap();
    assert!(c.closed_by_hub(GUARD).await);
    expect_entry(&hub, mark, "qos2", |e| {
        matches!(
            e.event,
            Event::SessionClosed {
                reason: CloseReason::Qos2Unsupported,
                ..
            }
        )
    })
    .await;

    // The bystander's session is untouched, and new clients are served.
    bystander
        .publish(
            "devices/d/messages/events/",
            rumqttc::QoS::AtLeastOnce,
            b"alive",
        )
        .await
        .unwrap();
    still_serving(&hub, &other).await;
}

#[tokio::test]
async fn a_tls_client_that_never_sends_connect_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let config = HubConfig {
        connect_timeout: Duration::from_millis(300),
        ..HubConfig::for_tests(dir.path())
    };
    let hub = start_hub_with(config).await;
    let creds = hub.register_device("d").unwrap();
    let mark = hub.journal().len();
    let tls = connect_tls(
        hub.mqtt_addr(),
        &creds.hub_host,
        tls_config(&creds.ca_pem, Some((&creds.cert_pem, &creds.key_pem))).unwrap(),
    )
    .await
    .unwrap();
    let mut c = DeviceClient::over(tls);
    assert!(c.closed_by_hub(GUARD).await);
    expect_entry(&hub, mark, "connect timeout", |e| {
        matches!(
            e.event,
            Event::SessionClosed {
                reason: CloseReason::ConnectTimeout,
                ..
            }
        )
    })
    .await;
    still_serving(&hub, &creds).await;
}
