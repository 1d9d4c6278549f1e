//! The suites on a labgrid farm, against the real thing: labgrid's own
//! coordinator and exporter (the `labgrid` package from PyPI, 26.0.1) in the
//! fake lab's bench namespace, on loopback. The exporter exports the fake
//! lab's Modbus relay coils as `ModbusTCPCoil`s (`power`, `link`), its
//! console pty as a `NetworkSerialPort` (the exporter runs Debian's ser2net
//! for it, RFC 2217) and the DUT's address as a `NetworkService`; a place
//! matches them. The rig file names the place
//! (`[labgrid]`) instead of the hardware, and `sacbench-suite`:
//!
//! - runs the cases through the place and passes what the fake lab passes;
//! - waits while another bench holds the place, then runs;
//! - recovers the place a SIGKILLed bench left acquired, and says so.
//!
//! Every wait is on an event: a line the coordinator, the exporter or a
//! bench prints, a process's exit.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod fake_lab;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fake_lab::{outcome, FakeLab, Firmware, LINK_COIL, POWER_COIL};
use libtest_mimic::{Arguments, Failed, Trial};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use sacbench_rig::emulated::sandbox;
use sacbench_rig::emulated::topology::Node;
use sacbench_suites::model::Outcome;

const COORDINATOR: &str = "127.0.0.1:20408";
const PLACE: &str = "fakelab";
const EXPORTER: &str = "fakelab-exporter";
/// The bound on any one wait for a line: far above what it takes.
const LINE_WAIT: Duration = Duration::from_secs(60);

/// The labgrid programs and ser2net, on PATH, or the command that installs them.
fn check_tools() -> Result<(), Failed> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for tool in [
        "labgrid-coordinator",
        "labgrid-exporter",
        "labgrid-client",
        "ser2net",
    ] {
        let found = std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/sbin")])
            .any(|d| d.join(tool).is_file());
        if !found {
            return Err(format!(
                "{tool} is not on PATH: python3 -m pip install labgrid==26.0.1 && apt-get install ser2net (cargo xtask installs both as root)"
            )
            .into());
        }
    }
    Ok(())
}

/// Lines of a child's output, as they come.
struct Lines {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn of(out: impl std::io::Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Read to the end even when nobody listens any more: a closed
            // pipe would break the program's next print.
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `want`; the lines so far when it does not come.
    fn wait_for(&mut self, want: &str, who: &str) -> Result<String, Failed> {
        loop {
            match self.rx.recv_timeout(LINE_WAIT) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(want) {
                        return Ok(line);
                    }
                }
                Err(_) => {
                    return Err(format!(
                        "{who} never said {want:?}; it said:\n{}",
                        self.seen.join("\n")
                    )
                    .into())
                }
            }
        }
    }

    /// Everything, to the end of the output.
    fn rest(mut self) -> String {
        while let Ok(line) = self.rx.recv() {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }
}

/// labgrid's coordinator and exporter serving the fake lab as place `fakelab`.
struct Farm {
    children: Vec<Child>,
    rig_file: PathBuf,
}

impl Drop for Farm {
    fn drop(&mut self) {
        for c in &mut self.children {
            // The exporter's ser2net is in its process group.
            let _ = killpg(Pid::from_raw(c.id() as i32), Signal::SIGKILL);
            let _ = c.wait();
        }
    }
}

fn labgrid_client(lab: &FakeLab, args: &[&str]) -> Result<String, Failed> {
    let out = lab
        .topo
        .command(Node::Gw, "labgrid-client")
        .args(["-x", COORDINATOR])
        .args(args)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "labgrid-client {args:?}: {}\n{text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(text)
}

/// What switches the board's power on the place.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Power {
    /// The fake lab's Modbus relay: `ModbusTCPCoil`s `power` and `link`.
    Coils,
    /// A `NetworkPowerPort` of model `simplerest` (HTTP), and no link.
    Simplerest,
}

const HTTP_POWER_PORT: u16 = 8080;

