//! The hostile-input battery, HTTPS surface: EST requests that must not
//! yield a certificate, firmware paths that must not leave the firmware
//! directory, identities that are not enabled devices, malformed and
//! oversize HTTP, a slowloris request head and body, a revoked device on
//! connections opened before. Each gets its precise status (and journal
//! entry where the hub writes one); the good device is served over MQTT and
//! HTTPS after each; RSS stays bounded. (The TLS inputs on the HTTPS port
//! are in hostile_tls.rs, the admin API's in hostile_admin.rs.)
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;
mod hostile;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::GUARD;
use hostile::*;
use hub_fixture::clock::Clock;
use hub_fixture::hub::DeviceCredentials;
use hub_fixture::journal::Event;
use hub_fixture::pki::{KeyAlgorithm, Validity};
use hub_fixture::store::DeviceStatus;
use tokio::io::AsyncWriteExt;

/// The HTTPS header timeout of the slowloris tests.
const HEADER: Duration = Duration::from_millis(1000);

fn b64(bytes: &[u8]) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into_bytes()
}

/// DER of a PKCS#10 CSR for a new key, subject CN `cn` (none if `None`).
fn csr(cn: Option<&str>) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    params.serialize_request(&key).unwrap().der().to_vec()
}

fn reenroll(body: &[u8]) -> Vec<u8> {
    http_request(
        "POST",
        "/.well-known/est/simplereenroll",
        &[("content-type", "application/pkcs10")],
        body,
    )
}

fn get(path: &str) -> Vec<u8> {
    http_request("GET", path, &[], b"")
}

