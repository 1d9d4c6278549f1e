//! EST re-enrolment and firmware download over HTTPS with real third-party
//! clients: a CSR from `openssl req`, the request by `curl`, the PKCS#7
//! answer read by `openssl pkcs7`, and the new certificate used by `mosquitto_pub`.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;

use base64::Engine as _;
use common::*;
use hub_fixture::journal::{Event, HandshakeFailure};
use tokio::process::Command;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn curl(hub: &hub_fixture::hub::HubFixture, files: &CredFiles) -> Command {
    let port = hub.https_addr().port();
    let mut cmd = Command::new("curl");
    cmd.args([
        "--silent",
        "--show-error",
        "--fail",
        "--resolve",
        &format!("localhost:{port}:127.0.0.1"),
        "--cacert",
    ])
    .arg(&files.ca)
    .arg("--cert")
    .arg(&files.cert)
    .arg("--key")
    .arg(&files.key);
    cmd
}

fn url(hub: &hub_fixture::hub::HubFixture, path: &str) -> String {
    format!("https://localhost:{}{path}", hub.https_addr().port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn est_reenrolment_with_openssl_csr_and_the_new_cert_works_for_mqtt() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hub = start_hub(d).await;
    let creds = hub.register_device("dev-7").unwrap();
    let old = write_creds(d, &creds, "dev-7");

    // cacerts: the trust anchor, as PKCS#7 that openssl reads.
    let out = run(curl(&hub, &old).arg(url(&hub, "/.well-known/est/cacerts"))).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text: String = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .collect();
    std::fs::write(d.join("cacerts.p7"), b64().decode(text).unwrap()).unwrap();
    let out = run(Command::new("openssl")
        .args(["pkcs7", "-inform", "DER", "-print_certs", "-in"])
        .arg(d.join("cacerts.p7")))
    .await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("sacbench run CA"));

    // A new key and CSR made by openssl, same subject.
    let out = run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=dev-7",
            "-outform",
            "DER",
            "-keyout",
        ])
        .arg(d.join("new.key"))
        .arg("-out")
        .arg(d.join("new.csr")))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        d.join("body.b64"),
        b64().encode(std::fs::read(d.join("new.csr")).unwrap()),
    )
    .unwrap();

    let mark = hub.journal().len();
    let out = run(curl(&hub, &old)
        .args(["-H", "Content-Type: application/pkcs10", "--data-binary"])
        .arg(format!("@{}", d.join("body.b64").display()))
        .arg(url(&hub, "/.well-known/est/simplereenroll")))
    .await;
    assert!(
        out.status.success(),
        "simplereenroll: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text: String = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .collect();
    std::fs::write(d.join("new.p7"), b64().decode(text).unwrap()).unwrap();
    let out = run(Command::new("openssl")
        .args(["pkcs7", "-inform", "DER", "-print_certs", "-in"])
        .arg(d.join("new.p7"))
        .arg("-out")
        .arg(d.join("new.pem")))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let enrolled = expect_entry(&hub, mark, "enrolment", |e| {
        matches!(e.event, Event::Enrolled { .. })
    })
    .await;
    let Event::Enrolled {
        old_serial,
        new_serial,
        ..
    } = enrolled.event
    else {
        unreachable!()
    };
    assert_eq!(old_serial, creds.serial);

    // The new certificate and key (never sent to the hub) work for MQTT ...
    let new = CredFiles {
        cert: d.join("new.pem"),
        key: d.join("new.key"),
        ca: old.ca.clone(),
    };
    let mark = hub.journal().len();
    let out = run(Command::new("mosquitto_pub")
        .args(mosquitto_args(&hub, &new, "dev-7"))
        .args([
            "-q",
            "1",
            "-t",
            "devices/dev-7/messages/events/",
            "-m",
            "rotated",
        ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let connected = expect_entry(&hub, mark, "connect with new cert", |e| {
        matches!(e.event, Event::Connected { .. })
    })
    .await;
    assert!(matches!(&connected.event, Event::Connected { serial, .. } if *serial == new_serial));
    // ... and once it has had a session, the old one is revoked (contract step 5).
    expect_entry(
        &hub,
        mark,
        "old cert revoked",
        |e| matches!(&e.event, Event::Revoked { serial } if *serial == creds.serial),
    )
    .await;
    let mark = hub.journal().len();
    let out = run(Command::new("mosquitto_pub")
        .args(mosquitto_args(&hub, &old, "dev-7"))
        .args([
            "-q",
            "1",
            "-t",
            "devices/dev-7/messages/events/",
            "-m",
            "old",
        ]))
    .await;
    assert!(!out.status.success());
    expect_entry(&hub, mark, "old cert refused", |e| {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reenrolment_with_another_subject_or_a_refusing_hub_keeps_the_old_credential() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hub = start_hub(d).await;
    let creds = hub.register_device("dev-8").unwrap();
    let files = write_creds(d, &creds, "dev-8");
    let out = run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=someone-else",
            "-outform",
            "DER",
            "-keyout",
        ])
        .arg(d.join("k"))
        .arg("-out")
        .arg(d.join("csr")))
    .await;
    assert!(out.status.success());
    std::fs::write(
        d.join("body"),
        b64().encode(std::fs::read(d.join("csr")).unwrap()),
    )
    .unwrap();
    let post = |cmd: &mut Command| {
        cmd.args(["-H", "Content-Type: application/pkcs10", "--data-binary"])
            .arg(format!("@{}", d.join("body").display()))
            .arg(url(&hub, "/.well-known/est/simplereenroll"));
    };
    let mark = hub.journal().len();
    let mut cmd = curl(&hub, &files);
    post(&mut cmd);
    assert!(
        !run(&mut cmd).await.status.success(),
        "another subject must be refused"
    );
    let e = expect_entry(&hub, mark, "refusal", |e| {
        matches!(e.event, Event::EnrollRefused { .. })
    })
    .await;
    assert!(
        matches!(&e.event, Event::EnrollRefused { reason } if reason.contains("subject")),
        "{e:?}"
    );

    hub.set_refuse_enrollment("dev-8", true);
    let mark = hub.journal().len();
    let mut cmd = curl(&hub, &files);
    post(&mut cmd);
    assert!(!run(&mut cmd).await.status.success());
    expect_entry(&hub, mark, "switch refusal", |e| {
        matches!(e.event, Event::EnrollRefused { .. })
    })
    .await;
    assert_eq!(
        hub.certificates("dev-8").unwrap().len(),
        1,
        "no certificate was issued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_download_supports_range_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hub = start_hub(d).await;
    let creds = hub.register_device("dev-9").unwrap();
    let files = write_creds(d, &creds, "dev-9");
    let image: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    hub.put_firmware("1.4.0.img", &image).unwrap();

    // A ranged request gets exactly that slice with 206.
    let mark = hub.journal().len();
    let out = run(curl(&hub, &files)
        .args(["-r", "1000-1999", "-o"])
        .arg(d.join("part"))
        .arg(url(&hub, "/firmware/1.4.0.img")))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(d.join("part")).unwrap(), &image[1000..2000]);
    let e = expect_entry(&hub, mark, "download", |e| {
        matches!(e.event, Event::Download { .. })
    })
    .await;
    assert!(
        matches!(
            &e.event,
            Event::Download {
                status: 206,
                bytes: 1000,
                ..
            }
        ),
        "{e:?}"
    );
    // Its end, whole: the 1000 bytes handed over.
    let e = expect_entry(&hub, e.seq, "download_ended", |e| {
        matches!(e.event, Event::DownloadEnded { .. })
    })
    .await;
    assert!(
        matches!(
            &e.event,
            Event::DownloadEnded {
                sent: 1000,
                complete: true,
                ..
            }
        ),
        "{e:?}"
    );

    // Resume: a file holding the first 50 000 bytes is completed with -C -.
    std::fs::write(d.join("full"), &image[..50_000]).unwrap();
    let out = run(curl(&hub, &files)
        .args(["-C", "-", "-o"])
        .arg(d.join("full"))
        .arg(url(&hub, "/firmware/1.4.0.img")))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(d.join("full")).unwrap(), image);

    // Unknown image: 404, journalled.
    let out = run(curl(&hub, &files).arg(url(&hub, "/firmware/none.img"))).await;
    assert!(!out.status.success());
}

/// The slow-link switch: a download comes whole and in order (a range too),
/// no faster than the rate asked for — every chunk of a twentieth of it waits
/// 50 ms, so 60 000 bytes at 100 000 B/s cannot take under 0.55 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_download_is_whole_and_no_faster_than_the_rate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hub = start_hub(d).await;
    let creds = hub.register_device("dev-8").unwrap();
    let files = write_creds(d, &creds, "dev-8");
    let image: Vec<u8> = (0..60_000u32).map(|i| (i % 251) as u8).collect();
    hub.put_firmware("slow.img", &image).unwrap();
    hub.set_firmware_rate(Some(100_000));
    let started = std::time::Instant::now();
    let out = run(curl(&hub, &files)
        .arg("-o")
        .arg(d.join("slow"))
        .arg(url(&hub, "/firmware/slow.img")))
    .await;
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(d.join("slow")).unwrap(), image);
    assert!(took >= std::time::Duration::from_millis(550), "{took:?}");
    let out = run(curl(&hub, &files)
        .args(["-r", "10000-19999", "-o"])
        .arg(d.join("slow-part"))
        .arg(url(&hub, "/firmware/slow.img")))
    .await;
    assert!(out.status.success());
    assert_eq!(
        std::fs::read(d.join("slow-part")).unwrap(),
        &image[10_000..20_000]
    );
}
