//! What a case records for its timeline, and the writing of
//! `cases/<ID>/timeline.json` when it ends: the IO shell around the pure
//! [`crate::report::timeline_build`].
//!
//! The axis is the case's monotonic clock from `Case::start` (see
//! [`crate::report::timeline`] for why); [`CaseClock`] holds its origin,
//! the wall clock at it (for capture and device log stamps) and the hub
//! journal's offset to it, each taken once. The rig's actions are recorded
//! as they happen by [`RecordingRig`], which wraps whatever rig the case
//! runs on; everything else is read when the case ends, from what the case
//! keeps anyway (journal, capture, device log).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sacbench_capture::decrypt::{decrypt_capture, frame_at, PlainFlow};
use sacbench_rig::{
    Capabilities, CaptureTarget, DutAddresses, FlashHold, HoldScope, LinePredicate, LogLine,
    LogSource, Node, Provisioning, Rig, RigError, RigNetwork, SecondBoard,
};

use crate::case::Case;
use crate::report::timeline::TIMELINE_JSON;
use crate::report::timeline_build::{build, MqttPacket, RigAction, Sources, StampedLine};

/// The case's clock: its origin, and the offsets of the other clocks to it.
#[derive(Debug, Clone)]
pub struct CaseClock {
    t0: Instant,
    origin_unix_ns: u64,
    journal_offset_us: i64,
    actions: Arc<Mutex<Vec<RigAction>>>,
}

impl CaseClock {
    /// Starts the case's axis now.
    pub fn start() -> CaseClock {
        CaseClock {
            t0: Instant::now(),
            origin_unix_ns: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            journal_offset_us: 0,
            actions: Arc::default(),
        }
    }

    /// µs on the axis now.
    pub fn now_us(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }

    /// Ties the hub journal's clock to the axis: `journal_mono_us` is what
    /// its `mono_us` reads now.
    pub fn anchor_journal(&mut self, journal_mono_us: u64) {
        self.journal_offset_us = self.now_us() as i64 - journal_mono_us as i64;
    }

    /// `inner`, its power, link and flash actions recorded on this clock.
    pub fn wrap(&self, inner: Box<dyn Rig>) -> Box<dyn Rig> {
        Box::new(RecordingRig {
            inner,
            clock: self.clone(),
        })
    }

    fn record<T>(&self, at_us: u64, what: String, r: &Result<T, RigError>) {
        let action = RigAction {
            at_us,
            end_us: self.now_us(),
            what,
            error: r.as_ref().err().map(ToString::to_string),
        };
        self.actions.lock().expect("actions lock").push(action);
    }
}

/// A rig that records what the bench does to the device through it.
struct RecordingRig {
    inner: Box<dyn Rig>,
    clock: CaseClock,
}

#[async_trait::async_trait(?Send)]
impl Rig for RecordingRig {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn network(&self) -> Result<RigNetwork, RigError> {
        self.inner.network()
    }
    fn device_ids(&self) -> Vec<String> {
        self.inner.device_ids()
    }
    async fn provision(&mut self, dir: &Path, records: &[Provisioning]) -> Result<(), RigError> {
        self.inner.provision(dir, records).await
    }
    async fn power(&mut self, on: bool) -> Result<(), RigError> {
        let at = self.clock.now_us();
        let r = self.inner.power(on).await;
        let what = if on { "power on" } else { "power off" };
        self.clock.record(at, what.into(), &r);
        r
    }
    async fn power_cycle(&mut self) -> Result<(), RigError> {
        let at = self.clock.now_us();
        let r = self.inner.power_cycle().await;
        self.clock.record(at, "power cycle".into(), &r);
        r
    }
    async fn link(&mut self, up: bool) -> Result<(), RigError> {
        let at = self.clock.now_us();
        let r = self.inner.link(up).await;
        let what = if up { "link up" } else { "link down" };
        self.clock.record(at, what.into(), &r);
        r
    }
    async fn flash(&mut self, image: &Path) -> Result<(), RigError> {
        let at = self.clock.now_us();
        let r = self.inner.flash(image).await;
        let name = image.file_name().unwrap_or(image.as_os_str());
        self.clock
            .record(at, format!("flash {}", name.to_string_lossy()), &r);
        r
    }
    async fn logs(&mut self) -> Result<Vec<LogLine>, RigError> {
        self.inner.logs().await
    }
    fn console_lines(&self) -> Vec<String> {
        self.inner.console_lines()
    }
    async fn wait_console_from(
        &self,
        from: usize,
        guard: Duration,
        pred: LinePredicate<'_>,
    ) -> Option<(usize, String)> {
        self.inner.wait_console_from(from, guard, pred).await
    }
    fn capture_target(&self) -> Result<CaptureTarget, RigError> {
        self.inner.capture_target()
    }
    fn dut_addresses(&self) -> DutAddresses {
        self.inner.dut_addresses()
    }
    fn netns(&self, node: Node) -> Option<PathBuf> {
        self.inner.netns(node)
    }
    fn command(&self, node: Node, program: &OsStr) -> Command {
        self.inner.command(node, program)
    }
    fn kill_established_tcp(&self, node: Node, dport: Option<u16>) -> Result<usize, RigError> {
        let at = self.clock.now_us();
        let r = self.inner.kill_established_tcp(node, dport);
        let what = match &r {
            Ok(n) => format!("kill TCP ({n} sockets)"),
            Err(_) => "kill TCP".to_string(),
        };
        self.clock.record(at, what, &r);
        r
    }
    fn hold_flash_writes(&self, delay: Duration, scope: HoldScope) -> Result<FlashHold, RigError> {
        let at = self.clock.now_us();
        let r = self.inner.hold_flash_writes(delay, scope);
        let what = match scope {
            HoldScope::Every => "flash writes held",
            HoldScope::PrimarySlot => "primary-slot flash writes held",
        };
        self.clock
            .record(at, format!("{what} (≤ {delay:?} each)"), &r);
        r
    }
    fn board_pid(&self) -> Option<u32> {
        self.inner.board_pid()
    }
    fn configured_image(&self) -> Option<sacbench_rig::lab::ImageConfig> {
        self.inner.configured_image()
    }
    async fn second_board(
        &mut self,
        record: &Provisioning,
    ) -> Result<Box<dyn SecondBoard>, RigError> {
        let inner = self.inner.second_board(record).await?;
        Ok(Box::new(RecordingBoard {
            inner,
            clock: self.clock.clone(),
        }))
    }
}

