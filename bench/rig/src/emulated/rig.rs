//! `EmulatedRig`: one case's topology, the device under test in `dut` (the
//! suite runs the case's hub in `hub`), run as its DUT file's `[emulated] command`;
//! the capture point is the gateway's DUT-facing interface. Power is the
//! command's process group (started / killed; its `{state}` directory
//! stays); a command that exits by itself while powered is started again (a
//! reset, noted in the device log); flashing runs the DUT file's `flash`
//! command. A case may add a second board of the same DUT
//! ([`Rig::second_board`]: `board.rs`), on a link of its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::board::{
    board_command, board_control_dir, flash_board, native_board, BoardPower, EmulatedSecondBoard,
};
use super::dns::DnsServer;
use super::sntp::{SntpServer, NTP_PORT};
use super::topology::{eui64_link_local, mac_text, Node, Topology};
use crate::dut::{absolute, Board, BoardNetwork, DutFile, Placeholders, TapPlaceholders};
use crate::rtt::poll::RttPoller;
use crate::rtt::RttReader;
use crate::{
    Capabilities, Capability, CaptureTarget, DutAddresses, LinePredicate, LogLine, LogSource, Rig,
    RigError, RigNetwork, SecondBoard,
};
use sacbench_provisioning::board_control::{self, HoldScope};
use sacbench_provisioning::Provisioning;

/// How to build one emulated rig.
#[derive(Debug, Clone)]
pub struct EmulatedRigConfig {
    /// Topology number, unique among rigs alive at once.
    pub id: u8,
    /// Per-case directory: the device's state (its flash).
    pub dir: PathBuf,
    /// What the device is and how to run it.
    pub dut: Arc<DutFile>,
    /// Where sacbench's own executables are (`{sacbench_bin}`).
    pub sacbench_bin: PathBuf,
    /// The hub identity the device connects as (`{device_id}`).
    pub device_id: String,
    /// Fault switches to turn on (the DUT file's `faults.args` on the
    /// command line; the suite puts them in the provisioning too).
    pub faults: Vec<String>,
}

/// A running emulated rig (inside the rig sandbox).
pub struct EmulatedRig {
    name: String,
    config: EmulatedRigConfig,
    topo: Topology,
    /// `{provisioning}`: where [`Rig::provision`] wrote the device's record.
    provisioning: PathBuf,
    /// The board's power and console.
    board: BoardPower,
    /// Whether [`Rig::second_board`] made its second board.
    second_board: bool,
    /// The image last flashed (what a second board is flashed with too).
    flashed: Option<PathBuf>,
    rtt: Option<RttReader>,
    /// A board with `[emulated] rtt`: its RTT read through its gdbstub while powered.
    gdb_rtt: Option<RttPoller>,
    /// Why RTT could not be attached last time, for [`EmulatedRig::rtt_error`].
    rtt_error: Option<String>,
    /// The time server of a board with its own IP stack (`network = "tap"`).
    _sntp: Option<SntpServer>,
    /// Its name server (`{dns_server}`), which notes what it answered in
    /// the device log.
    _dns: Option<DnsServer>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> RigError {
    move |source| RigError::Io { what, source }
}

impl EmulatedRig {
    /// Builds the topology and an empty state directory; the DUT is
    /// powered off and not provisioned yet ([`Rig::provision`]).
    pub async fn start(config: EmulatedRigConfig) -> Result<EmulatedRig, RigError> {
        std::fs::create_dir_all(&config.dir)
            .map_err(io(format!("creating {}", config.dir.display())))?;
        if config.dut.emulated.is_none() {
            return Err(RigError::Setup(format!(
                "{}: no [emulated] command: this DUT cannot run on the emulated rig",
                config.dut.file.display()
            )));
        }
        let network = board_network(&config.dut);
        let topo = Topology::create(config.id, network)?;
        // A board with its own IP stack takes its time from the network,
        // as it would in the field; a host process has the host's clock.
        let sntp = match network {
            BoardNetwork::Tap => Some(SntpServer::start(topo.netns_path(Node::Gw))?),
            BoardNetwork::Namespace => None,
        };
        // And it looks its hub up by name, as it would at a site.
        let board = BoardPower::default();
        let dns = match network {
            BoardNetwork::Tap => {
                let console = board.console.clone();
                let note = move |line| console.note(line);
                Some(DnsServer::start(topo.netns_path(Node::Gw), note)?)
            }
            BoardNetwork::Namespace => None,
        };
        let rig = EmulatedRig {
            name: format!("emulated #{}", config.id),
            provisioning: config.dir.join("provisioning"),
            config,
            topo,
            board,
            second_board: false,
            flashed: None,
            rtt: None,
            gdb_rtt: None,
            rtt_error: None,
            _sntp: sntp,
            _dns: dns,
        };
        let state = rig.state_dir();
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).map_err(io(format!("creating {}", state.display())))?;
        Ok(rig)
    }

