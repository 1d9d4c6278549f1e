//! A case's [`Timeline`] from what the case recorded: the hub journal, the
//! capture's analysis (and its MQTT packets where the key log opens them),
//! the rig's actions, the device's console events, and the evidence. Pure:
//! the case's IO shell (`crate::timeline_record`) gathers the sources.

use hub_fixture::journal::{CloseReason, Event, JournalEntry};
use sacbench_capture::analysis::{cipher_suite_name, TlsHandshake};
use sacbench_capture::{Analysis, FrameRef, TcpFlow};

use super::timeline::{Lane, Timeline, TimelineEvent};
use crate::model::{Evidence, EvidenceKind};

/// Tooltips longer than this are cut (a telemetry payload, a long detail).
const DETAIL_MAX: usize = 240;

/// An MQTT packet read from a decrypted flow of the capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttPacket {
    /// The frame the packet's last byte arrived in.
    pub frame: u64,
    /// Sent by the client (the device) to the hub.
    pub to_server: bool,
    /// The packet type: `CONNECT`, `PUBLISH`, ...
    pub name: String,
    /// What else it says (topic, packet id, return code).
    pub detail: String,
}

/// Something the bench did to the device through its rig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RigAction {
    /// When it began, µs on the case's axis.
    pub at_us: u64,
    /// When it returned.
    pub end_us: u64,
    /// `power on`, `link down`, `flash v1.img`, ...
    pub what: String,
    /// The rig's error, if the action failed.
    pub error: Option<String>,
}

/// A timestamped line of the device (wall clock, as the rig stamps it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampedLine {
    /// ns since the Unix epoch.
    pub at_ns: u64,
    /// The DUT file's event name this line is (`command_applied`), or the
    /// rig's note.
    pub name: String,
    /// The line.
    pub text: String,
}

/// Everything a case's timeline is made of.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// Wall clock at the axis's zero, ns since the Unix epoch.
    pub origin_unix_ns: u64,
    /// How long the case ran, µs.
    pub duration_us: u64,
    /// The hub journal's entries.
    pub journal: &'a [JournalEntry],
    /// Axis time of the journal's `mono_us` zero: axis µs = `mono_us` + this.
    pub journal_offset_us: i64,
    /// The capture's analysis, if it was analysed.
    pub analysis: Option<&'a Analysis>,
    /// Each frame's capture time (ns since the Unix epoch), frame 1 first.
    pub frame_times_ns: &'a [u64],
    /// MQTT packets of the decrypted flows.
    pub mqtt: &'a [MqttPacket],
    /// The rig's actions.
    pub rig: &'a [RigAction],
    /// The rig's own notes (a reset it saw).
    pub rig_notes: &'a [StampedLine],
    /// The device's declared console events.
    pub dut: &'a [StampedLine],
    /// The evidence the verdict cites.
    pub evidence: &'a [Evidence],
}

/// Builds the timeline of `s`, the evidence's frames and journal entries
/// marked (a cited frame no other event stands for gets its own), and
/// compacted.
pub fn build(s: &Sources<'_>) -> Timeline {
    let wall = |ns: u64| ns.saturating_sub(s.origin_unix_ns) / 1_000;
    let frame_us = |f: u64| {
        s.frame_times_ns
            .get((f as usize).wrapping_sub(1))
            .map(|ns| wall(*ns))
    };
    let mut events = Vec::new();
    for e in s.journal {
        let at = (e.mono_us as i64)
            .saturating_add(s.journal_offset_us)
            .max(0) as u64;
        events.push(journal_event(e, at));
    }
    if let Some(a) = s.analysis {
        for f in &a.tcp_flows {
            flow_events(f, &wall, &mut events);
        }
        for u in &a.udp_exchanges {
            let mut e = TimelineEvent::new(
                Lane::Network,
                wall(u.first_request.time_ns),
                "UDP",
                format!(
                    "UDP {} → {}: {} datagrams, {} replies",
                    u.client, u.server, u.requests, u.replies
                ),
            )
            .frames(u.first_request.number, u.first_request.number);
            if let Some(r) = u.first_reply {
                e = e.until(wall(r.time_ns));
            }
            events.push(e);
        }
    }
    for p in s.mqtt {
        let Some(at) = frame_us(p.frame) else {
            continue;
        };
        let dir = if p.to_server {
            "device → hub"
        } else {
            "hub → device"
        };
        events.push(
            TimelineEvent::new(
                Lane::Network,
                at,
                p.name.clone(),
                format!("MQTT {} ({dir}) {}", p.name, p.detail),
            )
            .frames(p.frame, p.frame),
        );
    }
    for a in s.rig {
        let detail = match &a.error {
            Some(err) => format!("{} failed: {err}", a.what),
            None => format!("{} (took {} ms)", a.what, (a.end_us - a.at_us) / 1000),
        };
        events.push(
            TimelineEvent::new(Lane::Rig, a.at_us, a.what.clone(), detail)
                .until(a.end_us)
                .alarm(a.error.is_some()),
        );
    }
    for n in s.rig_notes {
        let reset = n.text.contains("reset");
        let label = if reset { "reset" } else { "rig note" };
        events
            .push(TimelineEvent::new(Lane::Rig, wall(n.at_ns), label, n.text.clone()).alarm(reset));
    }
    for d in s.dut {
        events.push(TimelineEvent::new(
            Lane::Dut,
            wall(d.at_ns),
            d.name.clone(),
            d.text.clone(),
        ));
    }
    cite(&mut events, s.evidence, &frame_us);
    for e in &mut events {
        e.detail = cut(&e.detail);
    }
    let mut t = Timeline::new(s.origin_unix_ns, s.duration_us, events);
    t.compact();
    t
}