/// A second board whose power actions are recorded too (`board B power on`).
struct RecordingBoard {
    inner: Box<dyn SecondBoard>,
    clock: CaseClock,
}

#[async_trait::async_trait(?Send)]
impl SecondBoard for RecordingBoard {
    fn ipv4(&self) -> std::net::Ipv4Addr {
        self.inner.ipv4()
    }
    async fn power(&mut self, on: bool) -> Result<(), RigError> {
        let at = self.clock.now_us();
        let r = self.inner.power(on).await;
        let what = if on {
            "board B power on"
        } else {
            "board B power off"
        };
        self.clock.record(at, what.into(), &r);
        r
    }
    async fn logs(&mut self) -> Result<Vec<LogLine>, RigError> {
        self.inner.logs().await
    }
    fn console_lines(&self) -> Vec<String> {
        self.inner.console_lines()
    }
    async fn wait_console_from(
        &self,
        from: usize,
        guard: Duration,
        pred: LinePredicate<'_>,
    ) -> Option<(usize, String)> {
        self.inner.wait_console_from(from, guard, pred).await
    }
    fn capture_target(&self) -> Result<CaptureTarget, RigError> {
        self.inner.capture_target()
    }
}

/// Writes the case's `timeline.json` from what it recorded; `lines` are
/// every device line of the case. A timeline that cannot be made is
/// missing from the page, never a verdict: errors are ignored here, as
/// for the case's other files.
pub(crate) fn write_timeline(case: &mut Case, lines: &[LogLine]) {
    let duration_us = case.clock.now_us();
    let capture = case.dir.join("capture.pcapng");
    let frame_times = sacbench_capture::frame_times_file(&capture).unwrap_or_default();
    let mqtt = mqtt_of_capture(case, &capture);
    let journal = case.hub.journal().entries();
    let mut dut = Vec::new();
    let mut rig_notes = Vec::new();
    for l in lines {
        match l.source {
            LogSource::Console => {
                if let Some((name, _)) = case.dut.events.iter().find(|(_, re)| re.is_match(&l.text))
                {
                    dut.push(StampedLine {
                        at_ns: l.at_ns,
                        name: name.name().to_string(),
                        text: l.text.clone(),
                    });
                }
            }
            // Power actions are the recorder's own; the rig's other notes
            // (a reset it saw) are not.
            LogSource::Rig if !l.text.starts_with("rig: power") => rig_notes.push(StampedLine {
                at_ns: l.at_ns,
                name: "rig".into(),
                text: l.text.clone(),
            }),
            _ => {}
        }
    }
    let actions = case.clock.actions.lock().expect("actions lock").clone();
    let evidence = case.evidence.clone();
    let clock = case.clock.clone();
    let analysis = case.analysis().ok();
    let timeline = build(&Sources {
        origin_unix_ns: clock.origin_unix_ns,
        duration_us,
        journal: &journal,
        journal_offset_us: clock.journal_offset_us,
        analysis,
        frame_times_ns: &frame_times,
        mqtt: &mqtt,
        rig: &actions,
        rig_notes: &rig_notes,
        dut: &dut,
        evidence: &evidence,
    });
    if let Ok(json) = serde_json::to_vec(&timeline) {
        let _ = std::fs::write(case.dir.join(TIMELINE_JSON), json);
    }
}

/// The MQTT packets of the capture's flows to the hub's MQTT listener,
/// where the run's key log opens them (TLS 1.3); none otherwise.
fn mqtt_of_capture(case: &Case, capture: &Path) -> Vec<MqttPacket> {
    let mqtt_addr = case.hub.mqtt_addr();
    let Ok(key_log) = std::fs::read_to_string(case.rig_dir().join("tls-keys.log")) else {
        return Vec::new();
    };
    decrypt_capture(capture, &key_log, |_, server| server == mqtt_addr)
        .map(|flows| flows.iter().flat_map(mqtt_packets).collect())
        .unwrap_or_default()
}

