//! `EmulatedRig`: one case's topology, the device under test in `dut` (the
//! suite runs the case's hub in `hub`), run as its DUT file's `[emulated] command`;
//! the capture point is the gateway's DUT-facing interface. Power is the
//! command's process group (started / killed; its `{state}` directory
//! stays); a command that exits by itself while powered is started again (a
//! reset, noted in the device log); flashing runs the DUT file's `flash`
//! command.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::console::ConsoleLog;
use super::topology::{Node, Topology};
use crate::dut::{Board, DutFile, Placeholders};
use crate::rtt::RttReader;
use crate::{
    Capabilities, Capability, CaptureTarget, DutAddresses, LinePredicate, LogLine, LogSource, Rig,
    RigError, RigNetwork,
};
use sacbench_provisioning::{board_control, Provisioning};

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

/// The power switch and its wake-up (power off interrupts a reset wait).
type PowerState = (Mutex<Power>, std::sync::Condvar);

/// The running DUT: its current process group while powered.
#[derive(Default)]
struct Power {
    on: bool,
    /// Process (group) id of the current start.
    pid: Option<u32>,
}

/// A running emulated rig (inside the rig sandbox).
pub struct EmulatedRig {
    name: String,
    config: EmulatedRigConfig,
    topo: Topology,
    /// `{provisioning}`: where [`Rig::provision`] wrote the device's record.
    provisioning: PathBuf,
    power: Arc<PowerState>,
    /// The thread that starts the DUT and restarts it after a reset.
    supervisor: Option<std::thread::JoinHandle<()>>,
    console: ConsoleLog,
    rtt: Option<RttReader>,
    /// Why RTT could not be attached last time, for [`EmulatedRig::rtt_error`].
    rtt_error: Option<String>,
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
        let topo = Topology::create(config.id)?;
        let rig = EmulatedRig {
            name: format!("emulated #{}", config.id),
            provisioning: config.dir.join("provisioning"),
            config,
            topo,
            power: Default::default(),
            supervisor: None,
            console: ConsoleLog::default(),
            rtt: None,
            rtt_error: None,
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
        ]
        .into_iter()
        .collect();
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
        let abs = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or(p);
        Placeholders {
            provisioning: abs(self.provisioning_dir()),
            state: abs(self.state_dir()),
            device_id: self.config.device_id.clone(),
            hub_host: self.topo.hub_host(),
            sacbench_bin: abs(self.config.sacbench_bin.clone()),
            dut_dir: abs(self.config.dut.dir()),
        }
    }

    /// Why the last attempt to attach RTT failed, if it did.
    pub fn rtt_error(&self) -> Option<&str> {
        self.rtt_error.as_deref()
    }

    /// The DUT's process (group) id while powered.
    fn powered_pid(&self) -> Option<u32> {
        self.power.0.lock().expect("power lock").pid
    }

    /// The running payload on the native board: the bootloader's child.
    fn payload_pid(&self) -> Option<u32> {
        let boot = self.powered_pid()?;
        let children =
            std::fs::read_to_string(format!("/proc/{boot}/task/{boot}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }

    /// The command that powers the DUT on, in its namespace and folder.
    fn command(&self) -> Command {
        let p = self.placeholders();
        let emulated = self.config.dut.emulated.as_ref().expect("checked at start");
        let mut argv: Vec<String> = emulated.command.iter().map(|a| p.expand(a)).collect();
        for fault in &self.config.faults {
            argv.extend(
                self.config
                    .dut
                    .faults
                    .args
                    .iter()
                    .map(|a| p.expand(&a.replace("{fault}", fault))),
            );
        }
        let mut c = self.topo.command(Node::Dut, &argv[0]);
        c.args(&argv[1..])
            .current_dir(&p.dut_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if self.native_board() {
            c.env(board_control::ENV, self.board_control_dir());
        }
        c
    }

    fn native_board(&self) -> bool {
        self.config.dut.emulated.as_ref().and_then(|e| e.board) == Some(Board::SacbenchNative)
    }

    /// The native board's control switches (see `board_control`).
    fn board_control_dir(&self) -> PathBuf {
        self.state_dir().join("board-control")
    }

    /// Holds every flash write of the native board's firmware for `delay`
    /// from its next write on, until the returned guard is dropped (a write
    /// already held then completes).
    fn hold_native_flash_writes(&self, delay: std::time::Duration) -> Result<FlashHold, RigError> {
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
        std::fs::write(&tmp, delay.as_millis().to_string()).map_err(io)?;
        std::fs::rename(&tmp, &file).map_err(io)?;
        Ok(FlashHold { file })
    }

    /// Stops the supervisor: no restart, the process group killed, reaped.
    fn power_off(&mut self) {
        {
            let mut p = self.power.0.lock().expect("power lock");
            p.on = false;
            if let Some(pid) = p.pid.take() {
                let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            self.power.1.notify_all();
        }
        if let Some(t) = self.supervisor.take() {
            let _ = crate::blocking(|| t.join());
        }
        // Every line written before the cut is read before power-off returns:
        // what a case counts after it is complete.
        if !crate::blocking(|| self.console.drained(CONSOLE_DRAIN_LIMIT)) {
            self.console.note(format!(
                "rig: the console stayed open {CONSOLE_DRAIN_LIMIT:?} after power off (a process outside the DUT's process group holds it)"
            ));
        }
        self.rtt = None;
    }
}

/// How long power off waits for the console pipes to close.
const CONSOLE_DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A DUT that keeps exiting is started again at most this often (a halted
/// or crash-looping device must not spin the bench).
const MIN_RESET_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the DUT until power off: when its process exits by itself while
/// powered, notes the reset and starts it again (as a device's watchdog or
/// reset would), at most once per [`MIN_RESET_INTERVAL`].
fn supervise(mut cmd: Command, mut child: Child, power: Arc<PowerState>, console: ConsoleLog) {
    let mut started = std::time::Instant::now();
    loop {
        let status = child.wait();
        let how = match status {
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        };
        let mut p = power.0.lock().expect("power lock");
        if !p.on {
            return;
        }
        // The group may hold more than the leader: end them with it.
        if let Some(pid) = p.pid {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        console.note(format!(
            "rig: reset: the DUT exited by itself ({how}); starting it again"
        ));
        // Wait out the reset interval, unless powered off meanwhile (notified).
        let until = started + MIN_RESET_INTERVAL;
        while p.on {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            p = power.1.wait_timeout(p, left).expect("power lock").0;
        }
        if !p.on {
            return;
        }
        started = std::time::Instant::now();
        match cmd.spawn() {
            Ok(mut c) => {
                console.follow(&mut c);
                p.pid = Some(c.id());
                child = c;
            }
            Err(e) => {
                console.note(format!("rig: cannot start the DUT again: {e}"));
                p.pid = None;
                p.on = false;
                return;
            }
        }
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
        self.console.lines()
    }

    async fn wait_console_from(
        &self,
        from: usize,
        guard: std::time::Duration,
        pred: LinePredicate<'_>,
    ) -> Option<(usize, String)> {
        self.console.wait_from(from, guard, pred).await
    }

    fn netns(&self, node: Node) -> Option<PathBuf> {
        Some(self.topo.netns_path(node))
    }

    fn kill_established_tcp(&self, node: Node, dport: Option<u16>) -> Result<usize, RigError> {
        self.topo.kill_established_tcp(node, dport)
    }

    fn hold_flash_writes(&self, delay: std::time::Duration) -> Result<FlashHold, RigError> {
        self.hold_native_flash_writes(delay)
    }

    fn board_pid(&self) -> Option<u32> {
        self.powered_pid()
    }

    async fn power(&mut self, on: bool) -> Result<(), RigError> {
        // Off first, always: on after on is a power cycle.
        self.power_off();
        if !on {
            self.console.note("rig: power off".into());
            return Ok(());
        }
        self.console.note("rig: power on".into());
        let mut cmd = self.command();
        let mut child = cmd.spawn().map_err(|e| {
            RigError::Setup(format!(
                "powering the DUT on: running {:?} (emulated.command of {}): {e}",
                self.config.dut.emulated.as_ref().map(|e| &e.command[0]),
                self.config.dut.file.display()
            ))
        })?;
        self.console.follow(&mut child);
        {
            let mut p = self.power.0.lock().expect("power lock");
            p.on = true;
            p.pid = Some(child.id());
        }
        let (power, console) = (self.power.clone(), self.console.clone());
        self.supervisor = Some(std::thread::spawn(move || {
            supervise(cmd, child, power, console)
        }));
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
        let dut = &self.config.dut;
        let Some(flash) = dut.emulated.as_ref().and_then(|e| e.flash.as_ref()) else {
            return Err(RigError::Unsupported(Capability::Flash));
        };
        let p = self.placeholders();
        let image = std::fs::canonicalize(image).unwrap_or_else(|_| image.to_path_buf());
        let argv: Vec<String> = flash
            .iter()
            .map(|a| p.expand(&a.replace("{image}", &image.to_string_lossy())))
            .collect();
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(&p.dut_dir)
            .output()
            .map_err(|e| {
                RigError::Setup(format!(
                    "running {} (emulated.flash of {}): {e}",
                    argv[0],
                    dut.file.display()
                ))
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(RigError::Device(format!(
                "{} {:?}: {}",
                argv[0],
                &argv[1..],
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    async fn logs(&mut self) -> Result<Vec<LogLine>, RigError> {
        let mut lines = self.console.take_new();
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
            ipv6_link_local: Some((self.topo.dut_ipv6_link_local(), Topology::GW_DUT_IF.into())),
        }
    }
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