/// Marks the events the evidence cites; a cited frame that no event stands
/// for gets one (`frame N`).
fn cite(
    events: &mut Vec<TimelineEvent>,
    evidence: &[Evidence],
    frame_us: &dyn Fn(u64) -> Option<u64>,
) {
    for (i, ev) in evidence.iter().enumerate() {
        for r in &ev.refs {
            let hit = |e: &TimelineEvent| match ev.kind {
                EvidenceKind::Frames => e.frames.is_some_and(|(a, b)| (a..=b).contains(r)),
                EvidenceKind::Journal => e.seqs.is_some_and(|(a, b)| (a..=b).contains(r)),
                _ => false,
            };
            let mut found = false;
            for e in events.iter_mut().filter(|e| hit(e)) {
                found = true;
                if !e.cites.contains(&i) {
                    e.cites.push(i);
                }
            }
            if !found && ev.kind == EvidenceKind::Frames {
                if let Some(at) = frame_us(*r) {
                    let mut e = TimelineEvent::new(
                        Lane::Network,
                        at,
                        format!("frame {r}"),
                        format!("capture frame {r}"),
                    )
                    .frames(*r, *r);
                    e.cites.push(i);
                    events.push(e);
                }
            }
        }
    }
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(DETAIL_MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// The journal entry as a timeline event: a short label, the entry as
/// `jq` shows it in the tooltip, alarm for refusals and violations.
fn journal_event(e: &JournalEntry, at: u64) -> TimelineEvent {
    use Event::*;
    let (label, alarm) = match &e.event {
        HandshakeFailed { reason, .. } => (format!("TLS refused: {}", snake(reason)), true),
        TlsAccepted { tls_version, .. } => (format!("TLS accepted ({tls_version})"), false),
        ConnectRefused { reason, .. } => (format!("CONNECT refused: {}", snake(reason)), true),
        SessionClosed { reason, .. } => (
            format!("closed: {}", snake(reason)),
            abnormal_close(*reason),
        ),
        AclViolation { action, .. } => (format!("ACL violation ({action})"), true),
        C2dRefused { .. } | EnrollRefused { .. } => (words(&e.event.kind()), true),
        C2dDelivered { delivery_count, .. } if *delivery_count > 1 => {
            ("C2D redelivered".to_string(), false)
        }
        Feedback { status, .. } => (format!("feedback: {status}"), status != "success"),
        MethodInvoked { name, .. } => (format!("method {name}"), false),
        MethodResult { name, status, .. } => (format!("method {name}: {status}"), *status >= 400),
        DeviceStatusChanged { status } => (format!("device {status}"), false),
        Enrolled { .. } => ("EST enrolled".to_string(), false),
        CaCertsServed {} => ("EST cacerts".to_string(), false),
        Download { status, .. } => (format!("download {status}"), *status >= 400),
        HttpRefused { status, .. } => (format!("HTTPS refused {status}"), true),
        ClockAdvanced { by_ms, .. } => (format!("clock +{}", human_ms(*by_ms)), false),
        // The others by their kind: `twin_reported` reads "twin reported".
        other => (words(&other.kind()), false),
    };
    let json = serde_json::to_string(&e.event).unwrap_or_else(|_| e.event.kind());
    let detail = format!(
        "journal seq {} (hub virtual time {} ms{}): {json}",
        e.seq,
        e.at_ms,
        e.peer
            .as_deref()
            .map(|p| format!(", peer {p}"))
            .unwrap_or_default()
    );
    TimelineEvent::new(Lane::Hub, at, label, detail)
        .seq(e.seq)
        .alarm(alarm)
}

/// A snake_case kind as words, `C2D` spelt so: `c2d_enqueued` → `C2D enqueued`.
fn words(kind: &str) -> String {
    kind.replace('_', " ").replace("c2d", "C2D")
}

/// A serde enum's snake_case name (`certificate_revoked`).
fn snake(v: &impl serde::Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn abnormal_close(reason: CloseReason) -> bool {
    !matches!(
        reason,
        CloseReason::ClientDisconnect
            | CloseReason::PeerClosed
            | CloseReason::IoError
            | CloseReason::HubShutdown
            | CloseReason::ReplacedBySession
    )
}

fn human_ms(ms: i64) -> String {
    match ms {
        ms if ms % 3_600_000 == 0 => format!("{} h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{} min", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{} s", ms / 1_000),
        ms => format!("{ms} ms"),
    }
}

/// The milestones of one TCP flow: the flow as a span (not citable: other
/// flows' frames interleave with its own), its SYNs, TLS hellos, alerts,
/// first encrypted data, FIN and RST.
fn flow_events(f: &TcpFlow, wall: &dyn Fn(u64) -> u64, out: &mut Vec<TimelineEvent>) {
    let who = format!("{} → {}", f.client, f.server);
    let point = |fr: FrameRef, label: String, detail: String| {
        TimelineEvent::new(
            Lane::Network,
            wall(fr.time_ns),
            label,
            format!("{detail} ({who}, frame {})", fr.number),
        )
        .frames(fr.number, fr.number)
    };
    let packets = f.to_server.packets + f.to_client.packets;
    out.push(
        TimelineEvent::new(
            Lane::Network,
            wall(f.first_frame.time_ns),
            "flow",
            format!(
                "TCP {who}: {packets} packets, {} + {} payload bytes, frames {}–{}",
                f.to_server.payload_bytes,
                f.to_client.payload_bytes,
                f.first_frame.number,
                f.last_frame.number
            ),
        )
        .until(wall(f.last_frame.time_ns)),
    );
    for (i, syn) in f.syns.iter().enumerate() {
        let label = if i == 0 { "SYN" } else { "SYN again" };
        out.push(point(*syn, label.into(), "TCP SYN".into()));
    }
    if let Some(sa) = f.syn_ack {
        out.push(point(sa, "SYN-ACK".into(), "TCP SYN-ACK".into()));
    }
    hello_events(&f.tls, &point, out);
    for (dir, d) in [("device", &f.to_server), ("hub", &f.to_client)] {
        for a in &d.tls.cleartext_alerts {
            out.push(
                point(
                    a.frame,
                    format!("alert {}", a.description),
                    format!(
                        "TLS alert from the {dir}: level {}, description {}",
                        a.level, a.description
                    ),
                )
                .alarm(a.level == 2),
            );
        }
        if let Some(n) = d.tls.not_tls {
            out.push(
                point(
                    n.frame,
                    "not TLS".into(),
                    format!(
                        "bytes from the {dir} that are not TLS records, at stream offset {}",
                        n.stream_offset
                    ),
                )
                .alarm(true),
            );
        }
        if let Some(c) = d.tls.cleartext_application_data {
            out.push(
                point(
                    c,
                    "cleartext data".into(),
                    format!("application data from the {dir} readable on the wire"),
                )
                .alarm(true),
            );
        }
        if let Some(fr) = d.tls.first_application_data {
            out.push(point(fr, "encrypted".into(), format!("first encrypted record from the {dir} (TLS 1.3: its encrypted handshake; TLS 1.2: application data)")));
        }
        if let Some(fr) = d.fin {
            out.push(point(fr, "FIN".into(), format!("TCP FIN from the {dir}")));
        }
        if let Some(fr) = d.rst {
            out.push(point(fr, "RST".into(), format!("TCP RST from the {dir}")));
        }
        if let Some(fr) = d.gap {
            out.push(point(
                fr,
                "capture gap".into(),
                format!("bytes from the {dir} missing from the capture"),
            ));
        }
    }
}

fn hello_events(
    tls: &TlsHandshake,
    point: &dyn Fn(FrameRef, String, String) -> TimelineEvent,
    out: &mut Vec<TimelineEvent>,
) {
    for ch in &tls.client_hellos {
        let versions: Vec<String> = ch.supported_versions.iter().map(|v| version(*v)).collect();
        let detail = format!(
            "TLS ClientHello: SNI {}, versions [{}], {} cipher suites, ALPN [{}]",
            ch.sni.as_deref().unwrap_or("none"),
            if versions.is_empty() {
                version(ch.legacy_version)
            } else {
                versions.join(", ")
            },
            ch.cipher_suites.len(),
            ch.alpn.join(", ")
        );
        out.push(
            point(ch.frames.first, "ClientHello".into(), detail)
                .frames(ch.frames.first.number, ch.frames.last.number),
        );
    }
    for (label, sh) in [
        ("HelloRetryRequest", &tls.hello_retry_request),
        ("ServerHello", &tls.server_hello),
    ] {
        if let Some(sh) = sh {
            let suite = cipher_suite_name(sh.cipher_suite)
                .map_or_else(|| format!("{:#06x}", sh.cipher_suite), str::to_owned);
            out.push(
                point(
                    sh.frames.first,
                    label.into(),
                    format!("TLS {label}: {} {suite}", version(sh.version())),
                )
                .frames(sh.frames.first.number, sh.frames.last.number),
            );
        }
    }
}

fn version(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        v => format!("{v:#06x}"),
    }
}

#[cfg(test)]
#[path = "timeline_build_tests.rs"]
mod tests;