fn start_farm(lab: &FakeLab, dir: &Path) -> Result<Farm, Failed> {
    start_farm_with(lab, dir, Power::Coils)
}

fn start_farm_with(lab: &FakeLab, dir: &Path, power: Power) -> Result<Farm, Failed> {
    check_tools()?;
    let mut farm = Farm {
        children: Vec::new(),
        rig_file: dir.join("rig-labgrid.toml"),
    };
    let log = |name: &str| std::fs::File::create(dir.join(name));
    // The coordinator keeps its places in its working directory.
    let mut coordinator = lab
        .topo
        .command(Node::Gw, "labgrid-coordinator")
        .args(["-l", COORDINATOR])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log("coordinator.log")?)
        .process_group(0)
        .spawn()?;
    let mut said = Lines::of(coordinator.stdout.take().unwrap());
    farm.children.push(coordinator);
    said.wait_for("listening on", "labgrid-coordinator")?;

    // The console pty's bench end is a /dev/pts device (the exporter insists on /dev/).
    let tty = std::fs::canonicalize(&lab.bench_tty)?;
    let switches = match power {
        Power::Coils => format!(
            r#"  power:
    cls: ModbusTCPCoil
    host: "127.0.0.1:1502"
    coil: {POWER_COIL}
  link:
    cls: ModbusTCPCoil
    host: "127.0.0.1:1502"
    coil: {LINK_COIL}
"#
        ),
        Power::Simplerest => {
            fake_lab::serve_http_power(lab, HTTP_POWER_PORT)?;
            format!(
                r#"  power:
    cls: NetworkPowerPort
    model: simplerest
    host: "http://127.0.0.1:{HTTP_POWER_PORT}/relay/{{index}}/{{value}}"
    index: 0
"#
            )
        }
    };
    let config = format!(
        r#"{PLACE}:
  RawSerialPort:
    port: "{tty}"
    speed: 115200
{switches}  dut:
    cls: NetworkService
    address: "{dut}"
    username: "root"
broken:
  power:
    cls: NetworkPowerPort
    model: gude
    host: "192.0.2.9"
    index: 1
"#,
        tty = tty.display(),
        dut = lab.topo.dut_ipv4(),
    );
    std::fs::write(dir.join("exporter.yaml"), config)?;
    let mut exporter = lab
        .topo
        .command(Node::Gw, "labgrid-exporter")
        .args(["-c", COORDINATOR, "--hostname", "127.0.0.1", "-n", EXPORTER])
        .arg(dir.join("exporter.yaml"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log("exporter.log")?)
        .process_group(0)
        .spawn()?;
    let mut said = Lines::of(exporter.stdout.take().unwrap());
    farm.children.push(exporter);
    said.wait_for("Exporter ready", "labgrid-exporter")?;
    // The place: everything the exporter exports in its group.
    labgrid_client(lab, &["-p", PLACE, "create"])?;
    labgrid_client(
        lab,
        &["-p", PLACE, "add-match", &format!("{EXPORTER}/{PLACE}/*")],
    )?;
    // And a place the bench cannot use: its power is a model it does not drive.
    labgrid_client(lab, &["-p", "broken", "create"])?;
    labgrid_client(
        lab,
        &["-p", "broken", "add-match", &format!("{EXPORTER}/broken/*")],
    )?;
    // The exporter sends its resources after it says it is ready; each
    // labgrid-client call is a full round trip through the coordinator, so
    // this ends within a few calls (bounded: a farm that never shows them fails).
    let count = if power == Power::Coils { 5 } else { 4 };
    let mut listed = String::new();
    for _ in 0..20 {
        listed = labgrid_client(lab, &["resources"])?;
        if listed.lines().filter(|l| l.contains(EXPORTER)).count() == count {
            break;
        }
    }
    if listed.lines().filter(|l| l.contains(EXPORTER)).count() != count {
        return Err(format!("the exporter's {count} resources never showed: {listed}").into());
    }
    // The DUT's IPv4 address comes from the place's NetworkService, not the rig file.
    let dut_line = format!("ipv4 = \"{}\"\n", lab.topo.dut_ipv4());
    if !lab.rig_common.contains(&dut_line) {
        return Err(format!("test bug: no {dut_line:?} in the fake lab's rig file").into());
    }
    let rig = format!(
        "{}\n[labgrid]\ncoordinator = \"{COORDINATOR}\"\nplace = \"{PLACE}\"\ntimeout_s = 120\n",
        lab.rig_common.replace(&dut_line, "")
    );
    std::fs::write(&farm.rig_file, rig)?;
    Ok(farm)
}

