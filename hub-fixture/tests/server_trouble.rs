//! The hub's server-side trouble switches (`trouble.rs`), over real TLS
//! connections: a reset is an RST, a close is close_notify + FIN, a
//! withheld CONNACK is silence that outlives the connect timeout, a
//! discarded session answers session-present 0, a held desired
//! notification comes after newer ones, and a stopped hub frees its
//! addresses.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::*;
use hub_fixture::client::{connect_tls, tls_config, ConnectOptions, DeviceClient};
use hub_fixture::hub::{DeviceCredentials, HubConfig, HubFixture};
use hub_fixture::journal::{CloseReason, Event};
use rumqttc::mqttbytes::v4::{Connect, Login, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

fn connect_bytes(creds: &DeviceCredentials) -> Vec<u8> {
    let mut c = Connect::new(creds.device_id.clone());
    c.login = Some(Login::new(
        format!(
            "{}/{}/?api-version=2021-04-12",
            creds.hub_host, creds.device_id
        ),
        "",
    ));
    let mut out = BytesMut::new();
    Packet::Connect(c).write(&mut out, usize::MAX).unwrap();
    out.to_vec()
}

/// TLS up and CONNECT sent, nothing read.
async fn raw_connect(hub: &HubFixture, creds: &DeviceCredentials) -> TlsStream<TcpStream> {
    let config = tls_config(&creds.ca_pem, Some((&creds.cert_pem, &creds.key_pem))).unwrap();
    let mut s = connect_tls(hub.mqtt_addr(), &creds.hub_host, config)
        .await
        .unwrap();
    s.write_all(&connect_bytes(creds)).await.unwrap();
    s.flush().await.unwrap();
    s
}

/// Reads until the hub ends the connection: the bytes before, and how it ended.
async fn read_to_end(s: &mut TlsStream<TcpStream>) -> (Vec<u8>, std::io::Result<()>) {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(GUARD, s.read(&mut chunk)).await {
            Err(_) => panic!("the hub did not end the connection"),
            Ok(Ok(0)) => return (got, Ok(())),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return (got, Err(e)),
        }
    }
}

/// A connected raw session: CONNECT answered (the CONNACK's 4 bytes read).
async fn raw_session(hub: &HubFixture, creds: &DeviceCredentials) -> TlsStream<TcpStream> {
    let mut s = raw_connect(hub, creds).await;
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0]);
    s
}

#[tokio::test]
async fn a_reset_is_an_rst_and_a_close_is_an_orderly_tls_close() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let creds = hub.register_device("d").unwrap();
    assert!(!hub.reset_connection("d"), "no live session yet");

    let mut s = raw_session(&hub, &creds).await;
    let mark = hub.journal().len();
    assert!(hub.reset_connection("d"));
    let (bytes, end) = read_to_end(&mut s).await;
    assert!(bytes.is_empty());
    let e = end.expect_err("a reset, not an orderly close");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    expect_entry(&hub, mark, "session closed by the reset", |e| {
        matches!(
            e.event,
            Event::SessionClosed {
                reason: CloseReason::HubReset,
                ..
            }
        )
    })
    .await;

    let mut s = raw_session(&hub, &creds).await;
    let mark = hub.journal().len();
    assert!(hub.close_connection("d"));
    let (bytes, end) = read_to_end(&mut s).await;
    assert!(
        bytes.is_empty(),
        "no MQTT packet before the close: {bytes:?}"
    );
    end.expect("close_notify and FIN: an orderly end");
    expect_entry(&hub, mark, "session closed by the hub", |e| {
        matches!(
            e.event,
            Event::SessionClosed {
                reason: CloseReason::HubClosed,
                ..
            }
        )
    })
    .await;
}

