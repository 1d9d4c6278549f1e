//! The network fault switches of the NI cases: each opens exactly the one
//! thing it names. Without them the device opens no listening or bound
//! socket at all (its only sockets are outbound connections).

use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use device_core::faults::{Fault, FaultSet};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::device_log;

/// `listen-debug`: TCP 2323 on all addresses (IPv6 socket, dual-stack).
pub const DEBUG_PORT: u16 = 2323;
/// `listen-at-boot`: TCP 8080 for the first [`BOOT_LISTEN`] after power-on.
pub const BOOT_PORT: u16 = 8080;
pub const BOOT_LISTEN: Duration = Duration::from_secs(10);
/// `udp-discovery`: CoAP and SSDP ports answered.
pub const DISCOVERY_PORTS: [u16; 2] = [5683, 1900];

fn any(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))
}

async fn serve_banner(listener: TcpListener, banner: &'static [u8]) {
    while let Ok((mut s, peer)) = listener.accept().await {
        device_log!("fault: accepted a connection from {peer}");
        let _ = s.write_all(banner).await;
    }
}

/// Starts the listeners the active faults ask for (at power-on).
pub fn start(faults: FaultSet) {
    if faults.has(Fault::ListenDebug) {
        tokio::spawn(async {
            match TcpListener::bind(any(DEBUG_PORT)).await {
                Ok(l) => {
                    device_log!("fault listen-debug: listening on TCP {DEBUG_PORT}");
                    serve_banner(l, b"debug shell\r\n> ").await
                }
                Err(e) => device_log!("fault listen-debug: bind failed: {e}"),
            }
        });
    }
    if faults.has(Fault::ListenAtBoot) {
        tokio::spawn(async {
            match TcpListener::bind(any(BOOT_PORT)).await {
                Ok(l) => {
                    device_log!(
                        "fault listen-at-boot: listening on TCP {BOOT_PORT} for {BOOT_LISTEN:?}"
                    );
                    let _ = tokio::time::timeout(
                        BOOT_LISTEN,
                        serve_banner(l, b"HTTP/1.0 200 OK\r\n\r\nsetup\r\n"),
                    )
                    .await;
                    device_log!("fault listen-at-boot: closed TCP {BOOT_PORT}");
                }
                Err(e) => device_log!("fault listen-at-boot: bind failed: {e}"),
            }
        });
    }
    if faults.has(Fault::UdpDiscovery) {
        for port in DISCOVERY_PORTS {
            tokio::spawn(async move {
                match UdpSocket::bind(any(port)).await {
                    Ok(sock) => {
                        device_log!("fault udp-discovery: answering on UDP {port}");
                        let mut buf = [0u8; 1500];
                        while let Ok((_, peer)) = sock.recv_from(&mut buf).await {
                            let _ = sock.send_to(b"sacbench-device here", peer).await;
                        }
                    }
                    Err(e) => device_log!("fault udp-discovery: bind {port} failed: {e}"),
                }
            });
        }
    }
}

/// `extra-destination`: one extra outbound TCP connection per session.
pub async fn extra_destination(faults: FaultSet, to: Option<SocketAddr>) {
    if let (true, Some(addr)) = (faults.has(Fault::ExtraDestination), to) {
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
            Ok(Ok(mut s)) => {
                device_log!("fault extra-destination: connected to {addr}");
                let _ = s.write_all(b"telemetry-mirror\r\n").await;
            }
            _ => device_log!("fault extra-destination: could not reach {addr}"),
        }
    }
}