/// A bench on the farm, started: its stderr read line by line.
fn start_bench(lab: &FakeLab, farm: &Farm, dir: &Path, out: &str, only: &str) -> (Child, Lines) {
    let mut child = lab
        .suite_command(&farm.rig_file, &dir.join(out), only)
        // The benches' acquisition records: this test's own.
        .env("XDG_STATE_HOME", dir.join("state"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the suite starts");
    let lines = Lines::of(child.stderr.take().unwrap());
    (child, lines)
}

/// The place's holder as labgrid-client shows it (`None` when free).
fn acquired_by(lab: &FakeLab) -> Result<String, Failed> {
    let shown = labgrid_client(lab, &["-p", PLACE, "show"])?;
    shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("acquired: "))
        .map(str::to_owned)
        .ok_or_else(|| format!("no acquired: line in {shown}").into())
}

fn passed(dir: &Path, out: &str, ids: &[&str], said: &str) -> Result<(), Failed> {
    let report = sacbench_suites::report::read_run(&dir.join(out))
        .map_err(|e| format!("no report in {out} ({e}); the bench said:\n{said}"))?;
    for id in ids {
        let (o, seen) = outcome(&report, id);
        if o != Outcome::Passed {
            return Err(format!("{out}: {id}: {o:?}: {seen}\n{said}").into());
        }
    }
    if !report
        .rig
        .name
        .contains(&format!("labgrid place {PLACE} on {COORDINATOR}"))
    {
        return Err(format!(
            "{out}: the report's rig does not name the place: {:?}",
            report.rig
        )
        .into());
    }
    Ok(())
}

/// The bench exited 0 and its run passed `ids` ([`passed`]).
fn exited_0_and_passed(
    dir: &Path,
    out: &str,
    ids: &[&str],
    status: ExitStatus,
    said: &str,
) -> Result<(), Failed> {
    passed(dir, out, ids, said)?;
    if status.code() != Some(0) {
        return Err(format!("{out}: exit {:?}:\n{said}", status.code()).into());
    }
    Ok(())
}

/// Two benches on one place, in a fixed order: `holder` has acquired it and
/// is stopped (SIGSTOP), so the place stays held however fast either runs;
/// `waiter` was started after it. `waiting` is the waiter's "waiting for
/// place" line, or why it never came: the caller resumes or kills the holder
/// first, and only then looks at it (a holder left stopped hangs the test).
struct Contention {
    holder: Child,
    holder_pid: Pid,
    holder_lines: Lines,
    waiter: Child,
    waiter_lines: Lines,
    waiting: Result<String, Failed>,
}

fn contend(
    lab: &FakeLab,
    farm: &Farm,
    dir: &Path,
    holder: &str,
    waiter: &str,
) -> Result<Contention, Failed> {
    let (holder_child, mut holder_lines) = start_bench(lab, farm, dir, holder, "MT-01");
    holder_lines.wait_for(
        "labgrid: acquired place fakelab",
        &format!("the {holder} bench"),
    )?;
    let holder_pid = Pid::from_raw(holder_child.id() as i32);
    kill(holder_pid, Signal::SIGSTOP)?;
    let (waiter_child, mut waiter_lines) = start_bench(lab, farm, dir, waiter, "MT-01");
    let waiting = waiter_lines.wait_for(
        "labgrid: waiting for place fakelab",
        &format!("the {waiter} bench"),
    );
    Ok(Contention {
        holder: holder_child,
        holder_pid,
        holder_lines,
        waiter: waiter_child,
        waiter_lines,
        waiting,
    })
}

/// The reference board through the place: the cases pass as on the fake lab
/// itself, power and link switched through the place's ModbusTCPCoils, the
/// console read over RFC 2217 from the exporter's ser2net, the DUT's address
/// from its NetworkService; the place is free again at the end.
fn reference_board_passes_through_a_labgrid_place() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let lab = FakeLab::build(dir.path(), 11, Firmware::Reference)?;
    let farm = start_farm(&lab, dir.path())?;
    let ids = ["NI-04", "MT-01", "KR-01", "CD-01"];
    let (mut bench, lines) = start_bench(&lab, &farm, dir.path(), "run", &ids.join(","));
    let status = bench.wait()?;
    let said = lines.rest();
    exited_0_and_passed(dir.path(), "run", &ids, status, &said)?;
    for want in [
        "labgrid: acquired place fakelab on 127.0.0.1:20408",
        "labgrid: released place fakelab",
    ] {
        if !said.contains(want) {
            return Err(format!("the bench never said {want:?}:\n{said}").into());
        }
    }
    let writes = lab.board.writes.lock().unwrap().clone();
    for (coil, value) in [(POWER_COIL, true), (POWER_COIL, false), (LINK_COIL, false)] {
        if !writes.contains(&(coil, value)) {
            return Err(
                format!("no relay write {coil}={value} through the place: {writes:?}").into(),
            );
        }
    }
    let holder = acquired_by(&lab)?;
    if holder != "None" {
        return Err(format!("the place is still acquired by {holder} after the run").into());
    }
    Ok(())
}

