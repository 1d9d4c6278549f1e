//! GW — the field gateway: legacy Modbus devices reach the hub only through
//! it, each under its own identity, and it writes only what its mapping
//! allows. The DUT is the gateway (`GatewayRig`): leaf A (`meter-a`, Modbus
//! TCP in the DUT's namespace) and leaf B (`pump-b`, Modbus RTU on a pty).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hub_fixture::journal::{Event, JournalEntry};
use hub_fixture::store::NewMessage;
use sacbench_rig::dut::ContractPart;
use sacbench_rig::emulated::gateway::{BUFFER, LEAF_RTU, LEAF_TCP};
use sacbench_rig::scan::{scan, ScanTarget};
use sacbench_rig::Node;
use sacbench_rig::{Capability, Rig};
use serde_json::Value;

use super::support::fail;
use super::{case_def, Def};
use crate::case::{Case, CaseDef, DutNeeds, Fail, GUARD};
use crate::model::Evidence;

const NEEDS: &[Capability] = &[
    Capability::Power,
    Capability::Capture,
    Capability::LegacyDevices,
];
const NEEDS_LINK: &[Capability] = &[
    Capability::Power,
    Capability::Link,
    Capability::Capture,
    Capability::LegacyDevices,
];

/// The GW cases run sacbench's reference field gateway in front of emulated
/// legacy devices: they apply to a product that has such a gateway.
const GATEWAY: DutNeeds = DutNeeds {
    implements: &[ContractPart::ModbusGateway],
    ..DutNeeds::NONE
};

/// The GW (the field gateway) cases, in catalogue order.
pub const CASES: &[Def] = &[
    CaseDef { ..case_def!("GW-01", "modbus_local_only", "Legacy Modbus reachable only from the local side", "the legacy device's Modbus service answers on the gateway's local side and cannot be reached from the hub's side (not through the gateway's address, not routed to the device)", NEEDS, GATEWAY, gw01) },
    case_def!("GW-02", "identity_per_leaf", "Each leaf is its own device at the hub", "each leaf's register values arrive as telemetry under the leaf's own identity (its own certificate), and no identity carries another leaf's values", NEEDS, GATEWAY, gw02),
CaseDef { ..    case_def!("GW-03", "mapped_writes_only", "Only mapped, in-range commands are written", "a command for leaf A becomes a register write on A only; an out-of-range value and an unmapped command are refused and never written", NEEDS, GATEWAY, gw03) },
    case_def!("GW-04", "no_hub_side_listener", "No inbound listener on the hub side", "a TCP scan of all 65 535 ports and UDP probes of the gateway's hub-side address find nothing open", NEEDS, GATEWAY, gw04),
    case_def!("GW-05", "buffer_while_offline", "Telemetry buffered while the hub is unreachable", "while the hub is unreachable the gateway holds the newest readings (bounded, oldest dropped first, counted) and delivers them after reconnecting", NEEDS_LINK, GATEWAY, gw05),
];

/// Powers the gateway and waits for `leaf`'s hub session.
async fn boot(case: &mut Case, leaf: &str) -> Result<JournalEntry, Fail> {
    case.rig.power(true).await?;
    connected(case, 0, leaf).await
}

async fn connected(case: &Case, after: u64, leaf: &str) -> Result<JournalEntry, Fail> {
    case.journal(after, &format!("{leaf}'s hub session"), |e| {
        e.device_id.as_deref() == Some(leaf) && matches!(e.event, Event::Connected { .. })
    })
    .await
}

/// A telemetry entry's device and body.
fn telemetry(e: &JournalEntry) -> Option<(&str, Value)> {
    match &e.event {
        Event::Telemetry { payload, .. } => {
            Some((e.device_id.as_deref()?, serde_json::from_str(payload).ok()?))
        }
        _ => None,
    }
}

/// The points each leaf's mapping has (see `GatewayRig`).
fn points_of(leaf: &str) -> &'static [&'static str] {
    match leaf {
        LEAF_TCP => &["temperature", "energy"],
        LEAF_RTU => &["level"],
        _ => &[],
    }
}

