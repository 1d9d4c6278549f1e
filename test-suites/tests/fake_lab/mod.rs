//! The fake lab both lab-rig tests use: an emulated board behind a Modbus
//! TCP relay (its power coil starts and kills the board, its link coil
//! switches the DUT's link), a console pty made by socat, the DUT in a
//! namespace behind a veth, and the rig file describing it all. `lab_rig.rs`
//! runs the suites on it directly, `labgrid_farm.rs` through a labgrid place.
#![allow(dead_code)] // each test file uses its own part

use std::future::ready;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

use libtest_mimic::Failed;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use sacbench_rig::emulated::topology::{in_netns, Node, Topology};
use sacbench_suites::model::Outcome;
use sacbench_test_support::PtyPair;
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

pub const SUITE: &str = env!("CARGO_BIN_EXE_sacbench-suite");
pub const POWER_COIL: u16 = 0;
pub const LINK_COIL: u16 = 1;
const SLOT_SIZE: &str = "33554432";

/// The board behind the relay: a device (the reference board's bootloader
/// and firmware, or a foreign device) in the DUT's namespace, its console
/// written to the board end of the pty.
#[derive(Clone)]
pub struct FakeBoard {
    topo: Arc<Topology>,
    dir: PathBuf,
    /// What power-on runs (the board's firmware), in `cwd`.
    argv: Vec<String>,
    cwd: PathBuf,
    running: Arc<Mutex<Option<Child>>>,
    /// Every coil write, for the test's own checks.
    pub writes: Arc<Mutex<Vec<(u16, bool)>>>,
}

impl FakeBoard {
    pub fn power(&self, on: bool) -> Result<(), ExceptionCode> {
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
pub struct FakeLab {
    pub topo: Arc<Topology>,
    pub board: FakeBoard,
    pub rig_file: PathBuf,
    /// The rig file without its hardware tables ([console], [power], [link]).
    pub rig_common: String,
    /// The console pty's bench end.
    pub bench_tty: PathBuf,
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
pub enum Firmware {
    /// The reference firmware, flashed by the rig file's `[flasher]`.
    Reference,
    /// A foreign device run from its DUT file's folder with this argv
    /// (`{provisioning}` and `{state}` replaced); no flashing.
    Foreign { dut_dir: PathBuf, argv: Vec<String> },
}

impl FakeLab {
    pub fn build(dir: &Path, id: u8, firmware: Firmware) -> Result<FakeLab, Failed> {
        if !device().is_file() {
            return Err(format!(
                "{} not built (cargo build -p device-native)",
                device().display()
            )
            .into());
        }
        let topo = Arc::new(Topology::create(
            id,
            sacbench_rig::dut::BoardNetwork::Namespace,
        )?);
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
        let hardware = format!(
            r#"
[console]
port = {tty}
baud = 115200

[power]
tcp = "127.0.0.1:1502"
unit = 1
coil = {POWER_COIL}

[link]
coil = {LINK_COIL}
"#,
            tty = q(&dir.join("bench-tty")),
        );
        let rig_common = format!(
            r#"name = "fake lab board"

{flashing}
[provisioning]
command = ["sh", "-c", {provision:?}, "provision", "{{provisioning}}"]

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
            ifname = Topology::GW_DUT_IF,
            dut = topo.dut_ipv4(),
            bench = topo.ipv4(1),
        );
        let rig_file = dir.join("rig.toml");
        std::fs::write(&rig_file, format!("{rig_common}{hardware}"))?;
        Ok(FakeLab {
            topo,
            board,
            rig_file,
            rig_common,
            bench_tty: dir.join("bench-tty"),
            _console: console,
            _runtime: runtime,
        })
    }

    /// `sacbench-suite` on the bench side with rig file `rig`, as `cargo
    /// xtask bench` runs it, not started yet.
    pub fn suite_command(&self, rig: &Path, out: &Path, only: &str) -> std::process::Command {
        let mut cmd = self.topo.command(Node::Gw, SUITE);
        cmd.env_remove("SACBENCH_DUT")
            .env_remove("SACBENCH_FAULT")
            .env("SACBENCH_RIG", rig)
            .env("SACBENCH_OUT", out)
            .env("SACBENCH_ONLY", only);
        cmd
    }

    /// `sacbench-suite` on the bench side, as `cargo xtask bench` runs it.
    pub fn run_suite(
        &self,
        out: &Path,
        only: &str,
        fault: Option<&str>,
        dut: Option<&Path>,
    ) -> std::process::Output {
        let mut cmd = self.suite_command(&self.rig_file, out, only);
        if let Some(d) = dut {
            cmd.env("SACBENCH_DUT", d);
        }
        if let Some(f) = fault {
            cmd.env("SACBENCH_FAULT", f);
        }
        cmd.output().expect("the suite runs")
    }
}

/// A networked power switch for the fake board, as labgrid's `simplerest`
/// power-port model drives one: `GET /relay/{index}/{value}` switches port
/// `index` (0: the board) to `value` (1 on, 0 off) and answers 200. Listens
/// on 127.0.0.1:`port` in the bench's namespace; each switch is recorded in
/// the board's writes as (index, value).
pub fn serve_http_power(lab: &FakeLab, port: u16) -> Result<(), Failed> {
    let listener = in_netns(lab.topo.netns_path(Node::Gw), move || {
        std::net::TcpListener::bind(("127.0.0.1", port))
    })??;
    let board = lab.board.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(&stream);
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut header = String::new();
                match reader.read_line(&mut header) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if header == "\r\n" => break,
                    Ok(_) => {}
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or_default();
            let status = match path.strip_prefix("/relay/").and_then(|r| r.split_once('/')) {
                Some(("0", v @ ("0" | "1"))) => {
                    board.writes.lock().unwrap().push((0, v == "1"));
                    match board.power(v == "1") {
                        Ok(()) => "200 OK",
                        Err(_) => "500 Internal Server Error",
                    }
                }
                _ => "404 Not Found",
            };
            let _ = write!(
                &stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    Ok(())
}

pub fn outcome(report: &sacbench_suites::model::RunReport, id: &str) -> (Outcome, String) {
    let c = report
        .cases
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("{id} in the report"));
    (c.outcome, c.seen.clone())
}
