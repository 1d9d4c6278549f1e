//! Revocation holds for every spelling of a serial, on every surface, at once.
//!
//! Operators paste serials as their tools print them: `openssl x509 -serial`
//! upper-case, `openssl x509 -text` with colons, some with leading zeros or
//! `0x`. For each spelling and each entry point (admin HTTP API, command
//! line, library), revoking a device's certificate must at once close its
//! live MQTT session, refuse new MQTT and HTTPS handshakes, refuse requests on
//! an HTTPS connection opened before the revocation (no EST re-enrolment, no
//! firmware), and be recorded in the store — without a hub restart.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;

use std::net::SocketAddr;

use base64::Engine as _;
use bytes::Bytes;
use common::GUARD;
use http_body_util::{BodyExt, Full};
use hub_fixture::admin::AdminClient;
use hub_fixture::client::{connect_tls, tls_config, ConnectOptions, DeviceClient};
use hub_fixture::hub::{DeviceCredentials, HubConfig, HubFixture};
use hub_fixture::journal::{Event, HandshakeFailure, Listener};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// The spellings of one serial that tools print.
fn spellings(canonical: &str) -> Vec<(&'static str, String)> {
    let octets: Vec<&str> = (0..canonical.len())
        .step_by(2)
        .map(|i| &canonical[i..i + 2])
        .collect();
    vec![
        ("lower-case hex", canonical.to_owned()),
        (
            "upper-case hex (openssl x509 -serial)",
            canonical.to_uppercase(),
        ),
        ("colons (openssl x509 -text)", octets.join(":")),
        ("upper-case with colons", octets.join(":").to_uppercase()),
        ("leading zero octets", format!("0000{canonical}")),
        ("0x prefix", format!("0x{}", canonical.to_uppercase())),
    ]
}

#[derive(Debug, Clone, Copy)]
enum EntryPoint {
    AdminApi,
    CommandLine,
    Library,
}

async fn start() -> (tempfile::TempDir, HubFixture) {
    let dir = tempfile::tempdir().unwrap();
    let config = HubConfig {
        admin_addr: Some("127.0.0.1:0".parse().unwrap()),
        ..HubConfig::for_tests(dir.path())
    };
    let hub = HubFixture::start(config).await.expect("hub starts");
    (dir, hub)
}

/// An HTTPS connection as the device, kept alive across requests.
async fn https_connection(
    hub: &HubFixture,
    creds: &DeviceCredentials,
) -> Result<SendRequest<Full<Bytes>>, String> {
    let config = tls_config(&creds.ca_pem, Some((&creds.cert_pem, &creds.key_pem)))
        .map_err(|e| e.to_string())?;
    let tls = connect_tls(hub.https_addr(), "localhost", config)
        .await
        .map_err(|e| e.to_string())?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(send)
}

async fn request(
    send: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<(u16, String), String> {
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/pkcs10")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    // One request at a time: the connection must be done with the last one.
    send.ready().await.map_err(|e| e.to_string())?;
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok((
        status,
        String::from_utf8_lossy(&body.to_bytes()).into_owned(),
    ))
}

/// An EST re-enrolment body: a base64 PKCS#10 CSR for `device_id` on a new key.
fn csr(device_id: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, device_id);
    let der = params.serialize_request(&key).unwrap();
    base64::engine::general_purpose::STANDARD
        .encode(der.der())
        .into_bytes()
}