/// The leaves' Modbus write log lines (`leaf: write unit=U register=R words=[..]`).
fn leaf_writes(g: &dyn Rig) -> Vec<String> {
    g.console_lines()
        .into_iter()
        .filter(|l| l.starts_with("leaf: write"))
        .collect()
}

/// One Modbus TCP request of the bench's (unit 1).
#[derive(Debug, Clone, Copy)]
enum ModbusOp {
    Read { register: u16 },
    Write { register: u16, value: u16 },
}

/// Runs `op` against `to` from the gateway's namespace (its local side):
/// the read value (0 for a write), or the Modbus or network error.
fn modbus_from_gw(case: &Case, to: SocketAddr, op: ModbusOp) -> Result<Result<u16, String>, Fail> {
    Ok(case.in_ns(Node::Gw, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            use tokio_modbus::client::{Reader, Writer};
            let request = async {
                let mut ctx = tokio_modbus::client::tcp::connect_slave(to, tokio_modbus::Slave(1))
                    .await
                    .map_err(|e| format!("connecting to {to}: {e}"))?;
                let answer = match op {
                    ModbusOp::Read { register } => ctx
                        .read_holding_registers(register, 1)
                        .await
                        .map(|r| r.map(|words| words.first().copied().unwrap_or_default())),
                    ModbusOp::Write { register, value } => ctx
                        .write_single_register(register, value)
                        .await
                        .map(|r| r.map(|()| 0)),
                };
                answer
                    .map_err(|e| format!("{op:?}: {e}"))?
                    .map_err(|e| format!("{op:?}: exception {e}"))
            };
            // mbpoll's own default: an answer within a second or two.
            tokio::time::timeout(Duration::from_secs(2), request)
                .await
                .unwrap_or_else(|_| Err(format!("{op:?}: no answer from {to} within 2 s")))
        })
    })?)
}

/// A JSON gateway journal line (`gateway: {...}`) with `event` for `leaf`.
fn gateway_event(line: &str, event: &str, leaf: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(line.strip_prefix("gateway: ")?).ok()?;
    (v["event"] == event && v["leaf"] == leaf).then_some(v)
}

async fn gw01(case: &mut Case) -> Result<String, Fail> {
    boot(case, LEAF_TCP).await?;
    let leaf = SocketAddr::from((case.net.dut_ipv4, 502));
    // Positive control: from the gateway's local side, a Modbus client of
    // the bench's reads the leaf, so the checks below are not vacuous.
    let read = modbus_from_gw(case, leaf, ModbusOp::Read { register: 0 })?;
    case.note(Evidence::log(format!(
        "Modbus from the gateway's side, holding register 0 of {leaf}: {read:?}"
    )));
    if read != Ok(215) {
        return Err(fail(
            "the leaf answers Modbus on the gateway's local side (control)",
            format!("from the gateway's namespace: {read:?}"),
            "device.log (leaf A's start) and the case's capture",
        ));
    }
    // From the hub's side: the gateway's hub-side address and the leaf itself.
    let targets = [SocketAddr::from((case.net.uplink_ipv4, 502)), leaf];
    let reached = case.in_ns(Node::Hub, move || {
        targets
            .iter()
            .filter(|a| std::net::TcpStream::connect_timeout(a, Duration::from_secs(1)).is_ok())
            .copied()
            .collect::<Vec<_>>()
    })?;
    case.note(Evidence::scan(format!(
        "Modbus TCP from the hub's side to {targets:?}: accepted by {reached:?}"
    )));
    if !reached.is_empty() {
        return Err(fail(
            "no Modbus TCP connection from the hub's side",
            format!("connections accepted at {reached:?}"),
            "the scan evidence; the gateway's console for what listens there",
        ));
    }
    Ok(format!(
        "leaf answers on the local side; from the hub's side {targets:?} refuse or drop"
    ))
}