#[tokio::test]
async fn a_withheld_connack_is_silence_that_outlives_the_connect_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = HubConfig::for_tests(dir.path());
    config.connect_timeout = Duration::from_millis(200);
    let hub = start_hub_with(config).await;
    let creds = hub.register_device("d").unwrap();
    hub.set_withhold_connack("d", true);
    let mark = hub.journal().len();
    let mut withheld = raw_connect(&hub, &creds).await;
    let held = expect_entry(&hub, mark, "the CONNECT withheld", |e| {
        matches!(e.event, Event::ConnackWithheld { .. })
    })
    .await;
    // A connection opened later that sends no CONNECT times out: the
    // withheld one, older, would have too if the hub timed it out.
    let config = tls_config(&creds.ca_pem, Some((&creds.cert_pem, &creds.key_pem))).unwrap();
    let mut idle = connect_tls(hub.mqtt_addr(), &creds.hub_host, config)
        .await
        .unwrap();
    expect_entry(&hub, held.seq, "the idle connection timed out", |e| {
        matches!(
            e.event,
            Event::SessionClosed {
                reason: CloseReason::ConnectTimeout,
                ..
            }
        )
    })
    .await;
    let _ = read_to_end(&mut idle).await;
    assert!(
        !hub.journal()
            .since(held.seq)
            .iter()
            .any(|e| matches!(e.event, Event::SessionClosed { .. }) && e.peer == held.peer),
        "the withheld connection is still open"
    );
    assert!(!hub.is_connected("d"), "a withheld CONNECT is no session");
    // Switched off: the next CONNECT is answered; the withheld one never is.
    hub.set_withhold_connack("d", false);
    let (_c, ack) = DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default())
        .await
        .unwrap();
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
    withheld.shutdown().await.unwrap();
    let (bytes, _) = read_to_end(&mut withheld).await;
    assert!(
        bytes.is_empty(),
        "nothing answered the withheld CONNECT: {bytes:?}"
    );
    expect_entry(
        &hub,
        held.seq,
        "the device gave the withheld attempt up",
        |e| {
            matches!(
                e.event,
                Event::SessionClosed {
                    reason: CloseReason::PeerClosed,
                    ..
                }
            ) && e.peer == held.peer
        },
    )
    .await;
}

#[tokio::test]
async fn a_discarded_session_is_not_resumed_a_closed_one_is() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let creds = hub.register_device("d").unwrap();
    let persistent = ConnectOptions {
        persistent: true,
        ..ConnectOptions::default()
    };
    let (mut c, _) = DeviceClient::connect(hub.mqtt_addr(), &creds, persistent.clone())
        .await
        .unwrap();
    c.subscribe_c2d("d").await.unwrap();
    assert!(hub.close_connection("d"));
    assert!(c.closed_by_hub(GUARD).await);
    let (mut c, ack) = DeviceClient::connect(hub.mqtt_addr(), &creds, persistent.clone())
        .await
        .unwrap();
    assert!(ack.session_present, "a close keeps the session");
    let mark = hub.journal().len();
    assert!(hub.discard_session("d"));
    assert!(c.closed_by_hub(GUARD).await);
    expect_entry(&hub, mark, "session discarded", |e| {
        matches!(
            e.event,
            Event::SessionClosed {
                reason: CloseReason::SessionDiscarded,
                ..
            }
        )
    })
    .await;
    let (c, ack) = DeviceClient::connect(hub.mqtt_addr(), &creds, persistent.clone())
        .await
        .unwrap();
    assert!(!ack.session_present, "the hub kept no session");
    let mark = hub.journal().len();
    c.disconnect().await.unwrap();
    expect_entry(&hub, mark, "the client's DISCONNECT", |e| {
        matches!(
            e.event,
            Event::SessionClosed {
                reason: CloseReason::ClientDisconnect,
                ..
            }
        )
    })
    .await;
    // Offline, the stored session is dropped at once.
    assert!(!hub.discard_session("d"));
    let (_c, ack) = DeviceClient::connect(hub.mqtt_addr(), &creds, persistent)
        .await
        .unwrap();
    assert!(!ack.session_present);
}

#[tokio::test]
async fn a_held_desired_notification_comes_after_newer_ones() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let creds = hub.register_device("d").unwrap();
    let (mut c, _) = DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default())
        .await
        .unwrap();
    c.subscribe(&[
        "$iothub/twin/res/#",
        "$iothub/twin/PATCH/properties/desired/#",
    ])
    .await
    .unwrap();
    hub.hold_next_desired("d");
    let mark = hub.journal().len();
    let v1 = hub
        .patch_desired("d", &serde_json::json!({ "telemetryIntervalSeconds": 5 }))
        .unwrap()
        .desired_version;
    expect_entry(
        &hub,
        mark,
        "held",
        |e| matches!(e.event, Event::DesiredHeld { version } if version == v1),
    )
    .await;
    let v2 = hub
        .patch_desired("d", &serde_json::json!({ "telemetryIntervalSeconds": 9 }))
        .unwrap()
        .desired_version;
    // The first notification the device gets is the newer one.
    let first = c.next_publish(GUARD).await.unwrap();
    assert_eq!(
        first.topic,
        format!("$iothub/twin/PATCH/properties/desired/?$version={v2}")
    );
    // A GET sees the twin as it is.
    c.publish("$iothub/twin/GET/?$rid=8", rumqttc::QoS::AtMostOnce, b"")
        .await
        .unwrap();
    let res = c.next_publish(GUARD).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&res.payload).unwrap();
    assert_eq!(body["desired"]["$version"], v2);
    assert_eq!(hub.release_desired("d"), Some(v1));
    let stale = c.next_publish(GUARD).await.unwrap();
    assert_eq!(
        stale.topic,
        format!("$iothub/twin/PATCH/properties/desired/?$version={v1}")
    );
    let body: serde_json::Value = serde_json::from_slice(&stale.payload).unwrap();
    assert_eq!(body["telemetryIntervalSeconds"], 5);
    expect_entry(
        &hub,
        mark,
        "released",
        |e| matches!(e.event, Event::DesiredReleased { version, sent: true } if version == v1),
    )
    .await;
    assert_eq!(hub.release_desired("d"), None, "held once");
    // A reported patch is journalled whole.
    let mark = hub.journal().len();
    c.publish(
        "$iothub/twin/PATCH/properties/reported/?$rid=9",
        rumqttc::QoS::AtMostOnce,
        br#"{"telemetryIntervalSeconds":9}"#,
    )
    .await
    .unwrap();
    let r = expect_entry(&hub, mark, "reported", |e| {
        matches!(e.event, Event::TwinReported { .. })
    })
    .await;
    assert!(
        matches!(r.event, Event::TwinReported { patch, .. } if patch["telemetryIntervalSeconds"] == 9)
    );
}