async fn revoke(hub: &HubFixture, via: EntryPoint, spelling: &str) {
    let admin: SocketAddr = hub.admin_addr().unwrap();
    match via {
        EntryPoint::Library => {
            hub.revoke(spelling).unwrap();
        }
        EntryPoint::AdminApi => {
            // Colons and the rest travel percent-encoded in the path.
            let path = format!("/certificates/{}/revoke", spelling.replace(':', "%3A"));
            AdminClient::new(admin)
                .call("POST", &path, None)
                .await
                .unwrap();
        }
        EntryPoint::CommandLine => {
            let out = common::run(
                tokio::process::Command::new(env!("CARGO_BIN_EXE_hub-fixture")).args([
                    "--admin",
                    &admin.to_string(),
                    "revoke",
                    spelling,
                ]),
            )
            .await;
            assert!(
                out.status.success(),
                "hub-fixture revoke {spelling}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

async fn revocation_holds_everywhere(via: EntryPoint) {
    let (_dir, hub) = start().await;
    for (i, (form, _)) in spellings("0a").iter().enumerate() {
        let device = format!("dev-{i}");
        let creds = hub.register_device(&device).unwrap();
        let spelling = spellings(&creds.serial)[i].1.clone();
        let ctx = format!("{via:?}, {form} {spelling:?}");

        let (mut live, _) =
            DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default())
                .await
                .unwrap();
        let mut https = https_connection(&hub, &creds).await.unwrap();
        let (status, _) = request(&mut https, "GET", "/.well-known/est/cacerts", vec![])
            .await
            .unwrap();
        assert_eq!(status, 200, "{ctx}: before the revocation");
        let mark = hub.journal().len();

        revoke(&hub, via, &spelling).await;

        // The store has it, in canonical form.
        let record = &hub.certificates(&device).unwrap()[0];
        assert!(record.revoked_ms.is_some(), "{ctx}: not recorded revoked");
        // The live session is closed at once, journalled as a revocation.
        assert!(
            live.closed_by_hub(GUARD).await,
            "{ctx}: live session stays open"
        );
        common::expect_entry(&hub, mark, "the revoked session's close", |e| {
            matches!(&e.event, Event::RevokedSessionClosed { serial, .. } if *serial == creds.serial)
        })
        .await;
        // New MQTT and HTTPS handshakes are refused as revoked.
        let mark = hub.journal().len();
        let again = DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default()).await;
        assert!(again.is_err(), "{ctx}: a new MQTT connection was accepted");
        common::expect_entry(&hub, mark, "the MQTT handshake refusal", |e| {
            matches!(
                e.event,
                Event::HandshakeFailed {
                    reason: HandshakeFailure::CertificateRevoked,
                    ..
                }
            )
        })
        .await;
        // (TLS 1.3 reports a refused client certificate on the first read.)
        let mark = hub.journal().len();
        let fresh = match https_connection(&hub, &creds).await {
            Err(e) => Err(e),
            Ok(mut send) => request(&mut send, "GET", "/.well-known/est/cacerts", vec![]).await,
        };
        assert!(
            fresh.is_err(),
            "{ctx}: a new HTTPS connection was served: {fresh:?}"
        );
        common::expect_entry(&hub, mark, "the HTTPS handshake refusal", |e| {
            matches!(
                e.event,
                Event::HandshakeFailed {
                    listener: Listener::Https,
                    reason: HandshakeFailure::CertificateRevoked,
                    ..
                }
            )
        })
        .await;
        // The connection opened before the revocation serves nothing more:
        // no certificate for the revoked holder, no firmware.
        let (status, _) = request(&mut https, "GET", "/firmware/any.bin", vec![])
            .await
            .unwrap();
        assert_eq!(status, 403, "{ctx}: firmware answered {status}");
        // Last: the hub may close the connection after refusing an unread body.
        let (status, body) = request(
            &mut https,
            "POST",
            "/.well-known/est/simplereenroll",
            csr(&device),
        )
        .await
        .unwrap();
        assert_eq!(status, 403, "{ctx}: EST answered {status} {body}");
        assert_eq!(
            hub.certificates(&device).unwrap().len(),
            1,
            "{ctx}: EST issued a certificate to a revoked holder"
        );
    }
    hub.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_through_the_admin_api_holds_for_every_spelling_everywhere() {
    revocation_holds_everywhere(EntryPoint::AdminApi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_from_the_command_line_holds_for_every_spelling_everywhere() {
    revocation_holds_everywhere(EntryPoint::CommandLine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_through_the_library_holds_for_every_spelling_everywhere() {
    revocation_holds_everywhere(EntryPoint::Library).await;
}

/// A serial that is not one is refused with the reason, on both entry points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_serial_is_refused_with_the_reason() {
    let (_dir, hub) = start().await;
    let e = hub.revoke("12:zz").unwrap_err().to_string();
    assert!(e.contains("12:zz") && e.contains("hexadecimal"), "{e}");
    let admin = AdminClient::new(hub.admin_addr().unwrap());
    let e = admin
        .call("POST", "/certificates/xyz/revoke", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("400") && e.contains("xyz"), "{e}");
    hub.shutdown();
}