/// A place whose power is a NetworkPowerPort (model simplerest, HTTP):
/// the board is switched through it, and the case passes.
fn power_through_a_simplerest_power_port() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let lab = FakeLab::build(dir.path(), 15, Firmware::Reference)?;
    let farm = start_farm_with(&lab, dir.path(), Power::Simplerest)?;
    let (mut bench, lines) = start_bench(&lab, &farm, dir.path(), "run", "MT-01");
    let status = bench.wait()?;
    let said = lines.rest();
    exited_0_and_passed(dir.path(), "run", &["MT-01"], status, &said)?;
    // Switched over HTTP (index 0), and nothing through the relay.
    let writes = lab.board.writes.lock().unwrap().clone();
    if !writes.contains(&(0, true)) || !writes.contains(&(0, false)) || writes.len() < 2 {
        return Err(format!("no power on and off through the power port: {writes:?}").into());
    }
    Ok(())
}

/// Two benches, one place: the second waits (and says so) while the first
/// holds it, then runs once it is released.
fn contending_benches_take_turns() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let lab = FakeLab::build(dir.path(), 12, Firmware::Reference)?;
    let farm = start_farm(&lab, dir.path())?;
    // The first holds the place (stopped) until the second is seen waiting:
    // the order does not depend on how fast either runs.
    let Contention {
        holder: mut first,
        holder_pid: first_pid,
        holder_lines: first_lines,
        waiter: mut second,
        waiter_lines: second_lines,
        waiting,
    } = contend(&lab, &farm, dir.path(), "first", "second")?;
    kill(first_pid, Signal::SIGCONT)?;
    let waiting = waiting?;
    if !waiting.contains("up to 120 s") || !waiting.contains("held: fakelab by") {
        return Err(format!("the waiting line does not say by whom or how long: {waiting}").into());
    }
    let first_status = first.wait()?;
    let first_said = first_lines.rest();
    exited_0_and_passed(dir.path(), "first", &["MT-01"], first_status, &first_said)?;
    let second_status = second.wait()?;
    let second_said = second_lines.rest();
    exited_0_and_passed(
        dir.path(),
        "second",
        &["MT-01"],
        second_status,
        &second_said,
    )?;
    if !second_said.contains("labgrid: acquired place fakelab") {
        return Err(format!("second bench: never acquired the place:\n{second_said}").into());
    }
    Ok(())
}

