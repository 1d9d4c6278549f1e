//! The gateway's hub side: one mTLS MQTT session per leaf, under the leaf's
//! own identity, speaking the device contract (telemetry out, C2D in) with
//! the hub's own codec (rumqttc's `mqttbytes`, through [`DeviceClient`]).
//!
//! Readings always pass through the leaf's [`TelemetryBuffer`]: while the
//! session is up it is drained at once; while it is down it holds the
//! newest readings (bounded, oldest dropped first). QoS 1 publishes not yet
//! acknowledged when a session dies go back into the buffer, so a reading
//! is delivered at least once unless the bound dropped it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::mqttbytes::v4::{Packet, Publish};
use rumqttc::mqttbytes::QoS;
use serde_json::json;
use tokio::sync::Notify;

use super::applied::AppliedCommands;
use super::buffer::{Pushed, Reading, TelemetryBuffer};
use super::mapping::Leaf;
use super::southbound::Southbound;
use super::{journal, translate, Faults};
use crate::client::{ConnectOptions, DeviceClient};
use crate::hub::DeviceCredentials;
use crate::topics::parse_property_bag;

/// MQTT keep-alive of the leaf sessions: a dead uplink is noticed within 1.5×.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// Reconnect backoff: equal jitter between half and all of min(cap, base·2ⁿ).
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(4);

/// What a leaf's session and its pollers share.
pub struct LeafLink {
    pub leaf: Leaf,
    state: Mutex<LinkState>,
    wake: Notify,
    faults: Faults,
}

struct LinkState {
    connected: bool,
    buffer: TelemetryBuffer,
    next_seq: u64,
}

impl LeafLink {
    pub fn new(leaf: Leaf, capacity: usize, faults: Faults) -> Arc<LeafLink> {
        Arc::new(LeafLink {
            leaf,
            state: Mutex::new(LinkState {
                connected: false,
                buffer: TelemetryBuffer::new(capacity),
                next_seq: 1,
            }),
            wake: Notify::new(),
            faults,
        })
    }

    /// A reading of `leaf` (this link's own, or another's under the
    /// `single-identity` fault) on its way to the hub.
    pub fn offer(&self, leaf: &str, name: &str, value: f64) {
        let mut s = self.state.lock().expect("link lock");
        let seq = s.next_seq;
        s.next_seq += 1;
        let name = if leaf == self.leaf.id {
            name.to_owned()
        } else {
            format!("{leaf}/{name}")
        };
        let reading = Reading { seq, name, value };
        if !s.connected && self.faults.no_buffer {
            journal(json!({"event": "discarded", "leaf": leaf, "seq": seq}));
            return;
        }
        let pushed = s.buffer.push(reading);
        if !s.connected {
            match pushed {
                Pushed::Held { held } => {
                    journal(json!({"event": "buffered", "leaf": leaf, "seq": seq, "held": held}))
                }
                Pushed::DroppedOldest {
                    dropped,
                    total_dropped,
                } => journal(json!({"event": "dropped", "leaf": leaf, "seq": dropped.seq,
                                    "dropped_total": total_dropped})),
                Pushed::Discarded => {}
            }
        }
        drop(s);
        self.wake.notify_one();
    }

    fn set_connected(&self, up: bool) {
        self.state.lock().expect("link lock").connected = up;
    }

    fn take_ready(&self) -> (Vec<Reading>, u64) {
        let mut s = self.state.lock().expect("link lock");
        (s.buffer.drain(), s.buffer.dropped())
    }

    /// Unacknowledged readings back into the buffer, oldest first.
    fn requeue(&self, unacked: Vec<Reading>) {
        let mut s = self.state.lock().expect("link lock");
        let held = s.buffer.drain();
        for r in unacked.into_iter().chain(held) {
            s.buffer.push(r);
        }
    }
}

/// Where the hub is and who the leaf is.
#[derive(Clone)]
pub struct HubTarget {
    pub addr: SocketAddr,
    pub identity: DeviceCredentials,
}

fn telemetry_topic(leaf: &str) -> String {
    format!("devices/{leaf}/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8")
}

/// Runs the leaf's session for ever: connect, serve, and after any loss
/// reconnect with backoff.
pub async fn run_session(
    link: Arc<LeafLink>,
    hub: HubTarget,
    southbound: Arc<Southbound>,
    mut seen: AppliedCommands,
) {
    let id = link.leaf.id.clone();
    let mut attempt = 0u32;
    loop {
        let options = ConnectOptions {
            keep_alive: KEEP_ALIVE.as_secs() as u16,
            ..ConnectOptions::default()
        };
        let connected = tokio::time::timeout(
            Duration::from_secs(10),
            DeviceClient::connect(hub.addr, &hub.identity, options),
        )
        .await;
        match connected {
            Ok(Ok((client, ack)))
                if ack.code == rumqttc::mqttbytes::v4::ConnectReturnCode::Success =>
            {
                attempt = 0;
                journal(json!({"event": "connected", "leaf": id, "hub": hub.addr.to_string()}));
                let why = serve(&link, client, &southbound, &mut seen).await;
                journal(json!({"event": "disconnected", "leaf": id, "reason": why}));
            }
            Ok(Ok((_, ack))) => journal(
                json!({"event": "connect_refused", "leaf": id, "code": format!("{:?}", ack.code)}),
            ),
            Ok(Err(e)) => {
                journal(json!({"event": "connect_failed", "leaf": id, "error": e.to_string()}))
            }
            Err(_) => journal(json!({"event": "connect_failed", "leaf": id, "error": "timed out"})),
        }
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(backoff(attempt)).await;
    }
}

