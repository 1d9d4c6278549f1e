//! A networked power switch as a labgrid place describes it: a
//! `NetworkPowerPort`. One model is supported, `simplerest` (labgrid's
//! `driver/power/simplerest.py`): switching is an HTTP GET of the port's
//! URL template with `{index}` and `{value}` (`1` on, `0` off) filled in,
//! and any 2xx answer confirms it. Other models are refused by name when
//! the place is resolved.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::config::PowerPortConfig;
use super::switch::PowerSwitch;
use crate::RigError;

/// The one `NetworkPowerPort` model the bench drives.
pub const SIMPLEREST: &str = "simplerest";

/// A `simplerest` power port.
#[derive(Debug, Clone)]
pub struct SimpleRest {
    config: PowerPortConfig,
    timeout: Duration,
}

impl SimpleRest {
    /// `timeout` bounds each request.
    pub fn new(config: PowerPortConfig, timeout: Duration) -> SimpleRest {
        SimpleRest { config, timeout }
    }

    /// The URL that switches to `on`.
    pub fn url(&self, on: bool) -> String {
        self.config
            .url
            .replace("{index}", &self.config.index.to_string())
            .replace("{value}", if on { "1" } else { "0" })
    }
}

#[async_trait::async_trait]
impl PowerSwitch for SimpleRest {
    async fn set(&self, on: bool, purpose: &str) -> Result<(), RigError> {
        let url = self.url(on);
        let what = format!("{purpose}: power port ({SIMPLEREST}) GET {url}");
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| RigError::Setup(format!("{what}: not a URL: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(RigError::Setup(format!(
                "{what}: only http:// URLs (the {SIMPLEREST} model is plain HTTP)"
            )));
        }
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let answer = tokio::time::timeout(self.timeout, async {
            let response = client.get(uri).await?;
            let status = response.status();
            // Read the body to its end: the switch has answered.
            let _ = response.into_body().collect().await;
            Ok::<_, hyper_util::client::legacy::Error>(status)
        })
        .await;
        match answer {
            Err(_) => Err(RigError::Device(format!(
                "{what}: no answer within {} ms",
                self.timeout.as_millis()
            ))),
            Ok(Err(e)) => Err(RigError::Device(format!("{what}: {e}"))),
            Ok(Ok(status)) if status.is_success() => Ok(()),
            Ok(Ok(status)) => Err(RigError::Device(format!("{what}: answered {status}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    /// A one-request HTTP server answering `status`; returns its port and the request line.
    fn serve_once(status: &'static str) -> (u16, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            r.read_line(&mut first).unwrap();
            loop {
                let mut l = String::new();
                r.read_line(&mut l).unwrap();
                if l == "\r\n" || l.is_empty() {
                    break;
                }
            }
            let mut s = s;
            write!(
                s,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            .unwrap();
            first.trim_end().to_owned()
        });
        (port, t)
    }

    fn port(url: String) -> SimpleRest {
        SimpleRest::new(PowerPortConfig { url, index: 3 }, Duration::from_secs(5))
    }

    #[tokio::test]
    async fn switching_is_a_get_of_the_filled_in_url() {
        let (p, server) = serve_once("200 OK");
        let sw = port(format!("http://127.0.0.1:{p}/relay/{{index}}/{{value}}"));
        sw.set(true, "power on").await.unwrap();
        assert_eq!(server.join().unwrap(), "GET /relay/3/1 HTTP/1.1");
        let (p, server) = serve_once("200 OK");
        let sw = port(format!("http://127.0.0.1:{p}/relay/{{index}}/{{value}}"));
        sw.set(false, "power off").await.unwrap();
        assert_eq!(server.join().unwrap(), "GET /relay/3/0 HTTP/1.1");
    }

    #[tokio::test]
    async fn a_refusal_or_https_is_an_error_naming_the_url() {
        let (p, server) = serve_once("500 Internal Server Error");
        let sw = port(format!("http://127.0.0.1:{p}/relay/{{index}}/{{value}}"));
        let e = sw.set(true, "power on").await.unwrap_err().to_string();
        server.join().unwrap();
        assert!(
            e.starts_with(&format!("power on: power port (simplerest) GET http://127.0.0.1:{p}/relay/3/1: answered 500")),
            "{e}"
        );
        let e = port("https://pdu.lab/{index}/{value}".into())
            .set(true, "power on")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("only http:// URLs"), "{e}");
    }
}
