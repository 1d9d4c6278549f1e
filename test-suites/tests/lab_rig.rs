//! The suites on a lab rig, end to end, with no hardware: `sacbench-suite`
//! runs with `SACBENCH_RIG=rig.toml` (what `cargo xtask bench --rig` does)
//! against a fake lab board that is wired like a real one:
//!
//! - power and link are coils of a Modbus TCP relay (tokio-modbus server);
//!   switching the power coil starts or kills the emulated board;
//! - the console is a serial port: a pty pair made by `socat`;
//! - the DUT sits alone behind the bench NIC (a veth in a namespace), and
//!   the bench — the suite process, its hub and its capture — runs on the
//!   other side, in the bench's namespace, as on a lab host;
//! - flashing and provisioning are the rig file's commands.
//!
//! Own main (libtest-mimic): the process first enters the rig sandbox
//! (private user, net, mount and PID namespaces), where the fake lab's
//! namespaces are made; nothing is created in the host's.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::future::ready;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Failed, Trial};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use sacbench_rig::emulated::sandbox::{self, Sandbox};
use sacbench_rig::emulated::topology::{in_netns, Node, Topology};
use sacbench_suites::model::Outcome;
use sacbench_test_support::PtyPair;
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

const SUITE: &str = env!("CARGO_BIN_EXE_sacbench-suite");
const POWER_COIL: u16 = 0;
const LINK_COIL: u16 = 1;
const SLOT_SIZE: &str = "33554432";

/// The board behind the relay: a device (the reference board's bootloader
/// and firmware, or a foreign device) in the DUT's namespace, its console
/// written to the board end of the pty.
#[derive(Clone)]
struct FakeBoard {
    topo: Arc<Topology>,
    dir: PathBuf,
    /// What power-on runs (the board's firmware), in `cwd`.
    argv: Vec<String>,
    cwd: PathBuf,
    running: Arc<Mutex<Option<Child>>>,
    /// Every coil write, for the test's own checks.
    writes: Arc<Mutex<Vec<(u16, bool)>>>,
}

impl FakeBoard {
    fn power(&self, on: bool) -> Result<(), ExceptionCode> {
        let mut running = self.running.lock().unwrap();
        if let Some(mut board) = running.take() {
            let _ = killpg(Pid::from_raw(board.id() as i32), Signal::SIGKILL);
            let _ = board.wait();
        }
        if !on {
            return Ok(());
        }
        let mut child = self
            .topo
            .command(Node::Dut, &self.argv[0])
            .args(&self.argv[1..])
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|_| ExceptionCode::ServerDeviceFailure)?;
        let stderr = child.stderr.take().expect("piped");
        let tty = self.dir.join("board-tty");
        std::thread::spawn(move || {
            let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open(&tty) else {
                return;
            };
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // A serial console ends lines with CR LF.
                let _ = write!(tty, "{line}\r\n");
            }
        });
        *running = Some(child);
        Ok(())
    }
}

impl Service for FakeBoard {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = std::future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        ready(match req.request {
            Request::WriteSingleCoil(coil, value) => {
                self.writes.lock().unwrap().push((coil, value));
                let done = match coil {
                    POWER_COIL => self.power(value),
                    LINK_COIL => self
                        .topo
                        .set_link(value)
                        .map_err(|_| ExceptionCode::ServerDeviceFailure),
                    _ => Err(ExceptionCode::IllegalDataAddress),
                };
                done.map(|()| Response::WriteSingleCoil(coil, value))
            }
            _ => Err(ExceptionCode::IllegalFunction),
        })
    }
}

impl Drop for FakeBoard {
    fn drop(&mut self) {
        if Arc::strong_count(&self.running) == 1 {
            let _ = self.power(false);
        }
    }
}

/// The fake lab: the DUT's namespace behind `g0` of the bench's namespace
/// (the topology's `gw`), the relay on the bench's loopback, the console
/// pty, and the rig file describing it all.
struct FakeLab {
    topo: Arc<Topology>,
    board: FakeBoard,
    rig_file: PathBuf,
    _console: PtyPair,
    _runtime: tokio::runtime::Runtime,
}

/// The emulated board's executable, built beside the suite (as the suite finds it).
fn device() -> PathBuf {
    Path::new(SUITE).with_file_name("device-native")
}