/// A bench SIGKILLed while it holds the place leaves it acquired; the next
/// run on this host finds its record, sees the process gone, releases the
/// place with a message saying so, and runs.
fn a_killed_benchs_place_is_recovered_by_the_next_run() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let lab = FakeLab::build(dir.path(), 13, Firmware::Reference)?;
    let farm = start_farm(&lab, dir.path())?;
    let (mut killed, mut lines) = start_bench(&lab, &farm, dir.path(), "killed", "MT-01");
    lines.wait_for("labgrid: acquired place fakelab", "the first bench")?;
    kill(Pid::from_raw(killed.id() as i32), Signal::SIGKILL)?;
    killed.wait()?;
    let pid = killed.id();
    let holder = acquired_by(&lab)?;
    if holder == "None" {
        return Err("the killed bench's place is not acquired: nothing to recover".into());
    }
    let (mut next, lines) = start_bench(&lab, &farm, dir.path(), "next", "MT-01");
    let status = next.wait()?;
    let said = lines.rest();
    let want = format!(
        "labgrid: place fakelab on 127.0.0.1:20408 was left acquired by {holder} (the bench run with pid {pid},"
    );
    if !said.contains(&want)
        || !said.contains("which is no longer running: releasing it (by hand: labgrid-client -x 127.0.0.1:20408 -p fakelab release --kick)")
    {
        return Err(format!("no recovery message like {want:?}:\n{said}").into());
    }
    exited_0_and_passed(dir.path(), "next", &["MT-01"], status, &said)?;
    Ok(())
}

/// A bench killed while another waits for its place: the waiting one (same
/// host, same user) sees the killer's process gone, lifts the lock, and runs.
fn a_bench_killed_while_another_waits_is_recovered_by_the_waiting_one() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let lab = FakeLab::build(dir.path(), 16, Firmware::Reference)?;
    let farm = start_farm(&lab, dir.path())?;
    // Stopped while it holds the place, so the second bench must wait.
    let Contention {
        holder: mut first,
        holder_pid: first_pid,
        waiter: mut second,
        waiter_lines: mut second_lines,
        waiting,
        ..
    } = contend(&lab, &farm, dir.path(), "first", "second")?;
    kill(first_pid, Signal::SIGKILL)?;
    first.wait()?;
    waiting?;
    second_lines.wait_for(
        &format!("(the bench run with pid {}, started at", first.id()),
        "the second bench",
    )?;
    let status = second.wait()?;
    let said = second_lines.rest();
    exited_0_and_passed(dir.path(), "second", &["MT-01"], status, &said)?;
    Ok(())
}