    /// What an emulated rig can do for `dut`.
    pub fn capabilities_for(dut: &DutFile) -> Capabilities {
        let mut c: Capabilities = [
            Capability::Power,
            Capability::Link,
            Capability::Console,
            Capability::Capture,
            Capability::BoardProcess,
            Capability::LegacyDevices,
            Capability::SecondBoard,
        ]
        .into_iter()
        .collect();
        if board_network(dut) == BoardNetwork::Tap {
            // Its sockets are inside the emulator, not in a process's
            // table, and its namespace is only a switch.
            c.0.remove(&Capability::BoardProcess);
        }
        if knows_link_local(dut) {
            c.0.insert(Capability::Ipv6LinkLocal);
        }
        let emulated = dut.emulated.as_ref();
        if emulated.is_some_and(|e| e.flash.is_some()) {
            c.0.insert(Capability::Flash);
        }
        if dut.image.is_some() {
            c.0.insert(Capability::Images);
        }
        if emulated.is_some_and(|e| e.board == Some(Board::SacbenchNative)) {
            // Its firmware logs RTT (the DUT's own needs, such as the native
            // board's firmware variants, are `DutNeeds`, not capabilities).
            c.0.insert(Capability::Rtt);
        }
        if emulated.is_some_and(|e| e.rtt.is_some()) {
            // Read through the board's gdbstub (`gdb_rtt.rs`).
            c.0.insert(Capability::Rtt);
        }
        c
    }

    /// The case's network namespaces and links.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// `{provisioning}`: what the bench hands the device.
    pub fn provisioning_dir(&self) -> PathBuf {
        self.provisioning.clone()
    }

    /// `{state}`: the device's flash, kept across power cycles of the case.
    pub fn state_dir(&self) -> PathBuf {
        self.config.dir.join("state")
    }

    fn placeholders(&self) -> Placeholders {
        Placeholders {
            provisioning: absolute(self.provisioning_dir()),
            state: absolute(self.state_dir()),
            device_id: self.config.device_id.clone(),
            hub_host: self.topo.hub_host(),
            sacbench_bin: absolute(self.config.sacbench_bin.clone()),
            dut_dir: absolute(self.config.dut.dir()),
            tap: (self.topo.board_network() == BoardNetwork::Tap).then(|| {
                tap_placeholders(
                    self.topo.dut_ipv4(),
                    self.topo.ipv4(1),
                    self.topo.board_mac(false),
                )
            }),
        }
    }

    /// Why the last attempt to attach RTT failed, if it did.
    pub fn rtt_error(&self) -> Option<&str> {
        self.rtt_error.as_deref()
    }

    /// The DUT's process (group) id while powered.
    fn powered_pid(&self) -> Option<u32> {
        self.board.pid()
    }

