//! The device's HTTPS client to the hub (port 443, same mTLS rules as MQTT):
//! EST re-enrolment (RFC 7030) and firmware download with `Range` resume.
//! One connection per request: a device does this rarely, and a fresh
//! connection after a link loss is what resuming needs anyway.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::{Decode, Encode};
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

/// Why an HTTPS exchange with the hub failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpsError {
    /// No connection: TCP connect, host name or TLS handshake failed.
    #[error("connecting to {addr}: {detail}")]
    Connect {
        /// The hub's HTTPS address.
        addr: SocketAddr,
        /// What failed.
        detail: String,
    },
    /// The HTTP exchange broke off or was malformed after connecting (e.g. a
    /// body cut short, a bad `Content-Range`).
    #[error("{path}: {detail}")]
    Transfer {
        /// The request path.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// The hub answered with an unexpected HTTP status.
    #[error("{path}: hub answered {status}: {body}")]
    Status {
        /// The request path.
        path: String,
        /// The HTTP status code.
        status: u16,
        /// The response body (lossy UTF-8): the hub's explanation.
        body: String,
    },
    /// The EST answer is not a base64 certs-only PKCS#7 holding a
    /// certificate.
    #[error("EST response: {0}")]
    Pkcs7(String),
}

/// Where and how to reach the hub over HTTPS.
#[derive(Clone)]
pub struct HubHttps {
    /// The hub's HTTPS address: its host name resolved, the provisioned
    /// HTTPS port.
    pub addr: SocketAddr,
    /// The hub's host name: SNI, certificate name check and `Host` header.
    pub host: String,
    /// The device's TLS client configuration (mTLS with the active
    /// credential, ALPN `http/1.1`).
    pub tls: Arc<rustls::ClientConfig>,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

impl HubHttps {
    async fn connect(&self, path: &str) -> Result<Sender, HttpsError> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| HttpsError::Connect {
                addr: self.addr,
                detail: e.to_string(),
            })?;
        let name = ServerName::try_from(self.host.clone()).map_err(|e| HttpsError::Connect {
            addr: self.addr,
            detail: format!("host name: {e}"),
        })?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| HttpsError::Connect {
                addr: self.addr,
                detail: format!("TLS: {e}"),
            })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| HttpsError::Transfer {
                path: path.into(),
                detail: e.to_string(),
            })?;
        tokio::spawn(conn);
        Ok(sender)
    }

    fn request(&self, method: Method, path: &str, body: Bytes) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host)
            .body(Full::new(body))
            .expect("static request parts")
    }

    /// POST /.well-known/est/simplereenroll with the DER CSR; returns the new
    /// certificate's DER.
    pub async fn simple_reenroll(&self, csr_der: &[u8]) -> Result<Vec<u8>, HttpsError> {
        const PATH: &str = "/.well-known/est/simplereenroll";
        let mut sender = self.connect(PATH).await?;
        let mut req = self.request(Method::POST, PATH, Bytes::from(STANDARD.encode(csr_der)));
        req.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/pkcs10"),
        );
        let transfer = |e: hyper::Error| HttpsError::Transfer {
            path: PATH.into(),
            detail: e.to_string(),
        };
        let resp = sender.send_request(req).await.map_err(transfer)?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(transfer)?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(HttpsError::Status {
                path: PATH.into(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        first_certificate(&body)
    }

    /// GET `path` from byte `from` on, handing each chunk with its offset to
    /// `sink` as it arrives (so a power loss keeps what was written). Returns
    /// the total size of the resource. If the hub ignores the range (200),
    /// the download restarts at 0 and the sink sees offset 0 first.
    pub async fn download(
        &self,
        path: &str,
        from: u64,
        mut sink: impl FnMut(u64, &[u8]) -> Result<(), String>,
    ) -> Result<u64, HttpsError> {
        let mut sender = self.connect(path).await?;
        let mut req = self.request(Method::GET, path, Bytes::new());
        if from > 0 {
            let range = header::HeaderValue::from_str(&format!("bytes={from}-")).expect("ascii");
            req.headers_mut().insert(header::RANGE, range);
        }
        let transfer = |detail: String| HttpsError::Transfer {
            path: path.into(),
            detail,
        };
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| transfer(e.to_string()))?;
        let status = resp.status();
        let (mut offset, total) = match status {
            StatusCode::PARTIAL_CONTENT => {
                let range = resp
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| transfer("206 without Content-Range".into()))?;
                parse_content_range(range)
                    .ok_or_else(|| transfer(format!("bad Content-Range {range:?}")))?
            }
            StatusCode::OK => {
                let len = resp
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .ok_or_else(|| transfer("200 without Content-Length".into()))?;
                (0, len)
            }
            // The whole resource is already here.
            StatusCode::RANGE_NOT_SATISFIABLE => return Ok(from),
            other => {
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                return Err(HttpsError::Status {
                    path: path.into(),
                    status: other.as_u16(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
            }
        };
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| transfer(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                sink(offset, data).map_err(transfer)?;
                offset += data.len() as u64;
            }
        }
        if offset != total {
            return Err(transfer(format!("body ended at byte {offset} of {total}")));
        }
        Ok(total)
    }
}

/// `bytes START-END/TOTAL` → (START, TOTAL).
fn parse_content_range(v: &str) -> Option<(u64, u64)> {
    let rest = v.strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (start, _) = span.split_once('-')?;
    Some((start.parse().ok()?, total.parse().ok()?))
}

/// The first certificate of a base64 certs-only PKCS#7 (RFC 7030 §4.2.3).
fn first_certificate(body: &[u8]) -> Result<Vec<u8>, HttpsError> {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let der = STANDARD
        .decode(compact)
        .map_err(|e| HttpsError::Pkcs7(format!("not base64: {e}")))?;
    let ci = ContentInfo::from_der(&der).map_err(|e| HttpsError::Pkcs7(e.to_string()))?;
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| HttpsError::Pkcs7(e.to_string()))?;
    let certs = sd
        .certificates
        .ok_or_else(|| HttpsError::Pkcs7("no certificates".into()))?;
    certs
        .0
        .iter()
        .find_map(|c| match c {
            CertificateChoices::Certificate(cert) => cert.to_der().ok(),
            _ => None,
        })
        .ok_or_else(|| HttpsError::Pkcs7("no X.509 certificate in the set".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_is_parsed() {
        assert_eq!(parse_content_range("bytes 100-199/1000"), Some((100, 1000)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn garbage_pkcs7_is_an_error_not_a_panic() {
        assert!(first_certificate(b"%%%").is_err());
        assert!(first_certificate(STANDARD.encode(b"hello").as_bytes()).is_err());
    }
}
