//! NI — no inbound listeners, outbound only.

use std::net::IpAddr;

use hub_fixture::journal::Event;
use sacbench_rig::scan::{scan, ScanReport, ScanTarget};
use sacbench_rig::{Capability, Node};

use super::{case_def, Def};
use crate::case::{Case, CaseDef, Fail};
use crate::model::Evidence;

const NEEDS: &[Capability] = &[Capability::Power, Capability::Capture];
/// NI-06 scans the address the rig knows.
const NEEDS_V6: &[Capability] = &[
    Capability::Power,
    Capability::Capture,
    Capability::Ipv6LinkLocal,
];
/// NI-03 reads the device's sockets from its process.
const NEEDS_BOARD: &[Capability] = &[
    Capability::Power,
    Capability::Capture,
    Capability::BoardProcess,
];

/// The NI (no inbound listeners) cases, in catalogue order.
pub const CASES: &[Def] = &[
    CaseDef { long: true, ..case_def!("NI-01", "tcp_scan", "No TCP port open (IPv4)", "a TCP scan of all 65 535 ports of the DUT from the bench side, in steady state, finds none open", NEEDS, ni01) },
    CaseDef { long: true, ..case_def!("NI-02", "udp_probes", "No UDP service answers", "UDP probes in each service's protocol (DNS, DHCP, TFTP, NTP, SNMP, SSDP, mDNS, CoAP, BACnet) and, on an emulated board, of every UDP port get no application reply", NEEDS, ni02) },
    case_def!("NI-03", "no_bound_sockets", "No listening or bound service socket", "the device process owns no listening TCP socket and no UDP socket bound to a non-ephemeral port, at boot and in session", NEEDS_BOARD, ni03),
    case_def!("NI-04", "outbound_only_flows", "Every flow opened by the DUT to an allowed peer", "every TCP flow in the capture was opened by the DUT (SYN from the DUT) and goes to the hub or the gateway", NEEDS, ni04),
    CaseDef { long: true, ..case_def!("NI-05", "scan_at_boot", "Nothing open right after power-on", "a scan during the first seconds after power-on finds nothing open", NEEDS, ni05) },
    CaseDef { long: true, ..case_def!("NI-06", "tcp_scan_ipv6", "No TCP port open (IPv6 link-local)", "the TCP scan over the DUT's IPv6 link-local address finds none open", NEEDS_V6, ni06) },
];

fn v4_scan(case: &Case) -> Result<ScanReport, Fail> {
    Ok(scan(ScanTarget::full(
        case.rig.netns(Node::Gw),
        IpAddr::V4(case.net.dut_ipv4),
        None,
    ))?)
}

/// Cites the capture frames that show the open ports: the DUT's SYN/ACK to
/// the scanner's SYN on each (what `tshark -Y frame.number==N` shows).
fn cite_open_ports(case: &mut Case, report: &ScanReport) {
    if report.open_tcp.is_empty() {
        return;
    }
    let Ok(a) = case.analysis() else { return };
    let frames: Vec<(u16, u64)> = a
        .tcp_flows
        .iter()
        .filter(|f| f.server.ip() == report.address && report.open_tcp.contains(&f.server.port()))
        .filter_map(|f| f.syn_ack.map(|s| (f.server.port(), s.number)))
        .collect();
    let text = frames
        .iter()
        .map(|(port, frame)| format!("port {port}: SYN/ACK in frame {frame}"))
        .collect::<Vec<_>>()
        .join("; ");
    case.note(Evidence::frames(
        format!("the DUT accepted connections: {text}"),
        frames.iter().map(|(_, f)| *f),
    ));
}

fn open_fail(what: &str, report: &ScanReport) -> Fail {
    Fail::new(
        format!("no open port {what}"),
        format!(
            "open TCP ports {:?}, UDP replies on {:?} ({})",
            report.open_tcp,
            report.udp_replies(),
            report.udp_text()
        ),
        "the scan evidence; the device log for what opened them",
    )
}