/// The MQTT 3.1.1 packets of both directions of a decrypted flow, each with
/// the frame its last byte arrived in; a direction stops at the first bytes
/// that do not read as a packet.
pub fn mqtt_packets(flow: &PlainFlow) -> Vec<MqttPacket> {
    use rumqttc::mqttbytes::v4::Packet;
    let mut out = Vec::new();
    for to_server in [true, false] {
        let (bytes, ends) = flow.application_stream(to_server);
        let mut buf = bytes::BytesMut::from(&bytes[..]);
        while let Ok(packet) = Packet::read(&mut buf, usize::MAX) {
            let consumed = bytes.len() - buf.len();
            let (name, detail) = match packet {
                Packet::Connect(c) => (
                    "CONNECT",
                    format!(
                        "client id {}, keep-alive {} s, clean session {}",
                        c.client_id, c.keep_alive, c.clean_session
                    ),
                ),
                Packet::ConnAck(c) => (
                    "CONNACK",
                    format!("{:?}, session present {}", c.code, c.session_present),
                ),
                Packet::Publish(p) => (
                    "PUBLISH",
                    format!(
                        "{} QoS {:?} id {} ({} bytes){}",
                        p.topic,
                        p.qos,
                        p.pkid,
                        p.payload.len(),
                        if p.dup { " DUP" } else { "" }
                    ),
                ),
                Packet::PubAck(a) => ("PUBACK", format!("id {}", a.pkid)),
                Packet::PubRec(a) => ("PUBREC", format!("id {}", a.pkid)),
                Packet::PubRel(a) => ("PUBREL", format!("id {}", a.pkid)),
                Packet::PubComp(a) => ("PUBCOMP", format!("id {}", a.pkid)),
                Packet::Subscribe(s) => (
                    "SUBSCRIBE",
                    s.filters
                        .iter()
                        .map(|f| f.path.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                Packet::SubAck(s) => ("SUBACK", format!("id {}: {:?}", s.pkid, s.return_codes)),
                Packet::Unsubscribe(u) => ("UNSUBSCRIBE", u.topics.join(", ")),
                Packet::UnsubAck(u) => ("UNSUBACK", format!("id {}", u.pkid)),
                Packet::PingReq => ("PINGREQ", String::new()),
                Packet::PingResp => ("PINGRESP", String::new()),
                Packet::Disconnect => ("DISCONNECT", String::new()),
            };
            out.push(MqttPacket {
                frame: frame_at(&ends, consumed.saturating_sub(1)).unwrap_or_default(),
                to_server,
                name: name.into(),
                detail,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::v4::{ConnAck, Connect, Publish};
    use rumqttc::mqttbytes::QoS;
    use sacbench_capture::decrypt::PlainRecord;

    fn record(frame: u64, data: Vec<u8>) -> PlainRecord {
        PlainRecord {
            frame,
            content_type: 23,
            data,
        }
    }

    #[test]
    fn mqtt_packets_come_with_the_frame_they_ended_in() {
        let mut up = bytes::BytesMut::new();
        Connect::new("dut-1").write(&mut up).unwrap();
        let connect_len = up.len();
        let mut p = Publish::new("devices/dut-1/messages/events/", QoS::AtLeastOnce, "hi");
        p.pkid = 7;
        p.write(&mut up).unwrap();
        let mut down = bytes::BytesMut::new();
        ConnAck::new(rumqttc::mqttbytes::v4::ConnectReturnCode::Success, false)
            .write(&mut down)
            .unwrap();
        // The PUBLISH is split over two records: frames 5 and 6.
        let up = up.to_vec();
        let flow = PlainFlow {
            client: "10.0.0.2:40000".parse().unwrap(),
            server: "10.0.0.1:8883".parse().unwrap(),
            version: Some(0x0304),
            to_server: vec![
                record(4, up[..connect_len].to_vec()),
                record(5, up[connect_len..connect_len + 3].to_vec()),
                record(6, up[connect_len + 3..].to_vec()),
            ],
            to_client: vec![
                record(4, down.to_vec()),
                record(9, b"\xff garbage".to_vec()),
            ],
            undecrypted: None,
        };
        let got: Vec<(u64, bool, String)> = mqtt_packets(&flow)
            .into_iter()
            .map(|p| (p.frame, p.to_server, p.name))
            .collect();
        assert_eq!(
            got,
            [
                (4, true, "CONNECT".to_string()),
                (6, true, "PUBLISH".to_string()),
                (4, false, "CONNACK".to_string()),
            ]
        );
        let publish = &mqtt_packets(&flow)[1];
        assert!(
            publish
                .detail
                .contains("devices/dut-1/messages/events/ QoS AtLeastOnce id 7"),
            "{}",
            publish.detail
        );
    }
}
