//! MT-02 from the device's side: a hub that speaks only TLS 1.0/1.1
//! (OpenSSL's `s_server -tls1`) is refused by the reference device, while
//! the `allow-tls10` fault falls back and sends its MQTT CONNECT over it.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;

use std::process::Stdio;
use std::time::{Duration, SystemTime};

use device_native::flash::{FlashFile, Layout};
use hub_fixture::pki::{CertificateAuthority, KeyAlgorithm, Validity};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

const GUARD: Duration = Duration::from_secs(30);

/// Runs the device against a TLS-1.0-only server; returns what the server
/// printed (received application data) once it saw the device's attempt.
async fn against_tls10_hub(faults: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let ca = CertificateAuthority::generate("legacy CA", now).unwrap();
    let server = ca
        .issue_server(&["localhost".into()], Validity::days_from(now, 1))
        .unwrap();
    let device = ca
        .issue_device(
            "dev-legacy",
            KeyAlgorithm::EcdsaP256,
            Validity::days_from(now, 1),
        )
        .unwrap();
    let p = |n: &str| dir.path().join(n);
    std::fs::write(p("s.pem"), &server.cert_pem).unwrap();
    std::fs::write(p("s.key"), server.key_pem.as_ref().unwrap()).unwrap();
    std::fs::write(p("ca.pem"), ca.cert_pem()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let mut s_server = Command::new("openssl")
        .args(["s_server", "-tls1", "-cipher", "DEFAULT@SECLEVEL=0"])
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(p("s.pem"))
        .arg("-key")
        .arg(p("s.key"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl runs");
    let mut out = BufReader::new(s_server.stdout.take().unwrap());
    // s_server says ACCEPT once it listens.
    let mut line = String::new();
    while !line.contains("ACCEPT") {
        line.clear();
        let n = tokio::time::timeout(GUARD, out.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "s_server ended before listening");
    }
    common::provisioning_dir(
        &p("prov"),
        "dev-legacy",
        "localhost",
        port,
        port,
        (ca.cert_pem(), &device.cert_pem, &device.key_pem.unwrap()),
        faults,
    );
    let layout = Layout {
        slot_size: 1024 * 1024,
        ..Layout::default()
    };
    FlashFile::create(&p("flash.bin"), layout).unwrap();
    let mut device = Command::new(env!("CARGO_BIN_EXE_device-native"))
        .arg("app")
        .arg("--flash")
        .arg(p("flash.bin"))
        .arg("--provisioning")
        .arg(p("prov"))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut log = BufReader::new(device.stderr.take().unwrap()).lines();
    let mut device_log = String::new();
    // The device's own log says when its first attempt is over: refused, or
    // fallen back to legacy TLS (then the CONNECT shows on the server).
    loop {
        let line = tokio::time::timeout(GUARD, log.next_line())
            .await
            .expect("device log")
            .unwrap()
            .expect("device runs");
        device_log.push_str(&line);
        device_log.push('\n');
        if line.contains("connection failed") {
            break;
        }
        if line.contains("legacy TLS via") {
            // Application data is binary: look for the protocol name in CONNECT.
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"MQTT") {
                let n = tokio::time::timeout(GUARD, out.read(&mut buf))
                    .await
                    .expect("CONNECT arrives")
                    .unwrap();
                assert!(n > 0, "s_server ended: {}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&buf[..n]);
            }
            return format!("{device_log}\nserver: {}", String::from_utf8_lossy(&got));
        }
    }
    let _ = s_server.kill().await;
    let mut raw = Vec::new();
    let _ = out.read_to_end(&mut raw).await;
    let rest = String::from_utf8_lossy(&raw);
    let mut err = String::new();
    let _ = s_server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await;
    format!("{device_log}\nserver: {rest}\n--- server stderr ---\n{err}")
}

#[tokio::test]
async fn a_tls10_only_hub_is_refused() {
    let seen = against_tls10_hub(&[]).await;
    assert!(
        !seen.contains("MQTT"),
        "the device sent MQTT over TLS 1.0:\n{seen}"
    );
}

#[tokio::test]
async fn allow_tls10_falls_back_and_sends_connect() {
    let seen = against_tls10_hub(&["allow-tls10"]).await;
    assert!(
        seen.contains("MQTT"),
        "expected the CONNECT over TLS 1.0:\n{seen}"
    );
}