/// SIGINT while a bench waits for the place: it gives up (exit 2). SIGTERM
/// while the bench holds the place: it stops, and releases the place before
/// it exits. And what is wrong on the farm's side stops the run before
/// any case with exit 2 and one line naming it: a place the coordinator does
/// not have, a coordinator nobody answers at, a place whose power is a model
/// the bench does not drive (acquired, then released by the drop guard).
fn interrupted_benches_give_up_or_release_and_farm_problems_are_exit_2() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let lab = FakeLab::build(dir.path(), 14, Firmware::Reference)?;
    let farm = start_farm(&lab, dir.path())?;

    // SIGINT while waiting for the place (held by a stopped bench): the
    // waiting bench gives up, exit 2, saying so; the holder runs on.
    let Contention {
        mut holder,
        holder_pid,
        holder_lines,
        mut waiter,
        waiter_lines,
        waiting,
    } = contend(&lab, &farm, dir.path(), "holder", "waiter")?;
    if waiting.is_ok() {
        kill(Pid::from_raw(waiter.id() as i32), Signal::SIGINT)?;
    }
    let waiter_status = waiter.wait()?;
    kill(holder_pid, Signal::SIGCONT)?;
    waiting?;
    let said = waiter_lines.rest();
    if waiter_status.code() != Some(2)
        || !said.contains("labgrid place fakelab: interrupted while waiting for it")
    {
        return Err(format!(
            "SIGINT while waiting: exit {:?}:\n{said}",
            waiter_status.code()
        )
        .into());
    }
    let holder_status = holder.wait()?;
    let holder_said = holder_lines.rest();
    if holder_status.code() != Some(0) {
        return Err(format!(
            "the holder: exit {:?}:\n{holder_said}",
            holder_status.code()
        )
        .into());
    }

    let (mut bench, mut lines) = start_bench(&lab, &farm, dir.path(), "term", "MT-01");
    lines.wait_for("labgrid: acquired place fakelab", "the bench")?;
    kill(Pid::from_raw(bench.id() as i32), Signal::SIGTERM)?;
    let status = bench.wait()?;
    let said = lines.rest();
    // 2 when the signal came before the first case, 130 during one.
    if !matches!(status.code(), Some(2 | 130)) || !said.contains("labgrid: released place fakelab")
    {
        return Err(format!("SIGTERM: exit {:?}:\n{said}", status.code()).into());
    }
    let holder = acquired_by(&lab)?;
    if holder != "None" {
        return Err(format!("still acquired by {holder} after SIGTERM:\n{said}").into());
    }

    for (labgrid, want) in [
        (
            format!("coordinator = \"{COORDINATOR}\"\nplace = \"nosuch\""),
            format!("labgrid place nosuch: the coordinator at {COORDINATOR} has no such place (it has: fakelab, broken)"),
        ),
        (
            "coordinator = \"127.0.0.1:1\"\nplace = \"fakelab\"".to_owned(),
            "labgrid coordinator 127.0.0.1:1: cannot connect".to_owned(),
        ),
        (
            format!("coordinator = \"{COORDINATOR}\"\nplace = \"broken\""),
            format!("labgrid exporter {EXPORTER}: NetworkPowerPort {EXPORTER}/broken/NetworkPowerPort/power: model \"gude\""),
        ),
    ] {
        let rig = dir.path().join("rig-bad.toml");
        std::fs::write(&rig, format!("{}\n[labgrid]\n{labgrid}\n", lab.rig_common))?;
        let out = lab
            .suite_command(&rig, &dir.path().join("bad"), "MT-01")
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(2) || !stderr.contains(&want) || stderr.lines().count() != 1 {
            return Err(format!("exit {:?}, stderr {stderr:?}; wanted exit 2 and {want:?}", out.status.code()).into());
        }
        if dir.path().join("bad").exists() {
            return Err("a run directory was made for a run that never got its place".into());
        }
    }
    // The unusable place was acquired, then released when the bench gave up.
    let shown = labgrid_client(&lab, &["-p", "broken", "show"])?;
    if !shown.contains("acquired: None") {
        return Err(format!("the unusable place is still acquired:\n{shown}").into());
    }
    Ok(())
}

fn main() {
    sandbox::enter_or_exit("");
    let tests = vec![
        Trial::test(
            "reference_board_passes_through_a_labgrid_place",
            reference_board_passes_through_a_labgrid_place,
        ),
        Trial::test(
            "contending_benches_take_turns",
            contending_benches_take_turns,
        ),
        Trial::test(
            "power_through_a_simplerest_power_port",
            power_through_a_simplerest_power_port,
        ),
        Trial::test(
            "a_killed_benchs_place_is_recovered_by_the_next_run",
            a_killed_benchs_place_is_recovered_by_the_next_run,
        ),
        Trial::test(
            "a_bench_killed_while_another_waits_is_recovered_by_the_waiting_one",
            a_bench_killed_while_another_waits_is_recovered_by_the_waiting_one,
        ),
        Trial::test(
            "interrupted_benches_give_up_or_release_and_farm_problems_are_exit_2",
            interrupted_benches_give_up_or_release_and_farm_problems_are_exit_2,
        ),
    ];
    libtest_mimic::run(&Arguments::from_args(), tests).exit();
}