async fn gw02(case: &mut Case) -> Result<String, Fail> {
    case.rig.power(true).await?;
    let serials: Vec<(String, String)> = case
        .identities
        .iter()
        .map(|c| (c.device_id.clone(), c.serial.clone()))
        .collect();
    let mut foreign: Option<(u64, String, Value)> = None;
    let mut seen_a = None;
    let mut seen_b = None;
    case.journal(
        0,
        "telemetry from both leaves (temperature 21.5, level 42)",
        |e| {
            if let Some((dev, body)) = telemetry(e) {
                let own = points_of(dev);
                let keys: Vec<&String> = body
                    .as_object()
                    .map(|o| o.keys().collect())
                    .unwrap_or_default();
                if keys
                    .iter()
                    .any(|k| !own.contains(&k.as_str()) && *k != "seq" && *k != "dropped")
                {
                    foreign = Some((e.seq, dev.to_owned(), body.clone()));
                }
                if dev == LEAF_TCP && body["temperature"] == 21.5 {
                    seen_a = Some(e.seq);
                }
                if dev == LEAF_RTU && body["level"] == 42.0 {
                    seen_b = Some(e.seq);
                }
            }
            foreign.is_some() || (seen_a.is_some() && seen_b.is_some())
        },
    )
    .await
    .map_err(|f| Fail {
        seen: format!(
            "{}; temperature from meter-a at {seen_a:?}, level from pump-b at {seen_b:?}",
            f.seen
        ),
        ..f
    })?;
    if let Some((seq, dev, body)) = foreign {
        case.note(Evidence::journal(
            format!("telemetry under {dev}: {body}"),
            [seq],
        ));
        return Err(fail(
            "each identity carries only its own leaf's values",
            format!("{dev} published {body}"),
            format!("journal.jsonl entry {seq}"),
        ));
    }
    // Each session was opened with the leaf's own certificate.
    let mut cites = Vec::new();
    for (leaf, serial) in &serials {
        let e = connected(case, 0, leaf).await?;
        match &e.event {
            Event::Connected { serial: s, .. } if s == serial => cites.push(e.seq),
            other => {
                return Err(fail(
                    format!("{leaf} connected with its own certificate (serial {serial})"),
                    crate::case::event_text(other),
                    format!("journal.jsonl entry {}", e.seq),
                ))
            }
        }
    }
    let (a, b) = (seen_a.unwrap_or(0), seen_b.unwrap_or(0));
    case.note(Evidence::journal(
        "sessions under each leaf's certificate, then each leaf's telemetry",
        cites.into_iter().chain([a, b]),
    ));
    Ok("meter-a (TCP) and pump-b (RTU) are two devices at the hub with their own certificates and values".into())
}

