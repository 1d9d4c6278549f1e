//! The HTTPS listener does not let an authenticated client hold a connection
//! open for free: a request head must arrive whole within the header timeout
//! (a silent client and a slowloris one are dropped), and a keep-alive
//! connection idle between requests is dropped after the idle timeout.
//! Normal requests, several on one connection, are still served.
//!
//! Timeouts are configured short (hundreds of milliseconds); every wait is
//! on the connection being closed, bounded by the guard.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;

use std::time::{Duration, Instant};

use common::*;
use hub_fixture::client::{connect_tls, tls_config};
use hub_fixture::hub::{HubConfig, HubFixture};
use hub_fixture::journal::Event;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const SHORT: Duration = Duration::from_millis(600);
const LONG: Duration = Duration::from_secs(60);

async fn hub_with(dir: &std::path::Path, header: Duration, idle: Duration) -> HubFixture {
    let mut config = HubConfig::for_tests(dir);
    config.https_header_timeout = header;
    config.https_idle_timeout = idle;
    start_hub_with(config).await
}

/// A TLS connection to the HTTPS listener as device `d` (registered here).
async fn device_connection(hub: &HubFixture) -> TlsStream<TcpStream> {
    let creds = hub.register_device("d").unwrap();
    let config = tls_config(&creds.ca_pem, Some((&creds.cert_pem, &creds.key_pem))).unwrap();
    connect_tls(hub.https_addr(), &creds.hub_host, config)
        .await
        .unwrap()
}

/// Reads until the hub closes the connection (EOF or an error); returns
/// what was read. Panics if it is still open after the guard.
async fn until_closed(s: &mut TlsStream<TcpStream>) -> Vec<u8> {
    let mut got = Vec::new();
    let closing = async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(GUARD, closing)
        .await
        .expect("the hub must close the connection");
    got
}

/// Reads one whole response (head and Content-Length body); returns its
/// status line and body.
async fn response(s: &mut TlsStream<TcpStream>) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let read = async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed before a whole response");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let status = head.lines().next().unwrap_or_default().to_owned();
                    return (status, buf[end + 4..end + 4 + len].to_vec());
                }
            }
        }
    };
    tokio::time::timeout(GUARD, read)
        .await
        .expect("a response in time")
}

const CACERTS: &[u8] = b"GET /.well-known/est/cacerts HTTP/1.1\r\nhost: localhost\r\n\r\n";

async fn timeout_journalled(hub: &HubFixture, reason_has: &str) {
    let reason_has = reason_has.to_owned();
    expect_entry(hub, 0, "the dropped connection (408)", |e| {
        matches!(&e.event, Event::HttpRefused { status: 408, reason, .. } if reason.contains(&reason_has))
    })
    .await;
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_dropped_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_with(dir.path(), SHORT, LONG).await;
    let mut s = device_connection(&hub).await;
    let start = Instant::now();
    let got = until_closed(&mut s).await;
    assert!(got.is_empty(), "no answer to no request");
    assert!(start.elapsed() >= SHORT - Duration::from_millis(100));
    timeout_journalled(&hub, "no request within").await;
}

#[tokio::test]
async fn a_slowloris_client_is_dropped_though_it_keeps_sending_header_lines() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_with(dir.path(), SHORT, LONG).await;
    let s = device_connection(&hub).await;
    let (mut rd, mut wr) = tokio::io::split(s);
    // One header line every quarter of the timeout: never silent for as long
    // as the timeout, never done. The pacing is the attack, not a wait.
    let dribble = async {
        wr.write_all(b"GET /.well-known/est/cacerts HTTP/1.1\r\n")
            .await
            .unwrap();
        for i in 0.. {
            tokio::time::sleep(SHORT / 4).await;
            if wr
                .write_all(format!("x-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                break; // closed under us: the reader sees it too
            }
        }
        std::future::pending::<()>().await
    };
    let closed = async {
        let mut buf = [0u8; 1024];
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => {}
            Ok(_) => panic!("no answer to an unfinished request head"),
        }
    };
    tokio::time::timeout(GUARD, async {
        tokio::select! {
            _ = closed => {}
            _ = dribble => unreachable!("the dribble never ends"),
        }
    })
    .await
    .expect("the hub must close a slowloris connection");
    timeout_journalled(&hub, "request head not complete within").await;
}

#[tokio::test]
async fn requests_on_a_keep_alive_connection_are_served_then_idle_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    // Idle much shorter than the header timeout: the idle one is what closes.
    let hub = hub_with(dir.path(), LONG, SHORT).await;
    let mut s = device_connection(&hub).await;
    for _ in 0..2 {
        s.write_all(CACERTS).await.unwrap();
        let (status, body) = response(&mut s).await;
        assert!(status.contains(" 200 "), "{status}");
        assert!(!body.is_empty());
    }
    let idle_from = Instant::now();
    let got = until_closed(&mut s).await;
    assert!(got.is_empty(), "{got:?}");
    assert!(idle_from.elapsed() >= SHORT - Duration::from_millis(100));
    timeout_journalled(&hub, "idle").await;
}

#[tokio::test]
async fn a_prompt_request_is_served_under_short_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_with(dir.path(), SHORT, SHORT).await;
    let mut s = device_connection(&hub).await;
    s.write_all(CACERTS).await.unwrap();
    let (status, _) = response(&mut s).await;
    assert!(status.contains(" 200 "), "{status}");
    // The next request on the same connection, within the idle timeout.
    s.write_all(CACERTS).await.unwrap();
    let (status, _) = response(&mut s).await;
    assert!(status.contains(" 200 "), "{status}");
}
