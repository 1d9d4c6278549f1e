//! The services the machine asks of the shell, beyond the MQTT transport:
//! key generation and CSR encoding (crypto), EST and firmware download
//! (HTTPS, in background tasks whose results come back as [`Background`]),
//! the secondary slot and the boot trailers (flash). No decisions here:
//! each action is carried out as given and answered.

use device_core::device::{Action, Event};
use device_core::keystore::{KeyAlg, PrivateKey};

use super::{now_ms, Background, Shell};
use crate::device_log;
use crate::flash::Region;
use crate::https::{HttpsError, HubHttps};

impl Shell {
    /// Carries out an action other than transport, persistence and logs.
    pub(super) fn service(&mut self, action: Action) -> anyhow::Result<()> {
        match action {
            Action::GenerateKey { .. } => {
                let event = match rcgen::KeyPair::generate() {
                    Ok(key) => Event::KeyGenerated(PrivateKey {
                        alg: KeyAlg::EcdsaP256,
                        pkcs8_der: key.serialize_der(),
                    }),
                    Err(e) => Event::KeyGenerationFailed {
                        reason: e.to_string(),
                    },
                };
                self.device.handle(now_ms(), event);
            }
            Action::BuildCsr {
                key,
                common_name,
                include_private_key,
            } => {
                let csr = build_csr(&common_name, &key.pkcs8_der, include_private_key)
                    .map_err(|e| e.to_string());
                self.device.handle(now_ms(), Event::CsrBuilt(csr));
            }
            Action::PostSimpleReenroll { csr_der } => {
                let https = self.https()?;
                let tx = self.bg_tx.clone();
                tokio::spawn(async move {
                    let result = https.simple_reenroll(&csr_der).await.map_err(|e| match e {
                        HttpsError::Status { status, body, .. } => (status, body),
                        other => (0, other.to_string()),
                    });
                    let _ = tx.send(Background::Enrolled(result));
                });
            }
            Action::StartDownload {
                path,
                offset,
                cleartext,
            } => self.start_download(path, offset, cleartext)?,
            Action::AbortDownload => {
                if let Some(h) = self.download.take() {
                    h.abort();
                }
            }
            Action::EraseSecondary => {
                let size = self.flash.size(Region::Secondary);
                self.flash.erase(Region::Secondary, 0, size)?;
            }
            Action::WriteSecondary { offset, data } => {
                self.flash
                    .write(Region::Secondary, u64::from(offset), &data)?;
            }
            Action::ReadSecondary { len } => {
                let bytes = self.flash.read(Region::Secondary, 0, len as usize)?;
                self.device.handle(now_ms(), Event::SecondaryRead(&bytes));
            }
            Action::MarkTestBoot => device_core::boot::request_test(&mut self.flash)?,
            Action::ConfirmImage => device_core::boot::confirm(&mut self.flash)?,
            other => device_log!("app: shell: unexpected action {other:?}"),
        }
        Ok(())
    }

    /// Results of the background tasks, as events.
    pub(super) fn background(&mut self, bg: Background) {
        let now = now_ms();
        match bg {
            Background::Enrolled(Ok(cert_der)) => {
                let (not_before_ms, not_after_ms) = super::validity_ms(&cert_der);
                self.device.handle(
                    now,
                    Event::Enrolled {
                        cert_der,
                        not_after_ms,
                        not_before_ms,
                    },
                );
            }
            Background::Enrolled(Err((0, reason))) => {
                self.device.handle(now, Event::EnrollFailed { reason })
            }
            Background::Enrolled(Err((status, reason))) => self
                .device
                .handle(now, Event::EnrollRefused { status, reason }),
            Background::Chunk { offset, data } => self.device.handle(
                now,
                Event::DownloadChunk {
                    offset,
                    data: &data,
                },
            ),
            Background::DownloadEnded(r) => {
                let r = r.as_ref().map(|_| ()).map_err(String::as_str);
                self.device.handle(now, Event::DownloadEnded(r))
            }
        }
    }

    fn https(&self) -> anyhow::Result<HubHttps> {
        Ok(HubHttps {
            addr: self.prov.hub_https()?,
            host: self.prov.hub_host.clone(),
            tls: self.tls(&[b"http/1.1"])?,
        })
    }

    fn start_download(&mut self, path: String, offset: u64, cleartext: bool) -> anyhow::Result<()> {
        if let Some(h) = self.download.take() {
            h.abort();
        }
        let tx = self.bg_tx.clone();
        if cleartext {
            // Fault ota-over-http (the machine's choice): port 80 of the hub.
            let addr = std::net::SocketAddr::new(self.prov.hub_https()?.ip(), 80);
            let host = self.prov.hub_host.clone();
            self.download = Some(tokio::spawn(async move {
                let r = plain_http_get(addr, &host, &path, offset, &tx).await;
                let _ = tx.send(Background::DownloadEnded(r));
            }));
            return Ok(());
        }
        let https = self.https()?;
        self.download = Some(tokio::spawn(async move {
            let chunks = tx.clone();
            let r = https
                .download(&path, offset, |off, data| {
                    chunks
                        .send(Background::Chunk {
                            offset: off,
                            data: data.to_vec(),
                        })
                        .map_err(|_| "device stopped".to_string())
                })
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
            let _ = tx.send(Background::DownloadEnded(r));
        }));
        Ok(())
    }
}

/// Fault `ota-over-http`: the same download over cleartext HTTP.
async fn plain_http_get(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
    from: u64,
    tx: &tokio::sync::mpsc::UnboundedSender<Background>,
) -> Result<(), String> {
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("http://{addr}{path}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, host)
        .header(http::header::RANGE, format!("bytes={from}-"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let mut offset = if resp.status() == http::StatusCode::PARTIAL_CONTENT {
        from
    } else {
        0
    };
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(data) = frame.data_ref() {
            tx.send(Background::Chunk {
                offset,
                data: data.to_vec(),
            })
            .map_err(|_| "device stopped".to_string())?;
            offset += data.len() as u64;
        }
    }
    Ok(())
}

/// A CSR for `CN=device_id` signed with the PKCS#8 key. `leak` (fault
/// `leak-key-in-csr`, decided by the machine) adds the private key as a
/// request extension.
fn build_csr(device_id: &str, pkcs8_der: &[u8], leak: bool) -> anyhow::Result<Vec<u8>> {
    let key = rcgen::KeyPair::try_from(pkcs8_der)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, device_id);
    if leak {
        // A private-arc OID; the value is the PKCS#8 DER, in the clear.
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 55555, 1],
                pkcs8_der.to_vec(),
            ));
    }
    Ok(params.serialize_request(&key)?.der().to_vec())
}
