//! Interop with a real third-party MQTT client: Debian's `mosquitto_pub` and
//! `mosquitto_sub` (libmosquitto + OpenSSL) as the device.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use hub_fixture::journal::{Event, HandshakeFailure, RefuseReason};
use hub_fixture::pki::{CertificateAuthority, KeyAlgorithm, Validity};
use hub_fixture::store::NewMessage;
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_device_sends_telemetry_and_gets_c2d_queued_while_offline() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let creds = hub.register_device("dev-1").unwrap();
    let files = write_creds(dir.path(), &creds, "dev-1");

    let mark = hub.journal().len();
    let out = run(Command::new("mosquitto_pub")
        .args(mosquitto_args(&hub, &files, "dev-1"))
        .args([
            "-q",
            "1",
            "-t",
            "devices/dev-1/messages/events/kind=temp",
            "-m",
            r#"{"t":21.5}"#,
        ]))
    .await;
    assert!(
        out.status.success(),
        "mosquitto_pub failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = expect_entry(&hub, mark, "telemetry", |e| {
        matches!(e.event, Event::Telemetry { .. })
    })
    .await;
    let Event::Telemetry {
        payload,
        properties,
        qos,
        ..
    } = e.event
    else {
        unreachable!()
    };
    assert_eq!(payload, r#"{"t":21.5}"#);
    assert_eq!(properties, vec![("kind".to_string(), "temp".to_string())]);
    assert_eq!(qos, 1);
    // mosquitto_pub has exited; the hub notices the close on its own time.
    expect_entry(&hub, mark, "session end", |e| {
        matches!(e.event, Event::SessionClosed { .. })
    })
    .await;

    // Queued while no session exists.
    let queued = hub
        .send_c2d(
            "dev-1",
            NewMessage {
                message_id: None,
                payload: b"open-valve".to_vec(),
                properties: vec![("cmd".into(), "valve".into())],
                ttl_ms: None,
            },
        )
        .unwrap();
    assert!(!hub.is_connected("dev-1"));
    let mark = hub.journal().len();
    let out = run(Command::new("mosquitto_sub")
        .args(mosquitto_args(&hub, &files, "dev-1"))
        .args([
            "-q",
            "1",
            "-t",
            "devices/dev-1/messages/devicebound/#",
            "-C",
            "1",
            "-v",
            "-W",
            "15",
        ]))
    .await;
    assert!(
        out.status.success(),
        "mosquitto_sub failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (topic, payload) = line.split_once(' ').expect("topic and payload");
    assert_eq!(payload, "open-valve");
    assert!(
        topic.starts_with("devices/dev-1/messages/devicebound/"),
        "{topic}"
    );
    assert!(
        topic.contains(&format!("%24.mid={}", queued.message_id)),
        "{topic}"
    );
    assert!(topic.contains("cmd=valve"), "{topic}");
    expect_entry(&hub, mark, "C2D completion by PUBACK", |e| {
        matches!(&e.event, Event::Feedback { status, message_seq, .. } if status == "success" && *message_seq == queued.seq)
    })
    .await;
    assert!(hub.pending_c2d("dev-1").unwrap().is_empty());
}

/// Runs mosquitto_pub as `client_id` with `files` and expects it to fail.
async fn refused(hub: &hub_fixture::hub::HubFixture, files: &CredFiles, client_id: &str) {
    let out = run(Command::new("mosquitto_pub")
        .args(mosquitto_args(hub, files, client_id))
        .args([
            "-q",
            "1",
            "-t",
            &format!("devices/{client_id}/messages/events/"),
            "-m",
            "x",
        ]))
    .await;
    assert!(
        !out.status.success(),
        "mosquitto_pub should have been refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_refusals_are_journalled_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path()).await;
    let creds = hub.register_device("dev-1").unwrap();
    let handshake = |want: HandshakeFailure| move |e: &hub_fixture::journal::JournalEntry| matches!(&e.event, Event::HandshakeFailed { reason, .. } if *reason == want);

    // No client certificate at all.
    let good = write_creds(dir.path(), &creds, "dev-1");
    let none = CredFiles {
        cert: dir.path().join("absent.pem"),
        key: dir.path().join("absent.key"),
        ca: good.ca.clone(),
    };
    let mark = hub.journal().len();
    refused(&hub, &none, "dev-1").await;
    expect_entry(
        &hub,
        mark,
        "no client cert",
        handshake(HandshakeFailure::NoClientCertificate),
    )
    .await;

    // A certificate from a foreign CA with the right CN.
    let foreign_ca = CertificateAuthority::generate("foreign CA", SystemTime::now()).unwrap();
    let foreign = foreign_ca
        .issue_device(
            "dev-1",
            KeyAlgorithm::EcdsaP256,
            Validity::days_from(SystemTime::now(), 1),
        )
        .unwrap();
    let mut foreign_creds = creds.clone();
    foreign_creds.cert_pem = foreign.cert_pem;
    foreign_creds.key_pem = foreign.key_pem.unwrap();
    let foreign_files = write_creds(dir.path(), &foreign_creds, "foreign");
    let mark = hub.journal().len();
    refused(&hub, &foreign_files, "dev-1").await;
    expect_entry(
        &hub,
        mark,
        "foreign CA",
        handshake(HandshakeFailure::UnknownIssuer),
    )
    .await;

    // An expired certificate from the right CA.
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    let expired = hub
        .issue_certificate(
            "dev-1",
            KeyAlgorithm::EcdsaP256,
            Validity {
                not_before: now - 10 * day,
                not_after: now - day,
            },
        )
        .unwrap();
    let expired_files = write_creds(dir.path(), &expired, "expired");
    let mark = hub.journal().len();
    refused(&hub, &expired_files, "dev-1").await;
    expect_entry(
        &hub,
        mark,
        "expired cert",
        handshake(HandshakeFailure::CertificateExpired),
    )
    .await;

    // The right certificate, but a client id that is not its CN.
    hub.register_device("dev-2").unwrap();
    let mark = hub.journal().len();
    refused(&hub, &good, "dev-2").await;
    let e = expect_entry(&hub, mark, "client id mismatch", |e| {
        matches!(e.event, Event::ConnectRefused { .. })
    })
    .await;
    assert!(
        matches!(
            e.event,
            Event::ConnectRefused {
                reason: RefuseReason::ClientIdMismatch,
                ..
            }
        ),
        "{e:?}"
    );

    // And the good one still works after all that.
    let out = run(Command::new("mosquitto_pub")
        .args(mosquitto_args(&hub, &good, "dev-1"))
        .args([
            "-q",
            "1",
            "-t",
            "devices/dev-1/messages/events/",
            "-m",
            "ok",
        ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
