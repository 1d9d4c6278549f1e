//! The port scanner of NI-01/02/05/06, run from the gateway's namespace (the
//! bench side of the DUT's link): a TCP connect scan of all 65 535 ports and
//! UDP probes of common service ports, over IPv4 or the DUT's IPv6
//! link-local address.
//!
//! A closed TCP port answers the SYN with RST at once; an open one completes
//! the handshake. Only a dropped SYN (link down, filtered) waits for the
//! per-port timeout, which bounds an answer that never comes — it is not a
//! synchronisation point. UDP: a reply is an open service; ICMP port
//! unreachable (seen as ECONNREFUSED on a connected socket) is closed;
//! silence until the timeout is "no reply".

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use crate::emulated::topology::in_netns;
use crate::RigError;

pub mod probes;

/// UDP ports NI-02 probes (DNS, DHCP, TFTP, NTP, SNMP, SSDP, mDNS, CoAP, BACnet).
pub const UDP_PORTS: [u16; 9] = [53, 67, 69, 123, 161, 1900, 5353, 5683, 47808];

/// What to scan.
#[derive(Debug, Clone)]
pub struct ScanTarget {
    /// Namespace to scan from (the gateway's; `None`: the bench's own).
    pub from_netns: Option<PathBuf>,
    /// The DUT's address (IPv4, or IPv6 link-local with `interface`).
    pub address: IpAddr,
    /// Interface for a link-local IPv6 target (its scope).
    pub interface: Option<String>,
    /// TCP ports to connect-scan (all of 1..=65535 for a full scan).
    pub tcp_ports: std::ops::RangeInclusive<u16>,
    /// UDP ports to probe, each with its protocol's probe where it has one.
    pub udp_ports: Vec<u16>,
    /// How long one port may take to answer.
    pub timeout: Duration,
    /// How many ports are probed at once, TCP and UDP alike (at least 1).
    pub concurrency: usize,
    /// How many times TCP ports that neither accepted nor refused are
    /// probed again, each pass at a sixteenth of the previous concurrency:
    /// a small device drops SYNs that arrive faster than it takes frames
    /// in, as nmap's retransmissions and slower timing allow for. A port
    /// is "unanswered" only when every pass found it silent.
    pub retry_passes: usize,
}

impl ScanTarget {
    /// Every UDP port instead of [`UDP_PORTS`] (each with its protocol's
    /// probe where it has one), as `nmap -sU` scans: where the DUT's ICMP
    /// errors are not rate-limited (the emulated rig), closed ports answer
    /// at once and the scan takes seconds.
    pub fn all_udp(mut self) -> Self {
        self.udp_ports = (1..=65535).collect();
        self
    }

    /// All TCP ports and [`UDP_PORTS`] of `address`, from `from_netns`.
    pub fn full(from_netns: Option<PathBuf>, address: IpAddr, interface: Option<String>) -> Self {
        ScanTarget {
            from_netns,
            address,
            interface,
            tcp_ports: 1..=65535,
            udp_ports: UDP_PORTS.to_vec(),
            timeout: Duration::from_millis(1500),
            concurrency: 512,
            retry_passes: 3,
        }
    }
}

/// A UDP port's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpAnswer {
    /// An application replied (the first bytes).
    Reply(Vec<u8>),
    /// ICMP port unreachable: closed.
    Closed,
    /// Nothing within the timeout.
    NoReply,
}

/// What the scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanReport {
    /// The address scanned.
    pub address: IpAddr,
    /// TCP ports that completed the handshake, ascending.
    pub open_tcp: Vec<u16>,
    /// TCP ports that neither accepted nor refused in time, in every pass.
    pub unanswered_tcp: usize,
    /// TCP ports that answered only when probed again (dropped probes).
    pub retried_tcp: usize,
    /// TCP ports the scanner could not even send to (no route, link down).
    pub unreachable_tcp: usize,
    /// Each probed UDP port's answer.
    pub udp: BTreeMap<u16, UdpAnswer>,
    /// Wall time of the whole scan, TCP and UDP.
    pub elapsed: Duration,
}