/// Equal jitter; the jitter comes from the clock's nanoseconds (no need for
/// a cryptographic source to spread reconnects).
fn backoff(attempt: u32) -> Duration {
    let full = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_CAP);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    full / 2 + full.mul_f64((nanos % 1000) as f64 / 2000.0)
}

/// One live session; returns why it ended.
async fn serve(
    link: &LeafLink,
    mut client: DeviceClient,
    southbound: &Southbound,
    seen: &mut AppliedCommands,
) -> String {
    let id = link.leaf.id.clone();
    let early = match client.subscribe_c2d(&id).await {
        Ok((_, before)) => before,
        Err(e) => return format!("subscribing to C2D: {e}"),
    };
    link.set_connected(true);
    let mut inflight: BTreeMap<u16, Reading> = BTreeMap::new();
    let mut next_pkid: u16 = 1;
    let mut last_rx = tokio::time::Instant::now();
    let mut ping_out = false;
    let why = 'session: {
        for p in early {
            if let Err(e) = on_packet(link, &mut client, southbound, seen, &mut inflight, p).await {
                break 'session e;
            }
        }
        loop {
            let (ready, dropped) = link.take_ready();
            for r in ready {
                let body = translate::telemetry_body(&r.name, r.value, r.seq, dropped);
                let mut p = Publish::new(telemetry_topic(&id), QoS::AtLeastOnce, body.to_string());
                p.pkid = next_pkid;
                next_pkid = next_pkid.checked_add(1).unwrap_or(1);
                inflight.insert(p.pkid, r);
                if let Err(e) = client.send(Packet::Publish(p)).await {
                    break 'session format!("publishing: {e}");
                }
            }
            // Quiet for a keep-alive period: ping; no answer within half of
            // one more: the link is dead (a flow of PUBACKs counts as life).
            let limit = if ping_out {
                KEEP_ALIVE * 3 / 2
            } else {
                KEEP_ALIVE
            };
            let wait = (last_rx + limit).saturating_duration_since(tokio::time::Instant::now());
            tokio::select! {
                p = client.recv(wait) => match p {
                    Ok(Some(p)) => {
                        last_rx = tokio::time::Instant::now();
                        ping_out = false;
                        if let Err(e) = on_packet(link, &mut client, southbound, seen, &mut inflight, p).await {
                            break 'session e;
                        }
                    }
                    Ok(None) => break 'session "the hub closed the connection".into(),
                    Err(crate::client::ClientError::Timeout(_)) if ping_out => {
                        break 'session "no answer to a ping".into();
                    }
                    Err(crate::client::ClientError::Timeout(_)) => {
                        if let Err(e) = client.send(Packet::PingReq).await {
                            break 'session format!("ping: {e}");
                        }
                        ping_out = true;
                    }
                    Err(e) => break 'session e.to_string(),
                },
                _ = link.wake.notified() => {}
            }
        }
    };
    link.set_connected(false);
    link.requeue(inflight.into_values().collect());
    why
}

async fn on_packet(
    link: &LeafLink,
    client: &mut DeviceClient,
    southbound: &Southbound,
    seen: &mut AppliedCommands,
    inflight: &mut BTreeMap<u16, Reading>,
    packet: Packet,
) -> Result<(), String> {
    match packet {
        Packet::PubAck(a) => {
            inflight.remove(&a.pkid);
            Ok(())
        }
        Packet::Publish(p) => on_command(link, client, southbound, seen, p).await,
        _ => Ok(()),
    }
}

/// A C2D message for the leaf: written only if the mapping allows it, and
/// acknowledged after the write (or the refusal), never before.
async fn on_command(
    link: &LeafLink,
    client: &mut DeviceClient,
    southbound: &Southbound,
    seen: &mut AppliedCommands,
    p: Publish,
) -> Result<(), String> {
    let id = &link.leaf.id;
    let bag = p
        .topic
        .split_once("/messages/devicebound/")
        .map(|(_, bag)| parse_property_bag(bag))
        .unwrap_or_default();
    let mid = bag
        .iter()
        .find(|(k, _)| k == "$.mid")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    if !mid.is_empty() && seen.contains(&mid) {
        journal(json!({"event": "command_redelivered", "leaf": id, "mid": mid}));
        return puback(client, p.pkid).await;
    }
    match translate::decide(&link.leaf, &p.payload, link.faults.unchecked_commands) {
        Err(refusal) => {
            journal(json!({"event": "command_refused", "leaf": id, "mid": mid,
                           "command": refusal.command, "reason": refusal.reason}));
        }
        Ok(w) => {
            if let Err(e) = southbound.write(w.register, w.words.clone()).await {
                // Not applied: no PUBACK, so the hub delivers it again.
                journal(json!({"event": "write_failed", "leaf": id, "mid": mid, "error": e}));
                return Ok(());
            }
            journal(json!({"event": "register_written", "leaf": id, "mid": mid,
                           "command": w.command, "register": w.register, "words": w.words}));
        }
    }
    // Durably recorded before the PUBACK: a restart in between sees a
    // redelivery as already applied.
    if !mid.is_empty() {
        if let Err(e) = seen.record(&mid) {
            journal(
                json!({"event": "state_write_failed", "leaf": id, "mid": mid, "error": e.to_string()}),
            );
            return Ok(());
        }
    }
    puback(client, p.pkid).await
}

async fn puback(client: &mut DeviceClient, pkid: u16) -> Result<(), String> {
    client
        .puback(pkid)
        .await
        .map_err(|e| format!("PUBACK: {e}"))
}