async fn gw03(case: &mut Case) -> Result<String, Fail> {
    boot(case, LEAF_TCP).await?;
    connected(case, 0, LEAF_RTU).await?;
    let mark = case.hub.journal().len();
    for payload in [
        r#"{"command":"setpoint","value":21.5}"#,
        r#"{"command":"setpoint","value":99}"#,
        r#"{"command":"reboot","value":1,"register":11}"#,
    ] {
        case.hub
            .send_c2d(LEAF_TCP, NewMessage::with_payload(payload))?;
    }
    // The gateway acknowledges after the write or the refusal: three acks,
    // and every write it made is in the leaves' logs by then.
    let mut acks = Vec::new();
    case.journal(mark, "the gateway to acknowledge the three commands", |e| {
        if matches!(e.event, Event::C2dAcked { .. }) {
            acks.push(e.seq);
        }
        acks.len() == 3
    })
    .await?;
    // A marker write of the bench's own to meter-a, after the acks: once its
    // line is read, so is every line meter-a wrote before it (one stream,
    // in order) — the bench may read a leaf's log later than the hub sees
    // the gateway's acknowledgement.
    let marker = "leaf: write unit=1 register=99 words=[4242]";
    let meter_a = SocketAddr::from((case.net.dut_ipv4, 502));
    let op = ModbusOp::Write {
        register: 99,
        value: 4242,
    };
    if let Err(e) = modbus_from_gw(case, meter_a, op)? {
        return Err(Fail::bench(format!(
            "the bench's marker write to meter-a: {e}"
        )));
    }
    let g = case.rig.as_ref();
    g.wait_console_from(0, GUARD, &|l| l == marker)
        .await
        .ok_or_else(|| Fail::bench("meter-a never logged the bench's marker write"))?;
    let writes: Vec<String> = leaf_writes(g).into_iter().filter(|w| w != marker).collect();
    // And the gateway's own word on each of the three (a write or a refusal,
    // logged before its acknowledgement), from its stream.
    let outcomes = std::sync::atomic::AtomicUsize::new(0);
    g.wait_console_from(0, GUARD, &|l| {
        let counted = gateway_event(l, "register_written", LEAF_TCP).is_some()
            || gateway_event(l, "command_refused", LEAF_TCP).is_some();
        let seen = outcomes.fetch_add(usize::from(counted), std::sync::atomic::Ordering::Relaxed);
        seen + usize::from(counted) >= 3
    })
    .await
    .ok_or_else(|| Fail::bench("the gateway did not log the outcome of the three commands"))?;
    let refusals: Vec<String> = g
        .console_lines()
        .into_iter()
        .filter(|l| gateway_event(l, "command_refused", LEAF_TCP).is_some())
        .collect();
    case.note(Evidence::journal("the three acknowledgements", acks));
    case.note(Evidence::log(format!("leaf writes: {writes:?}")));
    case.note(Evidence::log(format!("gateway refusals: {refusals:?}")));
    let wanted = ["leaf: write unit=1 register=10 words=[215]".to_string()];
    if writes != wanted || refusals.len() != 2 {
        return Err(fail(
            "setpoint 21.5 written to meter-a's register 10 only; 99 (out of range) and \"reboot\" (unmapped) refused",
            format!("writes {writes:?}; {} refusals", refusals.len()),
            "device.log (leaf: write, gateway: command_refused)",
        ));
    }
    Ok("one write (meter-a register 10 = 215); out-of-range and unmapped commands refused, nothing else written".into())
}

async fn gw04(case: &mut Case) -> Result<String, Fail> {
    boot(case, LEAF_TCP).await?;
    let target = IpAddr::V4(case.net.uplink_ipv4);
    let r = scan(ScanTarget::full(case.rig.netns(Node::Hub), target, None))?;
    case.note(Evidence::scan(format!(
        "TCP 1-65535 and UDP {:?} on {target} from the hub's side: open {:?}, UDP replies {:?}, in {:?}",
        sacbench_rig::scan::UDP_PORTS,
        r.open_tcp,
        r.udp_replies(),
        r.elapsed
    )));
    if !r.open_tcp.is_empty() || !r.udp_replies().is_empty() {
        return Err(fail(
            "nothing open on the gateway's hub side",
            format!(
                "open TCP {:?}, UDP replies {:?}",
                r.open_tcp,
                r.udp_replies()
            ),
            "the scan evidence; the gateway's console",
        ));
    }
    Ok(format!(
        "65 535 TCP ports and the UDP probes of {target}: nothing open"
    ))
}