impl ScanReport {
    /// The UDP answers in words, e.g. `53 (DNS query): reply hex 5a c1 …;
    /// 69 (TFTP read request): closed` (replies as text or hex): the
    /// well-known ports one by one, any other port that replied, and a count
    /// of the rest.
    pub fn udp_text(&self) -> String {
        let listed =
            |p: &u16, a: &UdpAnswer| UDP_PORTS.contains(p) || matches!(a, UdpAnswer::Reply(_));
        let rest: Vec<&UdpAnswer> = self
            .udp
            .iter()
            .filter(|(p, a)| !listed(p, a))
            .map(|(_, a)| a)
            .collect();
        let mut parts: Vec<String> = self
            .udp
            .iter()
            .filter(|(p, a)| listed(p, a))
            .map(|(port, a)| {
                let what = match a {
                    UdpAnswer::Reply(b) => format!("reply {}", probes::show_reply(b)),
                    UdpAnswer::Closed => "closed".into(),
                    UdpAnswer::NoReply => "no reply".into(),
                };
                format!("{port} ({}): {what}", probes::describe(*port))
            })
            .collect();
        if !rest.is_empty() {
            let closed = rest.iter().filter(|a| ***a == UdpAnswer::Closed).count();
            parts.push(format!(
                "{} other ports: {closed} closed (ICMP port unreachable), {} no reply",
                rest.len(),
                rest.len() - closed
            ));
        }
        parts.join("; ")
    }

    /// UDP ports where an application replied.
    pub fn udp_replies(&self) -> Vec<u16> {
        self.udp
            .iter()
            .filter(|(_, a)| matches!(a, UdpAnswer::Reply(_)))
            .map(|(p, _)| *p)
            .collect()
    }
}

/// Runs the scan on a thread inside `target.from_netns`.
pub fn scan(target: ScanTarget) -> Result<ScanReport, RigError> {
    let netns = target.from_netns.clone();
    in_netns(netns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RigError::Setup(format!("scanner runtime: {e}")))?;
        rt.block_on(run(target))
    })?
}

fn socket_addr(target: &ScanTarget, port: u16) -> Result<SocketAddr, RigError> {
    match (target.address, &target.interface) {
        (IpAddr::V6(a), Some(ifname)) if a.segments()[0] & 0xffc0 == 0xfe80 => {
            let scope = nix::net::if_::if_nametoindex(ifname.as_str())
                .map_err(|e| RigError::Setup(format!("interface {ifname}: {e}")))?;
            Ok(SocketAddr::V6(SocketAddrV6::new(a, port, 0, scope)))
        }
        (a, _) => Ok(SocketAddr::new(a, port)),
    }
}

/// Spawns `probe` into `set` once one of `permits` is free (held until it ends).
async fn spawn_limited<T: Send + 'static>(
    permits: &Arc<Semaphore>,
    set: &mut tokio::task::JoinSet<T>,
    probe: impl std::future::Future<Output = T> + Send + 'static,
) {
    let permit = permits
        .clone()
        .acquire_owned()
        .await
        .expect("semaphore open");
    set.spawn(async move {
        let out = probe.await;
        drop(permit);
        out
    });
}

/// One TCP pass over `ports`, `concurrency` at once: the open ports, the
/// silent ones, and how many could not be sent to.
async fn tcp_pass(
    target: &ScanTarget,
    ports: impl Iterator<Item = u16>,
    concurrency: usize,
) -> Result<(Vec<u16>, Vec<u16>, usize), RigError> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for port in ports {
        let addr = socket_addr(target, port)?;
        let timeout = target.timeout;
        spawn_limited(&permits, &mut tasks, async move {
            (
                port,
                tokio::time::timeout(timeout, TcpStream::connect(addr)).await,
            )
        })
        .await;
    }
    let (mut open, mut silent, mut unreachable) = (Vec::new(), Vec::new(), 0);
    while let Some(done) = tasks.join_next().await {
        match done.map_err(|e| RigError::Setup(format!("scan task: {e}")))? {
            (port, Ok(Ok(_stream))) => open.push(port),
            (_, Ok(Err(e))) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            (_, Ok(Err(_unreachable))) => unreachable += 1,
            (port, Err(_timeout)) => silent.push(port),
        }
    }
    Ok((open, silent, unreachable))
}