fn dev_key() -> PathBuf {
    sacbench_test_support::dev_key_path()
}

/// Which device sits on the fake lab board.
enum Firmware {
    /// The reference firmware, flashed by the rig file's `[flasher]`.
    Reference,
    /// A foreign device run from its DUT file's folder with this argv
    /// (`{provisioning}` and `{state}` replaced); no flashing.
    Foreign { dut_dir: PathBuf, argv: Vec<String> },
}

impl FakeLab {
    fn build(dir: &Path, id: u8, firmware: Firmware) -> Result<FakeLab, Failed> {
        if !device().is_file() {
            return Err(format!(
                "{} not built (cargo build -p device-native)",
                device().display()
            )
            .into());
        }
        let topo = Arc::new(Topology::create(id)?);
        // The console: a pty pair.
        let console = PtyPair::link(&dir.join("board-tty"), &dir.join("bench-tty"))?;

        let (flash, prov, state) = (
            dir.join("flash.bin"),
            dir.join("provisioning"),
            dir.join("state"),
        );
        let p = |s: &Path| s.display().to_string();
        let (argv, cwd) = match &firmware {
            Firmware::Reference => (
                vec![
                    p(&device()),
                    "boot".into(),
                    "--flash".into(),
                    p(&flash),
                    "--provisioning".into(),
                    p(&prov),
                    "--run-dir".into(),
                    p(&dir.join("run")),
                ],
                dir.to_owned(),
            ),
            Firmware::Foreign { dut_dir, argv } => (
                argv.iter()
                    .map(|a| {
                        a.replace("{provisioning}", &p(&prov))
                            .replace("{state}", &p(&state))
                    })
                    .collect(),
                dut_dir.clone(),
            ),
        };
        let board = FakeBoard {
            topo: topo.clone(),
            dir: dir.to_owned(),
            argv,
            cwd,
            running: Arc::default(),
            writes: Arc::default(),
        };
        // The relay listens on the bench's loopback, as a relay on the lab LAN would.
        let std_listener = in_netns(topo.netns_path(Node::Gw), || {
            std::net::TcpListener::bind("127.0.0.1:1502")
        })??;
        std_listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let service = board.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            let on_connected = move |stream, peer| {
                let service = service.clone();
                ready(accept_tcp_connection(stream, peer, move |_| {
                    Ok(Some(service.clone()))
                }))
            };
            let _ = Server::new(listener)
                .serve(&on_connected, |e| eprintln!("relay: {e}"))
                .await;
        });

        // The image the rig file names: the reference firmware, v1.0.0, counter 1.
        sacbench_test_support::write_v1_image(&device(), dir);

        let q = |p: &Path| format!("{:?}", p.display().to_string());
        // Provisioning = factory state (erased flash and state) plus the
        // provisioning directory, as a production line would leave the board.
        let provision = format!(
            "rm -rf {flash} {prov} {state} && mkdir {state} && {device:?} make-flash {flash} --slot-size {SLOT_SIZE} && cp -r \"$1\" {prov}",
            prov = q(&prov),
            state = q(&state),
            flash = q(&flash),
            device = device().display().to_string(),
        );
        let flashing = match firmware {
            Firmware::Reference => format!(
                r#"[image]
path = "v1.img"
signing_key = {key:?}

[flasher]
command = [{device:?}, "write-image", "--flash", {flash}, "--slot", "primary", "{{image}}"]
"#,
                key = dev_key().display().to_string(),
                device = device().display().to_string(),
                flash = q(&flash),
            ),
            Firmware::Foreign { .. } => String::new(),
        };
        let rig = format!(
            r#"name = "fake lab board"

{flashing}
[provisioning]
command = ["sh", "-c", {provision:?}, "provision", "{{provisioning}}"]

[console]
port = {tty}
baud = 115200

[power]
tcp = "127.0.0.1:1502"
unit = 1
coil = {POWER_COIL}

[link]
coil = {LINK_COIL}

[capture]
interface = "{ifname}"

[dut]
ipv4 = "{dut}"
ipv6_link_local = "fe80::2"

[hub]
ipv4 = "{bench}"
host_name = "{bench_host}"
"#,
            bench_host = Topology::addresses(id).gw_host,
            tty = q(&dir.join("bench-tty")),
            ifname = Topology::GW_DUT_IF,
            dut = topo.dut_ipv4(),
            bench = topo.ipv4(1),
        );
        let rig_file = dir.join("rig.toml");
        std::fs::write(&rig_file, rig)?;
        Ok(FakeLab {
            topo,
            board,
            rig_file,
            _console: console,
            _runtime: runtime,
        })
    }

    /// `sacbench-suite` on the bench side, as `cargo xtask bench` runs it.
    fn run_suite(
        &self,
        out: &Path,
        only: &str,
        fault: Option<&str>,
        dut: Option<&Path>,
    ) -> std::process::Output {
        let mut cmd = self.topo.command(Node::Gw, SUITE);
        match dut {
            Some(d) => cmd.env("SACBENCH_DUT", d),
            None => cmd.env_remove("SACBENCH_DUT"),
        };
        cmd.env("SACBENCH_RIG", &self.rig_file)
            .env("SACBENCH_OUT", out)
            .env("SACBENCH_ONLY", only)
            .env_remove("SACBENCH_FAULT");
        if let Some(f) = fault {
            cmd.env("SACBENCH_FAULT", f);
        }
        cmd.output().expect("the suite runs")
    }
}