async fn ni01(case: &mut Case) -> Result<String, Fail> {
    // Steady state: the session up and doing its work.
    let c = case.boot().await?;
    case.session_active(c.seq).await?;
    let r = v4_scan(case)?;
    case.note(Evidence::scan(format!(
        "TCP 1-65535 on {}: open {:?}, {} unanswered ({} answered only when probed again), in {:?}",
        r.address, r.open_tcp, r.unanswered_tcp, r.retried_tcp, r.elapsed
    )));
    if !r.open_tcp.is_empty() || r.unanswered_tcp + r.unreachable_tcp > 0 {
        cite_open_ports(case, &r);
        return Err(open_fail("on IPv4", &r));
    }
    Ok(format!("65 535 ports refused in {:?}", r.elapsed))
}

async fn ni02(case: &mut Case) -> Result<String, Fail> {
    case.boot().await?;
    // On an emulated board every UDP port (closed ones answer with ICMP at
    // once); on a lab board the well-known ports, each with its protocol.
    let mut target = ScanTarget::full(
        case.rig.netns(Node::Gw),
        IpAddr::V4(case.net.dut_ipv4),
        None,
    );
    target.tcp_ports = 1..=1;
    if case.rig.capabilities().has(Capability::BoardProcess) {
        target = target.all_udp();
    }
    let r = scan(target)?;
    case.note(Evidence::scan(format!("UDP probes: {}", r.udp_text())));
    if !r.udp_replies().is_empty() {
        return Err(open_fail("for UDP", &r));
    }
    let closed = r
        .udp
        .values()
        .filter(|a| **a == sacbench_rig::scan::UdpAnswer::Closed)
        .count();
    Ok(format!(
        "{} UDP ports probed, none replied ({closed} closed: ICMP port unreachable)",
        r.udp.len()
    ))
}

/// Listening TCP or bound UDP sockets of the DUT's network namespace on
/// non-ephemeral ports (from `/proc/<pid>/net/*`, the namespace's tables).
/// `Err` when a table cannot be read: the case then knows nothing (an
/// `error`), never "nothing bound".
fn bound_sockets(pid: u32) -> Result<Vec<String>, Fail> {
    let mut found = Vec::new();
    for (table, listen_state) in [
        ("tcp", Some("0A")),
        ("tcp6", Some("0A")),
        ("udp", None),
        ("udp6", None),
    ] {
        let path = format!("/proc/{pid}/net/{table}");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Fail::bench(format!("reading the DUT's socket table {path}: {e}")))?;
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (f.get(1), f.get(3)) else {
                continue;
            };
            let port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
                .unwrap_or(0);
            let bound = match listen_state {
                Some(l) => *state == l,
                // An ephemeral port (32768-60999) is what an outbound UDP socket gets.
                None => !(32768..=60999).contains(&port),
            };
            if bound {
                found.push(format!("{table} port {port}"));
            }
        }
    }
    Ok(found)
}

async fn ni03(case: &mut Case) -> Result<String, Fail> {
    case.rig.power(true).await?;
    // At boot: as soon as the bootloader has started the firmware.
    let pid = case.rig.board_pid().ok_or("no board process")?;
    let at_boot = bound_sockets(pid)?;
    case.boot_wait().await?;
    let in_session = bound_sockets(pid)?;
    case.note(Evidence::note(format!(
        "sockets at boot: {at_boot:?}; in session: {in_session:?}"
    )));
    if !at_boot.is_empty() || !in_session.is_empty() {
        return Err(Fail::new(
            "no listening or bound service socket in the device's namespace",
            format!("at boot {at_boot:?}, in session {in_session:?}"),
            "the device log for the component that opened them",
        ));
    }
    Ok("no listening or bound socket at boot or in session".into())
}

