//! One emulated board's process: the DUT file's `[emulated] command` in a
//! namespace, its power (the process group, started and killed; a command
//! that exits by itself while powered is started again, as a reset) and its
//! console. [`EmulatedRig`](super::EmulatedRig) runs its first board so, and
//! [`EmulatedSecondBoard`] a second one on a link of its own.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::console::ConsoleLog;
use super::sandbox::netns_command;
use crate::dut::{Board, DutFile, Placeholders};
use crate::{CaptureTarget, LinePredicate, LogLine, RigError, SecondBoard};
use sacbench_provisioning::board_control;

/// The power switch and its wake-up (power off interrupts a reset wait).
type PowerState = (Mutex<Power>, std::sync::Condvar);

/// The running board: its current process group while powered.
#[derive(Default)]
struct Power {
    on: bool,
    /// Process (group) id of the current start.
    pid: Option<u32>,
}

/// A board's power and console: the process group of its command while
/// powered, restarted after a reset by a supervisor thread.
#[derive(Default)]
pub(crate) struct BoardPower {
    power: Arc<PowerState>,
    /// The thread that restarts the board after a reset.
    supervisor: Option<std::thread::JoinHandle<()>>,
    /// Its console (stdout and stderr) and the rig's notes.
    pub(crate) console: ConsoleLog,
}

/// How long power off waits for the console pipes to close.
const CONSOLE_DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// A board that keeps exiting is started again at most this often (a halted
/// or crash-looping device must not spin the bench).
const MIN_RESET_INTERVAL: Duration = Duration::from_secs(1);

impl BoardPower {
    /// The board's process (group) id while powered.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.power.0.lock().expect("power lock").pid
    }

    /// Powers on with `cmd` (the board must be off): spawned, its console
    /// followed, supervised. `what` names the command for the error.
    pub(crate) fn on(&mut self, mut cmd: Command, what: &str) -> Result<(), RigError> {
        self.console.note("rig: power on".into());
        let mut child = cmd
            .spawn()
            .map_err(|e| RigError::Setup(format!("powering the DUT on: running {what}: {e}")))?;
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

    /// Stops the supervisor: no restart, the process group killed, reaped,
    /// its console read to the end.
    pub(crate) fn off(&mut self) {
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
    }
}

impl Drop for BoardPower {
    fn drop(&mut self) {
        self.off();
    }
}

/// Runs the board until power off: when its process exits by itself while
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

/// Whether `dut` runs on sacbench's native board (its control switches).
pub(crate) fn native_board(dut: &DutFile) -> bool {
    dut.emulated.as_ref().and_then(|e| e.board) == Some(Board::SacbenchNative)
}

/// The command that powers a board of `dut` on, with `faults` (the DUT
/// file's `faults.args`), in `netns` and the DUT file's folder; a native
/// board gets its control switches under `p.state`.
pub(crate) fn board_command(
    dut: &DutFile,
    faults: &[String],
    p: &Placeholders,
    netns: &Path,
) -> Result<Command, RigError> {
    let emulated = dut.emulated.as_ref().ok_or_else(|| {
        RigError::Setup(format!(
            "{}: no [emulated] command: this DUT cannot run on the emulated rig",
            dut.file.display()
        ))
    })?;
    let mut argv: Vec<String> = emulated.command.iter().map(|a| p.expand(a)).collect();
    for fault in faults {
        argv.extend(
            dut.faults
                .args
                .iter()
                .map(|a| p.expand(&a.replace("{fault}", fault))),
        );
    }
    let mut c = netns_command(netns, &argv[0]);
    c.args(&argv[1..])
        .current_dir(&p.dut_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if native_board(dut) {
        c.env(board_control::ENV, board_control_dir(&p.state));
    }
    Ok(c)
}

/// Writes `image` to a board's flash with the DUT file's `[emulated] flash`
/// command (the board powered off).
pub(crate) fn flash_board(dut: &DutFile, p: &Placeholders, image: &Path) -> Result<(), RigError> {
    let Some(flash) = dut.emulated.as_ref().and_then(|e| e.flash.as_ref()) else {
        return Err(RigError::Unsupported(crate::Capability::Flash));
    };
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

/// The native board's control switches under its `{state}` (see `board_control`).
pub(crate) fn board_control_dir(state: &Path) -> PathBuf {
    state.join("board-control")
}

/// A second board of the emulated rig's DUT: the same command as the
/// first, in its own namespace (`sbN-dut2`, 10.200.N.10, behind `gw`'s
/// `g2`), with its own provisioning and state directories, console and
/// power. Built by [`Rig::second_board`](crate::Rig::second_board).
pub struct EmulatedSecondBoard {
    board: BoardPower,
    dut: Arc<DutFile>,
    faults: Vec<String>,
    placeholders: Placeholders,
    netns: PathBuf,
    ipv4: std::net::Ipv4Addr,
    capture: CaptureTarget,
}

impl EmulatedSecondBoard {
    /// A board of `dut` (with `faults`) run with `placeholders` in `netns`
    /// at `ipv4`, captured at `capture`; powered off.
    pub(crate) fn new(
        dut: Arc<DutFile>,
        faults: Vec<String>,
        placeholders: Placeholders,
        netns: PathBuf,
        ipv4: std::net::Ipv4Addr,
        capture: CaptureTarget,
    ) -> EmulatedSecondBoard {
        EmulatedSecondBoard {
            board: BoardPower::default(),
            dut,
            faults,
            placeholders,
            netns,
            ipv4,
            capture,
        }
    }

    /// `{state}` of this board: its own flash, apart from the first board's.
    pub fn state_dir(&self) -> &Path {
        &self.placeholders.state
    }

    /// `{provisioning}` of this board.
    pub fn provisioning_dir(&self) -> &Path {
        &self.placeholders.provisioning
    }
}

#[async_trait::async_trait(?Send)]
impl SecondBoard for EmulatedSecondBoard {
    fn ipv4(&self) -> std::net::Ipv4Addr {
        self.ipv4
    }

    async fn power(&mut self, on: bool) -> Result<(), RigError> {
        self.board.off();
        if !on {
            self.board.console.note("rig: power off".into());
            return Ok(());
        }
        let cmd = board_command(&self.dut, &self.faults, &self.placeholders, &self.netns)?;
        let what = format!(
            "{:?} (emulated.command of {}, second board)",
            self.dut.emulated.as_ref().map(|e| &e.command[0]),
            self.dut.file.display()
        );
        self.board.on(cmd, &what)
    }

    async fn logs(&mut self) -> Result<Vec<LogLine>, RigError> {
        Ok(self.board.console.take_new())
    }

    fn console_lines(&self) -> Vec<String> {
        self.board.console.lines()
    }

    async fn wait_console_from(
        &self,
        from: usize,
        guard: Duration,
        pred: LinePredicate<'_>,
    ) -> Option<(usize, String)> {
        self.board.console.wait_from(from, guard, pred).await
    }

    fn capture_target(&self) -> Result<CaptureTarget, RigError> {
        Ok(self.capture.clone())
    }
}