fn outcome(report: &sacbench_suites::model::RunReport, id: &str) -> (Outcome, String) {
    let c = report
        .cases
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("{id} in the report"));
    (c.outcome, c.seen.clone())
}

/// The good reference firmware on the lab rig: cases across the groups pass
/// (power and link by relay, flashing and provisioning by command, the hub on
/// the bench NIC, captures from the bench side); a case that needs the
/// emulated board is ignored with the reason.
fn reference_board_passes_on_the_lab_rig() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let lab = FakeLab::build(dir.path(), 1, Firmware::Reference)?;
    let out = dir.path().join("run");
    let run = lab.run_suite(
        &out,
        "NI-03,NI-04,MT-01,MT-13,MT-14,KR-01,OTA-01,CD-01,CD-20",
        None,
        None,
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let report = sacbench_suites::report::read_run(&out)
        .map_err(|e| format!("no report ({e}); suite said: {stdout}"))?;
    for id in ["NI-04", "MT-01", "MT-14", "KR-01", "OTA-01", "CD-01"] {
        let (o, seen) = outcome(&report, id);
        if o != Outcome::Passed {
            return Err(format!("{id}: {o:?}: {seen}\n{stdout}").into());
        }
    }
    // The report names the lab rig it ran on.
    if report.rig.kind != "lab" || !report.rig.name.ends_with("rig.toml") {
        return Err(format!("rig in the report: {:?}", report.rig).into());
    }
    let (o, seen) = outcome(&report, "NI-03");
    if o != Outcome::Ignored || !seen.contains("emulated board") {
        return Err(format!("NI-03 must be ignored on a lab rig: {o:?}: {seen}").into());
    }
    // One board on the rig: CD-20 is not run, MT-13 runs its single-board form.
    let (o, seen) = outcome(&report, "CD-20");
    if o != Outcome::Ignored || !seen.contains("second board") {
        return Err(format!("CD-20 must be ignored on a one-board rig: {o:?}: {seen}").into());
    }
    let (o, seen) = outcome(&report, "MT-13");
    if o != Outcome::Passed || !seen.contains("no second board") {
        return Err(format!("MT-13 on a one-board rig: {o:?}: {seen}").into());
    }
    if run.status.code() != Some(0) {
        return Err(format!("exit {:?}: {stdout}", run.status.code()).into());
    }
    // The relay really carried power and link.
    let writes = lab.board.writes.lock().unwrap().clone();
    for (coil, value) in [(POWER_COIL, true), (POWER_COIL, false), (LINK_COIL, false)] {
        if !writes.contains(&(coil, value)) {
            return Err(format!("no relay write {coil}={value}: {writes:?}").into());
        }
    }
    Ok(())
}