async fn run(target: ScanTarget) -> Result<ScanReport, RigError> {
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(target.concurrency.max(1)));
    let (mut open_tcp, mut silent, mut unreachable_tcp) =
        tcp_pass(&target, target.tcp_ports.clone(), target.concurrency).await?;
    let first_silent = silent.len();
    let mut concurrency = target.concurrency;
    for _ in 0..target.retry_passes {
        if silent.is_empty() {
            break;
        }
        concurrency = (concurrency / 16).max(1);
        let (open, still, unreachable) = tcp_pass(
            &target,
            std::mem::take(&mut silent).into_iter(),
            concurrency,
        )
        .await?;
        open_tcp.extend(open);
        silent = still;
        unreachable_tcp += unreachable;
    }
    let unanswered_tcp = silent.len();
    open_tcp.sort_unstable();
    let mut udp = BTreeMap::new();
    let mut probes = tokio::task::JoinSet::new();
    for &port in &target.udp_ports {
        let addr = socket_addr(&target, port)?;
        let timeout = target.timeout;
        spawn_limited(&permits, &mut probes, async move {
            (port, probe_udp(addr, timeout).await)
        })
        .await;
    }
    while let Some(done) = probes.join_next().await {
        let (port, answer) = done.map_err(|e| RigError::Setup(format!("scan task: {e}")))?;
        udp.insert(port, answer);
    }
    Ok(ScanReport {
        address: target.address,
        open_tcp,
        unanswered_tcp,
        retried_tcp: first_silent - unanswered_tcp,
        unreachable_tcp,
        udp,
        elapsed: started.elapsed(),
    })
}

async fn probe_udp(addr: SocketAddr, timeout: Duration) -> UdpAnswer {
    let any: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().expect("addr")
    } else {
        "[::]:0".parse().expect("addr")
    };
    // A DHCP server broadcasts its OFFER to the client port, 68.
    let dhcp = addr.is_ipv4() && addr.port() == 67;
    let sock = match dhcp {
        true => match UdpSocket::bind("0.0.0.0:68").await {
            Ok(s) => Ok(s),
            Err(_) => UdpSocket::bind(any).await,
        },
        false => UdpSocket::bind(any).await,
    };
    let Ok(sock) = sock else {
        return UdpAnswer::NoReply;
    };
    if dhcp {
        let _ = sock.set_broadcast(true);
    }
    // A TFTP server answers from a new port (its transfer id): take any
    // reply from the device's address (closed and silent then look alike).
    if addr.port() == 69 {
        let _ = sock.send_to(&probes::payload(69), addr).await;
        let mut buf = [0u8; 512];
        let deadline = tokio::time::Instant::now() + timeout;
        while let Ok(Ok((n, from))) =
            tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await
        {
            if from.ip() == addr.ip() {
                return UdpAnswer::Reply(buf[..n.min(64)].to_vec());
            }
        }
        return UdpAnswer::NoReply;
    }
    if sock.connect(addr).await.is_err() {
        return UdpAnswer::NoReply;
    }
    // The port's own protocol: a real service answers its protocol, not a
    // generic probe. NI-02 asks whether anything replies at all.
    let _ = sock.send(&probes::payload(addr.port())).await;
    let mut buf = [0u8; 512];
    match tokio::time::timeout(timeout, sock.recv(&mut buf)).await {
        Ok(Ok(n)) => UdpAnswer::Reply(buf[..n.min(64)].to_vec()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => UdpAnswer::Closed,
        _ => UdpAnswer::NoReply,
    }
}
