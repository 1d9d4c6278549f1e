//! Fault `allow-tls10` only: when the hub refuses TLS 1.2/1.3, fall back to
//! a legacy TLS stack that accepts TLS 1.0/1.1 — the downgrade MT-02 must
//! catch. rustls rightly implements no TLS 1.0, so the legacy stack is
//! OpenSSL's `s_client` (at security level 0), with the MQTT session piped
//! through its stdin/stdout. The chain and host name are still verified: the
//! one wrong thing is the protocol version.

use std::net::SocketAddr;
use std::process::Stdio;

use tokio::process::{ChildStdin, ChildStdout, Command};

use device_core::keystore::Credential;
use rustls::pki_types::CertificateDer;

use crate::device_log;

/// rustls' error when the server will not speak TLS 1.2 or 1.3.
pub fn is_version_refusal(e: &std::io::Error) -> bool {
    let Some(tls) = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return false;
    };
    matches!(
        tls,
        rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion)
            | rustls::Error::PeerIncompatible(_)
            | rustls::Error::InvalidMessage(_)
    )
}

/// `s_client` connected to `addr`, its stdio joined into one stream. The
/// temporary credential files live until the process has read them.
pub async fn connect(
    cred: &Credential,
    anchor: &CertificateDer<'_>,
    host: &str,
    addr: SocketAddr,
) -> anyhow::Result<tokio::io::Join<ChildStdout, ChildStdin>> {
    let dir = tempfile::tempdir()?;
    let pem = |label: &str, der: &[u8]| {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    };
    let (cert, key, ca) = (
        dir.path().join("c.pem"),
        dir.path().join("k.pem"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(&cert, pem("CERTIFICATE", &cred.cert.der))?;
    std::fs::write(&key, pem("PRIVATE KEY", &cred.key.pkcs8_der))?;
    std::fs::write(&ca, pem("CERTIFICATE", anchor.as_ref()))?;
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-no_tls1_2",
            "-no_tls1_3",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ])
        .arg("-connect")
        .arg(addr.to_string())
        .args([
            "-servername",
            host,
            "-verify_hostname",
            host,
            "-verify_return_error",
        ])
        .arg("-CAfile")
        .arg(&ca)
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| anyhow::anyhow!("legacy TLS (openssl s_client): {e}"))?;
    device_log!("app: legacy TLS via openssl s_client to {addr}");
    let stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    // The process ends when its stdin closes (session end); reap it then.
    tokio::spawn(async move {
        let _ = child.wait().await;
        drop(dir);
    });
    Ok(tokio::io::join(stdout, stdin))
}