/// A fault in the firmware on the lab rig fails its case, as on the emulated rig.
fn faulty_board_fails_on_the_lab_rig() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let lab = FakeLab::build(dir.path(), 2, Firmware::Reference)?;
    let out = dir.path().join("run");
    let run = lab.run_suite(&out, "MT-01", Some("plaintext-hello"), None);
    let report = sacbench_suites::report::read_run(&out)?;
    let (o, seen) = outcome(&report, "MT-01");
    // Failed for the fault, not for the rig: the verdict is the case's own.
    if o != Outcome::Failed || seen.contains("setup error") || run.status.code() != Some(101) {
        return Err(format!(
            "MT-01 must fail against plaintext-hello: {o:?} ({seen}), exit {:?}",
            run.status.code()
        )
        .into());
    }
    Ok(())
}

/// A bad rig file stops the run before any case: one error naming the file,
/// the line and the field; exit 2.
fn bad_rig_file_is_one_clear_error() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let rig = dir.path().join("rig.toml");
    std::fs::write(
        &rig,
        "[dut]\nipv4 = \"192.0.2.20\"\n\n[hub]\nipv4 = \"192.0.2.1\"\n\n[provisioning]\ncommand = [\"./provision.sh\"]\n",
    )?;
    let out = Command::new(SUITE)
        .env("SACBENCH_RIG", &rig)
        .env("SACBENCH_OUT", dir.path().join("run"))
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "{}:8: `provisioning.command`: no argument contains {{provisioning}}",
        rig.display()
    );
    if out.status.code() != Some(2) || !stderr.contains(&want) || stderr.lines().count() != 1 {
        return Err(format!(
            "exit {:?}, stderr {stderr:?}; wanted {want:?}",
            out.status.code()
        )
        .into());
    }
    if dir.path().join("run").exists() {
        return Err("a run directory was made for a bad rig file".into());
    }
    Ok(())
}

/// A device nobody here wrote on the lab rig: the deliberately insecure
/// paho-mqtt device, provisioned by the rig file's command, powered by the
/// relay. Its open port fails NI-01 and its unverified hub certificate
/// MT-05; what it correctly does passes; what it does not implement is
/// `not_applicable`, never failed.
fn foreign_board_is_judged_on_the_lab_rig() -> Result<(), Failed> {
    let dut_dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/insecure-python-device");
    let dut_file = dut_dir.join("dut.toml");
    let dut = sacbench_rig::dut::DutFile::load(&dut_file).map_err(|e| e.to_string())?;
    let argv = dut
        .emulated
        .ok_or("the example has an [emulated] command")?
        .command;
    let dir = tempfile::tempdir()?;
    let lab = FakeLab::build(dir.path(), 3, Firmware::Foreign { dut_dir, argv })?;
    let out = dir.path().join("run");
    let run = lab.run_suite(&out, "NI-01,MT-04,MT-05,KR-01", None, Some(&dut_file));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let report = sacbench_suites::report::read_run(&out)
        .map_err(|e| format!("no report ({e}); suite said: {stdout}"))?;
    let want = [
        ("NI-01", Outcome::Failed, "2323"),
        ("MT-04", Outcome::Passed, ""),
        ("MT-05", Outcome::Failed, ""),
        ("KR-01", Outcome::NotApplicable, "est-rotation"),
    ];
    for (id, outcome_wanted, mention) in want {
        let (o, seen) = outcome(&report, id);
        if o != outcome_wanted || !seen.contains(mention) {
            return Err(format!(
                "{id}: {o:?} ({seen}), wanted {outcome_wanted:?} mentioning {mention:?}\n{stdout}"
            )
            .into());
        }
    }
    Ok(())
}

fn main() {
    match sandbox::enter() {
        Ok(Sandbox::Finished(status)) => std::process::exit(sandbox::exit_code(status)),
        Ok(Sandbox::Inside) => {}
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
    let tests = vec![
        Trial::test(
            "reference_board_passes_on_the_lab_rig",
            reference_board_passes_on_the_lab_rig,
        ),
        Trial::test(
            "faulty_board_fails_on_the_lab_rig",
            faulty_board_fails_on_the_lab_rig,
        ),
        Trial::test(
            "bad_rig_file_is_one_clear_error",
            bad_rig_file_is_one_clear_error,
        ),
        Trial::test(
            "foreign_board_is_judged_on_the_lab_rig",
            foreign_board_is_judged_on_the_lab_rig,
        ),
    ];
    libtest_mimic::run(&Arguments::from_args(), tests).exit();
}