async fn ni04(case: &mut Case) -> Result<String, Fail> {
    case.boot().await?;
    // Let the device do what it does: a session doing application work.
    case.session_active(0).await?;
    let (dut, hub, gw) = (
        IpAddr::V4(case.net.dut_ipv4),
        IpAddr::V4(case.net.hub_ipv4),
        IpAddr::V4(case.net.first_hop_ipv4),
    );
    let a = case.analysis()?.clone();
    let mut bad = Vec::new();
    for f in &a.tcp_flows {
        let opened_by_dut = f.client.ip() == dut && !f.syns.is_empty();
        let allowed = f.server.ip() == hub || f.server.ip() == gw;
        if !opened_by_dut || !allowed {
            bad.push((format!("{} → {}", f.client, f.server), f.first_frame.number));
        }
    }
    let frames: Vec<u64> = a
        .tcp_flows
        .iter()
        .filter_map(|f| f.syns.first().map(|s| s.number))
        .collect();
    case.note(Evidence::frames(
        format!("{} TCP flows, first SYNs", a.tcp_flows.len()),
        frames,
    ));
    if a.tcp_flows.is_empty() {
        return Err(Fail::new(
            "TCP flows of the device in the capture",
            "no TCP flow captured",
            "capture.pcapng",
        ));
    }
    if !bad.is_empty() {
        let refs = bad.iter().map(|(_, n)| *n);
        case.note(Evidence::frames(
            format!("flows not opened by the DUT or to another peer: {bad:?}"),
            refs,
        ));
        return Err(Fail::new(
            "every TCP flow opened by the DUT, to the hub or the gateway",
            format!(
                "{} other flows: {:?}",
                bad.len(),
                bad.iter().map(|(f, _)| f).collect::<Vec<_>>()
            ),
            format!(
                "capture.pcapng, frames {:?}",
                bad.iter().map(|(_, n)| n).collect::<Vec<_>>()
            ),
        ));
    }
    Ok(format!(
        "{} flows, all opened by the DUT to the hub",
        a.tcp_flows.len()
    ))
}

async fn ni05(case: &mut Case) -> Result<String, Fail> {
    let mark = case.hub.journal().len();
    case.rig.power(true).await?;
    // The device's first TLS handshake with the hub: it has started, its
    // first seconds run now (seen from outside, whatever the firmware).
    case.journal(mark, "the device to reach the hub after power-on", |e| {
        matches!(
            e.event,
            Event::TlsAccepted { .. } | Event::HandshakeFailed { .. }
        )
    })
    .await?;
    // The ports services listen on first (below 10 000: 23, 80, 2323,
    // 8080 …), then the rest: the whole scan takes seconds, longer on a
    // loaded machine, and what a device opens only while it boots must be
    // probed while it boots.
    let full = ScanTarget::full(
        case.rig.netns(Node::Gw),
        IpAddr::V4(case.net.dut_ipv4),
        None,
    );
    let first = ScanTarget {
        tcp_ports: 1..=9_999,
        ..full.clone()
    };
    let rest = ScanTarget {
        tcp_ports: 10_000..=65_535,
        udp_ports: Vec::new(),
        ..full
    };
    let mut elapsed = Vec::new();
    for target in [first, rest] {
        let ports = target.tcp_ports.clone();
        let r = scan(target)?;
        case.note(Evidence::scan(format!(
            "scan of TCP {}–{} right after power-on: open {:?} in {:?}",
            ports.start(),
            ports.end(),
            r.open_tcp,
            r.elapsed
        )));
        // As NI-01: a port that neither accepts nor refuses is not "closed".
        if !r.open_tcp.is_empty() || r.unanswered_tcp + r.unreachable_tcp > 0 {
            cite_open_ports(case, &r);
            return Err(open_fail("in the first seconds after power-on", &r));
        }
        elapsed.push(r.elapsed);
    }
    Ok(format!(
        "nothing open in the scan right after boot (ports 1–9 999 in {:?}, the rest in {:?})",
        elapsed[0], elapsed[1]
    ))
}

async fn ni06(case: &mut Case) -> Result<String, Fail> {
    case.boot().await?;
    let (v6, scope) = case
        .rig
        .dut_addresses()
        .ipv6_link_local
        .ok_or("the rig has no DUT IPv6 link-local address (dut.ipv6_link_local)")?;
    let target = ScanTarget::full(
        case.rig.netns(Node::Gw),
        IpAddr::V6(v6),
        Some(scope.clone()),
    );
    let r = scan(target)?;
    case.note(Evidence::scan(format!(
        "TCP 1-65535 on {v6}%{scope}: open {:?}",
        r.open_tcp
    )));
    if !r.open_tcp.is_empty() || r.unanswered_tcp + r.unreachable_tcp > 0 {
        cite_open_ports(case, &r);
        return Err(open_fail("over IPv6", &r));
    }
    Ok(format!(
        "65 535 ports refused over IPv6 link-local in {:?}",
        r.elapsed
    ))
}