    /// The running payload on the native board: the bootloader's child.
    fn payload_pid(&self) -> Option<u32> {
        let boot = self.powered_pid()?;
        let children =
            std::fs::read_to_string(format!("/proc/{boot}/task/{boot}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }

    fn native_board(&self) -> bool {
        native_board(&self.config.dut)
    }

    /// The native board's control switches (see `board_control`).
    fn board_control_dir(&self) -> PathBuf {
        board_control_dir(&self.state_dir())
    }

    /// Holds the native board's flash writes in `scope`, from its next
    /// write on, until the returned guard is dropped (a held write then
    /// lands at once) or for at most `delay` each.
    fn hold_native_flash_writes(
        &self,
        delay: std::time::Duration,
        scope: HoldScope,
    ) -> Result<FlashHold, RigError> {
        if !self.native_board() {
            return Err(RigError::Setup(
                "holding flash writes needs sacbench's native board".into(),
            ));
        }
        let dir = self.board_control_dir();
        let file = dir.join(board_control::FLASH_HOLD_FILE);
        let io = |e: std::io::Error| RigError::Setup(format!("{}: {e}", file.display()));
        std::fs::create_dir_all(&dir).map_err(io)?;
        // Whole or not at all: the board reads it at every write.
        let tmp = dir.join(".flash-hold-ms.tmp");
        std::fs::write(
            &tmp,
            board_control::hold_text(delay.as_millis() as u64, scope),
        )
        .map_err(io)?;
        std::fs::rename(&tmp, &file).map_err(io)?;
        Ok(FlashHold { file })
    }

    /// Power off: no restart, the process group killed, reaped.
    fn power_off(&mut self) {
        // The RTT poller first: its last read drains what the board wrote.
        self.gdb_rtt = None;
        self.board.off();
        self.rtt = None;
    }
}

#[async_trait::async_trait(?Send)]
impl Rig for EmulatedRig {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        EmulatedRig::capabilities_for(&self.config.dut)
    }

    fn network(&self) -> Result<RigNetwork, RigError> {
        Ok(self.topo.network())
    }

    fn device_ids(&self) -> Vec<String> {
        vec![self.config.device_id.clone()]
    }

    async fn provision(&mut self, dir: &Path, records: &[Provisioning]) -> Result<(), RigError> {
        let [record] = records else {
            return Err(RigError::Setup(format!(
                "the emulated DUT takes one identity, not {}",
                records.len()
            )));
        };
        self.provisioning = dir.join("provisioning");
        sacbench_provisioning::write(&self.provisioning, record)
            .map_err(|e| RigError::Setup(format!("writing the provisioning directory: {e}")))
    }

    fn console_lines(&self) -> Vec<String> {
        self.board.console.lines()
    }

    async fn wait_console_from(
        &self,
        from: usize,
        guard: std::time::Duration,
        pred: LinePredicate<'_>,
    ) -> Option<(usize, String)> {
        self.board.console.wait_from(from, guard, pred).await
    }

    fn netns(&self, node: Node) -> Option<PathBuf> {
        match node {
            // A board with its own IP stack: its namespace is a switch with
            // no address, so a client "from the DUT's side" runs on the
            // bench side of its link, as on a lab rig.
            Node::Dut if self.topo.board_network() == BoardNetwork::Tap => {
                Some(self.topo.netns_path(Node::Gw))
            }
            _ => Some(self.topo.netns_path(node)),
        }
    }

    fn kill_established_tcp(&self, node: Node, dport: Option<u16>) -> Result<usize, RigError> {
        self.topo.kill_established_tcp(node, dport)
    }

    fn hold_flash_writes(
        &self,
        delay: std::time::Duration,
        scope: HoldScope,
    ) -> Result<FlashHold, RigError> {
        self.hold_native_flash_writes(delay, scope)
    }

    fn board_pid(&self) -> Option<u32> {
        self.powered_pid()
    }

    async fn second_board(
        &mut self,
        record: &Provisioning,
    ) -> Result<Box<dyn SecondBoard>, RigError> {
        if self.second_board {
            return Err(RigError::Setup(
                "the emulated rig has one second board, made already".into(),
            ));
        }
        let dir = self.config.dir.join("board-b");
        let (provisioning, state) = (dir.join("provisioning"), dir.join("state"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&state).map_err(io(format!("creating {}", state.display())))?;
        sacbench_provisioning::write(&provisioning, record).map_err(|e| {
            RigError::Setup(format!("writing the second board's provisioning: {e}"))
        })?;
        let placeholders = Placeholders {
            provisioning: absolute(provisioning),
            state: absolute(state),
            device_id: record.device.device_id.clone(),
            tap: (self.topo.board_network() == BoardNetwork::Tap).then(|| {
                tap_placeholders(
                    self.topo.second_board_ipv4(),
                    self.topo.second_board_gateway_ipv4(),
                    self.topo.board_mac(true),
                )
            }),
            ..self.placeholders()
        };
        // A unit from the same line: its own flash, written with the image
        // the first board was flashed with (none for a DUT without `flash`).
        if let Some(image) = &self.flashed {
            flash_board(&self.config.dut, &placeholders, image)?;
        }
        self.topo.add_second_board()?;
        self.second_board = true;
        Ok(Box::new(EmulatedSecondBoard::new(
            self.config.dut.clone(),
            self.config.faults.clone(),
            placeholders,
            self.topo.second_board_netns(),
            self.topo.second_board_ipv4(),
            CaptureTarget {
                interface: Topology::GW_SECOND_IF.into(),
                netns: Some(self.topo.netns_path(Node::Gw)),
            },
        )))
    }

    async fn power(&mut self, on: bool) -> Result<(), RigError> {
        // Off first, always: on after on is a power cycle.
        self.power_off();
        if !on {
            self.board.console.note("rig: power off".into());
            return Ok(());
        }
        let cmd = board_command(
            &self.config.dut,
            &self.config.faults,
            &self.placeholders(),
            &self.topo.netns_path(Node::Dut),
        )?;
        let what = format!(
            "{:?} (emulated.command of {})",
            self.config.dut.emulated.as_ref().map(|e| &e.command[0]),
            self.config.dut.file.display()
        );
        let rtt = self
            .config
            .dut
            .emulated
            .as_ref()
            .and_then(|e| e.rtt.as_ref());
        let socket = rtt
            .map(|r| super::gdb_rtt::socket(r, &self.placeholders()))
            .transpose()?;
        self.board.on(cmd, &what)?;
        if let (Some(rtt), Some(socket)) = (rtt, socket) {
            let console = self.board.console.clone();
            self.gdb_rtt = Some(super::gdb_rtt::start(rtt, socket, console)?);
        }
        Ok(())
    }

    async fn link(&mut self, up: bool) -> Result<(), RigError> {
        self.topo.set_link(up)
    }

    async fn flash(&mut self, image: &Path) -> Result<(), RigError> {
        if self.powered_pid().is_some() {
            return Err(RigError::Device(
                "flashing needs the board powered off".into(),
            ));
        }
        let image = std::fs::canonicalize(image).unwrap_or_else(|_| image.to_path_buf());
        flash_board(&self.config.dut, &self.placeholders(), &image)?;
        self.flashed = Some(image);
        Ok(())
    }

    async fn logs(&mut self) -> Result<Vec<LogLine>, RigError> {
        let mut lines = self.board.console.take_new();
        let native = self.native_board();
        if let Some(pid) = self.payload_pid().filter(|_| native) {
            if self.rtt.as_ref().map(RttReader::pid) != Some(pid) {
                // A new payload (reboot): attach to its control block, if it has one yet.
                self.rtt = match RttReader::attach(pid) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        // Not fatal: a payload that has not logged yet has no block.
                        self.rtt_error = Some(e.to_string());
                        None
                    }
                };
            }
            if let Some(rtt) = self.rtt.as_mut() {
                let name = rtt.up.first().map(|c| c.name.clone()).unwrap_or_default();
                if let Ok(bytes) = rtt.read_up(0) {
                    let at_ns = now_ns();
                    for text in String::from_utf8_lossy(&bytes).lines() {
                        lines.push(LogLine {
                            source: LogSource::Rtt {
                                channel: 0,
                                name: name.clone(),
                            },
                            at_ns,
                            text: text.into(),
                        });
                    }
                }
            }
        }
        Ok(lines)
    }

    fn capture_target(&self) -> Result<CaptureTarget, RigError> {
        Ok(CaptureTarget {
            interface: Topology::GW_DUT_IF.into(),
            netns: Some(self.topo.netns_path(Node::Gw)),
        })
    }

    fn dut_addresses(&self) -> DutAddresses {
        DutAddresses {
            ipv4: Some(self.topo.dut_ipv4()),
            ipv6_link_local: self
                .topo
                .dut_ipv6_link_local()
                .or_else(|| {
                    knows_link_local(&self.config.dut)
                        .then(|| eui64_link_local(self.topo.board_mac(false)))
                })
                .map(|a| (a, Topology::GW_DUT_IF.into())),
        }
    }
}

/// How `dut`'s board is on its link (`[emulated] network`).
fn board_network(dut: &DutFile) -> BoardNetwork {
    dut.emulated.as_ref().map(|e| e.network).unwrap_or_default()
}

/// The placeholders of a board on a TAP device at `ipv4` (a /30) behind
/// `gateway`, which also serves it the time and the hub's name.
fn tap_placeholders(
    ipv4: std::net::Ipv4Addr,
    gateway: std::net::Ipv4Addr,
    mac: [u8; 6],
) -> TapPlaceholders {
    TapPlaceholders {
        bridge: Topology::BRIDGE.into(),
        ipv4_cidr: format!("{ipv4}/30"),
        ipv4_gateway: gateway.to_string(),
        ntp_server: format!("{gateway}:{NTP_PORT}"),
        dns_server: gateway.to_string(),
        mac: mac_text(mac),
    }
}

/// Whether the rig knows `dut`'s IPv6 link-local address: its own on a
/// namespace board, the EUI-64 of `{mac}` on a board that says it takes it.
fn knows_link_local(dut: &DutFile) -> bool {
    board_network(dut) == BoardNetwork::Namespace
        || dut
            .emulated
            .as_ref()
            .is_some_and(|e| e.ipv6_link_local_eui64)
}

impl Drop for EmulatedRig {
    fn drop(&mut self) {
        self.power_off();
    }
}

/// The native board's flash writes held (see [`EmulatedRig::hold_flash_writes`]);
/// dropped, the hold ends.
#[derive(Debug)]
pub struct FlashHold {
    file: PathBuf,
}

impl Drop for FlashHold {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.file) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!(
                    "sacbench: ending the flash hold ({}): {e}",
                    self.file.display()
                );
            }
        }
    }
}