#[tokio::test]
async fn a_stopped_hub_frees_its_addresses_for_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let creds = hub.register_device("d").unwrap();
    let (mut c, _) = DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default())
        .await
        .unwrap();
    let mut config = HubConfig::for_tests(dir.path());
    config.mqtt_addr = hub.mqtt_addr();
    config.https_addr = hub.https_addr();
    drop(hub.stop().await);
    assert!(c.closed_by_hub(GUARD).await);
    let again = HubFixture::start(config).await.unwrap();
    assert_eq!(again.mqtt_addr(), hub.mqtt_addr());
    let (_c, ack) = DeviceClient::connect(again.mqtt_addr(), &creds, ConnectOptions::default())
        .await
        .unwrap();
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
    again.shutdown();
}

#[tokio::test]
async fn a_restart_on_the_stopped_hubs_sockets_serves_who_connected_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let creds = hub.register_device("d").unwrap();
    let (mut c, _) = DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default())
        .await
        .unwrap();
    let config = HubConfig::for_tests(dir.path());
    let kept = hub
        .stop()
        .await
        .expect("a running hub hands its sockets back");
    assert!(hub.stop().await.is_none(), "stopped once");
    assert!(c.closed_by_hub(GUARD).await);
    // While no hub runs, a connection waits in the kept socket's backlog
    // and is served once the new hub starts on it.
    let waiting = tokio::spawn({
        let (addr, creds) = (hub.mqtt_addr(), creds.clone());
        async move { DeviceClient::connect(addr, &creds, ConnectOptions::default()).await }
    });
    let again = HubFixture::start_on(config, kept).await.unwrap();
    assert_eq!(
        (again.mqtt_addr(), again.https_addr()),
        (hub.mqtt_addr(), hub.https_addr())
    );
    let (_c, ack) = waiting.await.unwrap().unwrap();
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
    again.shutdown();
}

#[tokio::test]
async fn the_admin_api_drives_the_trouble_switches() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = HubConfig::for_tests(dir.path());
    config.admin_addr = Some("127.0.0.1:0".parse().unwrap());
    let hub = start_hub_with(config).await;
    let creds = hub.register_device("d").unwrap();
    let api = hub_fixture::admin::AdminClient::new(hub.admin_addr().unwrap());
    let call = |method: &'static str, path: &'static str, body| {
        let api = &api;
        async move { api.call(method, path, body).await }
    };
    let r = call("POST", "/devices/d/trouble/close", None)
        .await
        .unwrap();
    assert_eq!(r["result"], false, "no live session: {r}");
    let (mut c, _) = DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default())
        .await
        .unwrap();
    let r = call("POST", "/devices/d/trouble/reset", None)
        .await
        .unwrap();
    assert_eq!(r["result"], true, "{r}");
    assert!(c.closed_by_hub(GUARD).await);
    let r = call(
        "PUT",
        "/devices/d/connack",
        Some(serde_json::json!({ "withhold": true })),
    )
    .await
    .unwrap();
    assert_eq!(r["withhold"], true);
    let mark = hub.journal().len();
    let _held = raw_connect(&hub, &creds).await;
    expect_entry(&hub, mark, "withheld through the API", |e| {
        matches!(e.event, Event::ConnackWithheld { .. })
    })
    .await;
    call("POST", "/devices/d/trouble/hold-desired", None)
        .await
        .unwrap();
    hub.patch_desired("d", &serde_json::json!({ "a": 1 }))
        .unwrap();
    let r = call("POST", "/devices/d/trouble/release-desired", None)
        .await
        .unwrap();
    assert_eq!(
        r["result"],
        serde_json::Value::Null,
        "no live session to send it to"
    );
    let err = call("POST", "/devices/d/trouble/flood", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no trouble \"flood\""), "{err}");
    let err = call("POST", "/devices/nobody/trouble/close", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("404"), "{err}");
}