/// What the hub journals for an HTTPS input.
enum Journalled {
    /// `enroll_refused` with a reason holding this text.
    EnrollRefused(&'static str),
    /// `http_refused` for this (decoded) path and status.
    HttpRefused(&'static str, u16),
    /// Nothing of its own: the answer comes from HTTP framing or routing,
    /// before any handler.
    Nothing,
}

struct HttpsCase {
    name: &'static str,
    who: DeviceCredentials,
    request: Vec<u8>,
    status: u16,
    journalled: Journalled,
}

fn https_cases(bench: &Bench) -> Vec<HttpsCase> {
    use Journalled::*;
    let hub = &bench.hub;
    let m = || bench.mallory.clone();
    let c = |name, request, status, journalled| HttpsCase {
        name,
        who: m(),
        request,
        status,
        journalled,
    };
    let mut bad_signature = csr(Some(MALLORY));
    *bad_signature.last_mut().unwrap() ^= 0x01;
    let big = vec![b'A'; 3 << 20];
    let mut chunked = http_request(
        "POST",
        "/.well-known/est/simplereenroll",
        &[("transfer-encoding", "chunked")],
        b"",
    );
    for _ in 0..48 {
        chunked.extend(format!("{:x}\r\n", 64 * 1024).as_bytes());
        chunked.extend([b'A'; 64 * 1024]);
        chunked.extend(b"\r\n");
    }
    chunked.extend(b"0\r\n\r\n");
    let long_header = http_request(
        "GET",
        "/.well-known/est/cacerts",
        &[("x-long", &"a".repeat(512 * 1024))],
        b"",
    );
    let smuggle = b"POST /.well-known/est/simplereenroll HTTP/1.1\r\nhost: localhost\r\n\
        content-length: 4\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n0\r\n\r\n"
        .to_vec();
    hub.register_device("off").unwrap();
    let off = hub
        .issue_certificate(
            "off",
            KeyAlgorithm::EcdsaP256,
            Validity::days_from(hub.clock().now(), 30),
        )
        .unwrap();
    hub.set_device_status("off", DeviceStatus::Disabled)
        .unwrap();
    vec![
        c(
            "EST with a body that is not base64",
            reenroll(b"!!! not base64 !!!"),
            400,
            EnrollRefused("base64"),
        ),
        c(
            "EST with base64 of something that is not a CSR",
            reenroll(&b64(b"hello, hub")),
            400,
            EnrollRefused("PKCS#10"),
        ),
        c(
            "EST with a binary DER CSR (not base64)",
            reenroll(&csr(Some(MALLORY))),
            400,
            EnrollRefused("looks like binary DER"),
        ),
        c(
            "EST with a CSR for the good device's CN",
            reenroll(&b64(&csr(Some(GOOD)))),
            400,
            EnrollRefused("subject"),
        ),
        c(
            "EST with a CSR whose signature does not verify",
            reenroll(&b64(&bad_signature)),
            400,
            EnrollRefused("proof of possession"),
        ),
        c(
            "EST with a CSR without a CN",
            reenroll(&b64(&csr(None))),
            400,
            EnrollRefused("common name"),
        ),
        c(
            "EST with an empty body",
            reenroll(b""),
            400,
            EnrollRefused("the body is empty"),
        ),
        c("EST with a 3 MiB body", reenroll(&big), 413, Nothing),
        c("EST with a 3 MiB chunked body", chunked, 413, Nothing),
        c(
            "GET on simplereenroll",
            get("/.well-known/est/simplereenroll"),
            405,
            Nothing,
        ),
        c(
            "firmware ..%2Fhub.sqlite",
            get("/firmware/..%2Fhub.sqlite"),
            404,
            HttpRefused("/firmware/../hub.sqlite", 404),
        ),
        c(
            "firmware ..%2Fca.key",
            get("/firmware/..%2Fca.key"),
            404,
            HttpRefused("/firmware/../ca.key", 404),
        ),
        c(
            "firmware %2e%2e%2fca.key",
            get("/firmware/%2e%2e%2fca.key"),
            404,
            HttpRefused("/firmware/../ca.key", 404),
        ),
        c(
            "firmware ../ca.key unencoded",
            get("/firmware/../ca.key"),
            404,
            Nothing,
        ),
        c(
            "firmware %2Fetc%2Fpasswd",
            get("/firmware/%2Fetc%2Fpasswd"),
            404,
            HttpRefused("/firmware//etc/passwd", 404),
        ),
        c(
            "firmware ..",
            get("/firmware/.."),
            404,
            HttpRefused("/firmware/..", 404),
        ),
        c(
            "firmware ca.key (in the data directory, not firmware/)",
            get("/firmware/ca.key"),
            404,
            HttpRefused("/firmware/ca.key", 404),
        ),
        c(
            "firmware with a NUL in its name",
            get("/firmware/a%00b"),
            404,
            HttpRefused("/firmware/a\0b", 404),
        ),
        c(
            "an unknown firmware name",
            get("/firmware/none.img"),
            404,
            HttpRefused("/firmware/none.img", 404),
        ),
        c("an unknown path", get("/admin/devices"), 404, Nothing),
        c(
            "bytes that are not HTTP",
            b"\x16\x03\x01garbage\r\n\r\n".to_vec(),
            400,
            Nothing,
        ),
        c("a 512 KiB request header", long_header, 431, Nothing),
        c(
            "both content-length and transfer-encoding",
            smuggle,
            400,
            Nothing,
        ),
        HttpsCase {
            who: bench.hub_ca_credentials("ghost"),
            ..c(
                "cacerts for an unregistered device (hub-CA certificate)",
                get("/.well-known/est/cacerts"),
                403,
                HttpRefused("/.well-known/est/cacerts", 403),
            )
        },
        HttpsCase {
            who: off,
            ..c(
                "cacerts for a disabled device",
                get("/.well-known/est/cacerts"),
                403,
                HttpRefused("/.well-known/est/cacerts", 403),
            )
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_inputs_get_their_status_and_nothing_is_issued_or_served() {
    let bench = Bench::start(|_| {}).await;
    let hub = &bench.hub;
    hub.put_firmware("1.0.0.img", b"image").unwrap();
    let certificates = hub.certificates(MALLORY).unwrap().len();
    let cases = https_cases(&bench);
    let mut failed = Vec::new();
    for case in &cases {
        let what = case.name;
        let mark = hub.journal().len();
        let (peer, answer) = https_exchange(hub, &case.who, &case.request)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        if answer.status != case.status {
            failed.push(format!(
                "{what}: status {} ({answer:?}), not {}",
                answer.status, case.status
            ));
        }
        // Nothing of the data directory leaks into an answer.
        for secret in [&b"PRIVATE KEY"[..], b"SQLite format"] {
            assert!(
                !answer.body.windows(secret.len()).any(|w| w == secret),
                "{what}"
            );
        }
        match case.journalled {
            Journalled::EnrollRefused(has) => {
                let e = expect_peer(hub, mark, peer, what, |e| {
                    matches!(e, Event::EnrollRefused { .. })
                })
                .await;
                assert!(
                    matches!(&e.event, Event::EnrollRefused { reason } if reason.contains(has)),
                    "{what}: {e:?}"
                );
            }
            Journalled::HttpRefused(path, status) => {
                expect_peer(hub, mark, peer, what, |e| {
                    matches!(e, Event::HttpRefused { path: p, status: s, .. } if p == path && *s == status)
                })
                .await;
            }
            Journalled::Nothing => {}
        }
        let served = entries_of(hub, mark, peer)
            .into_iter()
            .filter(|e| {
                matches!(
                    e.event,
                    Event::Enrolled { .. } | Event::Download { .. } | Event::CaCertsServed {}
                )
            })
            .count();
        assert_eq!(served, 0, "{what}: something was served");
        bench.still_served(what).await;
        bench.https_still_served(what).await;
    }
    assert!(failed.is_empty(), "failing inputs:\n{}", failed.join("\n"));
    assert_eq!(
        hub.certificates(MALLORY).unwrap().len(),
        certificates,
        "issued"
    );
    bench.assert_rss_bounded("after the HTTPS battery");
}

/// Revocation holds on connections opened before it: a device whose
/// certificate is revoked gets no new certificate (EST) and no firmware on
/// its open connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_gets_nothing_on_connections_opened_before() {
    let bench = Bench::start(|_| {}).await;
    let hub = &bench.hub;
    hub.put_firmware("1.0.0.img", b"image").unwrap();
    let config = client_config(hub, Some(&bench.mallory));
    let opened = hub.journal().len();
    let (est_peer, est) = tls_connect(hub, hub.https_addr(), config.clone()).await;
    let (fw_peer, fw) = tls_connect(hub, hub.https_addr(), config).await;
    // With TLS 1.3 the client is done before the hub has checked its
    // certificate: "opened before the revocation" means the hub accepted both.
    for (peer, what) in [
        (est_peer, "the EST connection"),
        (fw_peer, "the firmware connection"),
    ] {
        expect_peer(hub, opened, peer, what, |e| {
            matches!(e, Event::TlsAccepted { .. })
        })
        .await;
    }
    let mark = hub.journal().len();
    hub.revoke(&bench.mallory.serial).unwrap();
    for (name, peer, tls, request, path) in [
        (
            "EST after revocation",
            est_peer,
            est,
            reenroll(&b64(&csr(Some(MALLORY)))),
            "/.well-known/est/simplereenroll",
        ),
        (
            "firmware after revocation",
            fw_peer,
            fw,
            get("/firmware/1.0.0.img"),
            "/firmware/1.0.0.img",
        ),
    ] {
        let mut tls = tls.unwrap();
        tls.write_all(&request).await.unwrap();
        let raw = read_until_closed(&mut tls, name).await;
        let answer = parse_http(&raw).unwrap_or_else(|| panic!("{name}: {raw:?}"));
        assert_eq!(answer.status, 403, "{name}: {answer:?}");
        expect_peer(hub, mark, peer, name, |e| {
            matches!(e, Event::HttpRefused { path: p, status: 403, reason } if p == path && reason.contains("revoked"))
        })
        .await;
        let served = entries_of(hub, mark, peer)
            .into_iter()
            .filter(|e| matches!(e.event, Event::Enrolled { .. } | Event::Download { .. }))
            .count();
        assert_eq!(served, 0, "{name}");
        bench.still_served(name).await;
    }
}

/// A hub whose HTTPS header and idle timeouts are [`HEADER`].
async fn slow_bench() -> Bench {
    Bench::start(|c| {
        c.https_header_timeout = HEADER;
        c.https_idle_timeout = HEADER;
    })
    .await
}

/// Sends `first`, then `dribbled` one byte at a time (each byte well within
/// the header timeout; nothing more if empty), and checks the hub cuts the
/// connection at the deadline, journalled as 408; then that the good device
/// is served. An error names a connection still open after the guard.
async fn slow_request(
    bench: &Bench,
    name: &str,
    first: &[u8],
    dribbled: &[u8],
) -> Result<(), String> {
    let hub = &bench.hub;
    let mark = hub.journal().len();
    let (peer, tls) = tls_connect(
        hub,
        hub.https_addr(),
        client_config(hub, Some(&bench.mallory)),
    )
    .await;
    let start = Instant::now();
    let (mut rd, mut wr) = tokio::io::split(tls.unwrap());
    wr.write_all(first).await.unwrap();
    let (got, closed) = tokio::select! {
        _ = async {
            if dribbled.is_empty() {
                std::future::pending::<()>().await
            }
            dribble(&mut wr, dribbled, HEADER / 6).await
        } => unreachable!(),
        read = read_until_closed_or_guard(&mut rd) => read,
    };
    let took = start.elapsed();
    let outcome = if closed {
        assert!(
            took >= HEADER - Duration::from_millis(50) && took < HEADER * 4,
            "{name}: cut after {took:?}"
        );
        assert!(
            got.is_empty() || parse_http(&got).is_some_and(|a| a.status == 408),
            "{name}: {got:?}"
        );
        expect_peer(hub, mark, peer, name, |e| {
            matches!(e, Event::HttpRefused { status: 408, .. })
        })
        .await;
        Ok(())
    } else {
        Err(format!(
            "{name}: still open after {GUARD:?} (header timeout {HEADER:?})"
        ))
    };
    drop((rd, wr));
    bench.still_served(name).await;
    bench.https_still_served(name).await;
    outcome
}

/// A request head dribbled one header line at a time is cut at the header
/// deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_request_head_is_cut_at_the_deadline() {
    let bench = slow_bench().await;
    let head = b"GET /.well-known/est/cacerts HTTP/1.1\r\n";
    slow_request(&bench, "a slowloris request head", head, b"x-a: b\r\n")
        .await
        .unwrap();
    bench.assert_rss_bounded("after a slowloris head");
}

/// A request body dribbled one byte at a time, or announced and never sent,
/// must be cut at a deadline too: else one device certificate holds any
/// number of connections (and their tasks) open for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_or_missing_request_body_is_cut_at_the_deadline() {
    let bench = slow_bench().await;
    let head = b"POST /.well-known/est/simplereenroll HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100000\r\n\r\n";
    let mut failed = Vec::new();
    for (name, dribbled) in [
        ("a slowloris request body", &b"A"[..]),
        ("a body announced and never sent", &b""[..]),
    ] {
        if let Err(e) = slow_request(&bench, name, head, dribbled).await {
            failed.push(e);
        }
    }
    assert!(
        failed.is_empty(),
        "slow clients holding connections:\n{}",
        failed.join("\n")
    );
    bench.assert_rss_bounded("after slow bodies");
}