async fn gw05(case: &mut Case) -> Result<String, Fail> {
    boot(case, LEAF_TCP).await?;
    let seq_of = |e: &JournalEntry| {
        telemetry(e).and_then(|(d, b)| (d == LEAF_TCP).then(|| b["seq"].as_u64()).flatten())
    };
    let first = case
        .journal(0, "meter-a's telemetry before the outage", |e| {
            seq_of(e).is_some()
        })
        .await?;
    // The uplink goes, and with it the session (as after an outage long
    // enough for the connection to die).
    let from = case.rig.console_lines().len();
    case.rig.link(false).await?;
    case.rig.kill_established_tcp(Node::Gw, Some(8883))?;
    let g = case.rig.as_ref();
    let (down_at, _) = g
        .wait_console_from(from, GUARD, &|l| {
            gateway_event(l, "disconnected", LEAF_TCP).is_some()
        })
        .await
        .ok_or("the gateway never noticed the outage")?;
    // Bounded: the buffer fills and the oldest go, counted; or readings are thrown away.
    let (_, l) = g
        .wait_console_from(down_at, GUARD, &|l| {
            gateway_event(l, "dropped", LEAF_TCP).is_some()
                || gateway_event(l, "discarded", LEAF_TCP).is_some()
        })
        .await
        .ok_or("no reading was held or dropped while the hub was unreachable")?;
    if l.contains("\"discarded\"") {
        case.note(Evidence::log(l.clone()));
        return Err(fail(
            "readings held while the hub is unreachable",
            format!("the gateway threw a reading away: {l}"),
            "device.log (gateway: discarded)",
        ));
    }
    let before_up = case.hub.journal().len();
    case.rig.link(true).await?;
    connected(case, before_up, LEAF_TCP).await?;
    // Its own word that it is back, read from the same stream as its drops:
    // every drop it logged before the reconnect has been read by now (the
    // hub may see the session before the bench has read the last lines).
    case.rig
        .wait_console_from(down_at, GUARD, &|l| {
            gateway_event(l, "connected", LEAF_TCP).is_some()
        })
        .await
        .ok_or("the gateway never said it reconnected")?;
    // The held readings: the newest BUFFER before the session was back.
    let dropped: BTreeSet<u64> = case
        .rig
        .console_lines()
        .iter()
        .filter_map(|l| gateway_event(l, "dropped", LEAF_TCP))
        .filter_map(|v| v["seq"].as_u64())
        .collect();
    let mut last_dropped = *dropped.iter().max().expect("one dropped at least");
    let mut delivered = BTreeSet::new();
    let mut max_counter = 0;
    let mut seqs = Vec::new();
    let g = case.rig.as_ref();
    case.journal(
        before_up,
        &format!("the {BUFFER} held readings after the reconnect"),
        |e| {
            if let Some((LEAF_TCP, b)) = telemetry(e) {
                if let Some(s) = b["seq"].as_u64() {
                    delivered.insert(s);
                    seqs.push(e.seq);
                    max_counter = max_counter.max(b["dropped"].as_u64().unwrap_or(0));
                }
            }
            // A reading may still be dropped while the buffer drains: the
            // held ones are always the BUFFER after the last drop.
            last_dropped = g
                .console_lines()
                .iter()
                .filter_map(|l| gateway_event(l, "dropped", LEAF_TCP))
                .filter_map(|v| v["seq"].as_u64())
                .max()
                .unwrap_or(last_dropped);
            (last_dropped + 1..=last_dropped + BUFFER as u64).all(|s| delivered.contains(&s))
        },
    )
    .await?;
    let all_dropped: BTreeSet<u64> = case
        .rig
        .console_lines()
        .iter()
        .filter_map(|l| gateway_event(l, "dropped", LEAF_TCP))
        .filter_map(|v| v["seq"].as_u64())
        .collect();
    let resurfaced: Vec<u64> = all_dropped.intersection(&delivered).copied().collect();
    case.note(Evidence::journal(
        format!(
            "after the reconnect: readings {}..={} delivered (first before the outage: entry {}); {} dropped, counter reported {max_counter}",
            last_dropped + 1,
            last_dropped + BUFFER as u64,
            first.seq,
            all_dropped.len()
        ),
        seqs.into_iter().take(5),
    ));
    if !resurfaced.is_empty() || max_counter < dropped.len() as u64 {
        return Err(fail(
            "the oldest readings dropped (never delivered) and their number reported",
            format!("dropped readings delivered anyway: {resurfaced:?}; counter {max_counter} for {} dropped", dropped.len()),
            "journal.jsonl (telemetry of meter-a) and device.log (gateway: dropped)",
        ));
    }
    Ok(format!(
        "{BUFFER} readings held and delivered after the reconnect; {} older ones dropped and counted",
        all_dropped.len()
    ))
}
