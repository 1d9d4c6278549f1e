//! The hub's TLS surface seen by OpenSSL's `s_client` (a third-party TLS
//! stack): TLS 1.2 and 1.3 accepted, 1.1 refused, the configured host name
//! verifies, and the hub's key log holds exactly the secrets the client
//! derived — so a capture decrypts with it.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;

use std::collections::BTreeSet;

use common::*;
use hub_fixture::hub::{HubConfig, HubError, HubFixture};
use hub_fixture::journal::{Event, HandshakeFailure};
use tokio::process::Command;

async fn s_client(hub: &HubFixture, files: &CredFiles, extra: &[&str]) -> std::process::Output {
    run(Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(hub.mqtt_addr().to_string())
        .args([
            "-servername",
            hub.host_name(),
            "-verify_hostname",
            hub.host_name(),
        ])
        .args(["-verify_return_error", "-CAfile"])
        .arg(&files.ca)
        .arg("-cert")
        .arg(&files.cert)
        .arg("-key")
        .arg(&files.key)
        .args(extra))
    .await
}

fn lines(path: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_handshakes_and_the_key_log_matches_the_clients() {
    let dir = tempfile::tempdir().unwrap();
    let hub_keys = dir.path().join("hub-keys.log");
    let mut config = HubConfig::for_tests(dir.path().join("hub"));
    config.host_names = vec!["hub.example.test".into()];
    config.key_log = Some(hub_keys.clone());
    let hub = start_hub_with(config).await;
    assert_eq!(hub.host_name(), "hub.example.test");
    let creds = hub.register_device("dev-1").unwrap();
    let files = write_creds(dir.path(), &creds, "dev-1");

    for (version, flag, expect_label) in [
        ("TLSv1.3", "-tls1_3", "CLIENT_TRAFFIC_SECRET_0"),
        ("TLSv1.2", "-tls1_2", "CLIENT_RANDOM"),
    ] {
        let client_keys = dir.path().join(format!("client-{flag}.log"));
        let mark = hub.journal().len();
        let out = s_client(
            &hub,
            &files,
            &[flag, "-keylogfile", client_keys.to_str().unwrap()],
        )
        .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{version}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("Verify return code: 0 (ok)"), "{stdout}");
        let accepted = expect_entry(&hub, mark, "handshake", |e| {
            matches!(
                e.event,
                Event::TlsAccepted { .. } | Event::HandshakeFailed { .. }
            )
        })
        .await;
        let Event::TlsAccepted {
            tls_version,
            serial,
            ..
        } = accepted.event
        else {
            panic!("{version} handshake refused: {accepted:?}")
        };
        assert_eq!(serial, creds.serial);
        assert!(
            tls_version.contains(&version[5..]),
            "{tls_version} for {version}"
        );

        let client = lines(&client_keys);
        assert!(
            client.iter().any(|l| l.starts_with(expect_label)),
            "{client:?}"
        );
        let hub_lines = lines(&hub_keys);
        let missing: Vec<_> = client.difference(&hub_lines).collect();
        assert!(
            missing.is_empty(),
            "{version}: secrets the hub did not log: {missing:?}"
        );
    }

    // TLS 1.0 and 1.1 are refused as IoT Hub refuses them: alert 70
    // protocol_version on the wire, the version named in the journal.
    for (flag, name) in [("-tls1", "TLS 1.0"), ("-tls1_1", "TLS 1.1")] {
        let mark = hub.journal().len();
        let out = s_client(&hub, &files, &[flag, "-cipher", "DEFAULT@SECLEVEL=0"]).await;
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("alert protocol version"),
            "{flag}: openssl saw no protocol_version alert:\n{stderr}"
        );
        let refused = expect_entry(&hub, mark, "old TLS refusal", |e| {
            matches!(e.event, Event::HandshakeFailed { .. })
        })
        .await;
        match &refused.event {
            Event::HandshakeFailed {
                reason: HandshakeFailure::ProtocolVersion,
                detail,
                ..
            } => assert!(detail.contains(name), "{detail}"),
            other => panic!("{flag}: {other:?}"),
        }
    }

    // A client expecting another host name rejects the hub's certificate.
    let out = run(Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(hub.mqtt_addr().to_string())
        .args([
            "-verify_hostname",
            "other.example.test",
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(&files.ca))
    .await;
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "host name mismatch must fail verification"
    );
    assert!(all.contains("hostname mismatch"), "{all}");
}

#[tokio::test]
async fn the_admin_endpoint_refuses_a_non_loopback_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = HubConfig::for_tests(dir.path());
    config.admin_addr = Some("0.0.0.0:0".parse().unwrap());
    let err = HubFixture::start(config).await.unwrap_err();
    assert!(err.to_string().contains("loopback"), "{err}");
    assert!(
        matches!(err, HubError::Config(_)) || err.to_string().contains("0.0.0.0"),
        "{err:?}"
    );
}
