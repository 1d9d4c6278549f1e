//! A Modbus RTU power relay on a serial line: a pty pair is the RS-485
//! adapter, tokio-modbus's RTU server on one end is the relay board,
//! `LabRig` talks on the other end, and `mbpoll` (RTU mode) reads back the coil.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::future::ready;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use sacbench_rig::lab::{LabRig, RigConfig};
use sacbench_rig::Rig;

/// Two connected ptys (the rig's own `openpty` pair) standing for the
/// RS-485 adapter: the relay board on one end, the bench on the other.
struct Bus {
    _line: sacbench_rig::pty::PtyPair,
    _dir: tempfile::TempDir,
    relay_end: PathBuf,
    bench_end: PathBuf,
}

impl Bus {
    fn new() -> Bus {
        let dir = tempfile::tempdir().expect("temp dir");
        let (relay_end, bench_end) = (dir.path().join("relay"), dir.path().join("bench"));
        let line = sacbench_rig::pty::PtyPair::link(&relay_end, &bench_end).expect("a pty pair");
        Bus {
            _line: line,
            _dir: dir,
            relay_end,
            bench_end,
        }
    }
}

/// One RTU relay board on the bus: it answers only its own unit id, as on a real bus.
#[derive(Clone)]
struct RtuBoard {
    unit: u8,
    coils: Arc<Mutex<[bool; 8]>>,
}

impl Service for RtuBoard {
    type Request = SlaveRequest<'static>;
    // `None`: stay silent, as a slave does for frames addressed to another unit.
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = std::future::Ready<Result<Option<Response>, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        if req.slave != self.unit {
            return ready(Ok(None));
        }
        let mut coils = self.coils.lock().unwrap();
        ready(match req.request {
            Request::ReadCoils(a, n) => coils
                .get(a as usize..a as usize + n as usize)
                .map(|c| Some(Response::ReadCoils(c.to_vec())))
                .ok_or(ExceptionCode::IllegalDataAddress),
            Request::WriteSingleCoil(a, v) => match coils.get_mut(a as usize) {
                Some(c) => {
                    *c = v;
                    Ok(Some(Response::WriteSingleCoil(a, v)))
                }
                None => Err(ExceptionCode::IllegalDataAddress),
            },
            _ => Err(ExceptionCode::IllegalFunction),
        })
    }
}

fn serve(relay_end: &Path, board: RtuBoard) {
    let server =
        tokio_modbus::server::rtu::Server::new_from_path(relay_end, 9600).expect("open relay end");
    tokio::spawn(async move {
        let _ = server.serve_forever(board).await;
    });
}

fn rig(bench_end: &Path, unit: u8) -> LabRig {
    let text = format!(
        "[power]\nrtu = \"{}\"\nbaud = 9600\nunit = {unit}\ncoil = 2\ntimeout_ms = 300\n\
         [dut]\nipv4 = \"192.0.2.20\"\n",
        bench_end.display()
    );
    let config = RigConfig::parse(&text, &PathBuf::from("/tmp/rtu-rig.toml")).expect("valid");
    LabRig::new(config, None).expect("rig")
}

/// mbpoll in RTU mode on the bench end (free between the rig's operations: it
/// opens the port per operation). No parity, as the rig's 8N1 line.
async fn mbpoll_coil(port: &Path, unit: u8, coil: u16) -> bool {
    let out = tokio::process::Command::new("mbpoll")
        .args([
            "-m",
            "rtu",
            "-b",
            "9600",
            "-P",
            "none",
            "-a",
            &unit.to_string(),
        ])
        .args(["-t", "0", "-r", &(coil + 1).to_string(), "-c", "1", "-1"])
        .arg(port)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run mbpoll ({e}): install the Debian package `mbpoll`"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mbpoll: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tag = format!("[{}]:", coil + 1);
    match stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(&tag))
        .map(str::trim)
    {
        Some("1") => true,
        Some("0") => false,
        other => panic!("mbpoll read {other:?}:\n{stdout}"),
    }
}

#[tokio::test]
async fn an_rtu_relay_switches_power_and_mbpoll_reads_it_back() {
    let pty = Bus::new();
    let board = RtuBoard {
        unit: 5,
        coils: Arc::default(),
    };
    serve(&pty.relay_end, board.clone());
    let mut rig = rig(&pty.bench_end, 5);

    rig.power(true).await.expect("power on over RTU");
    assert!(board.coils.lock().unwrap()[2]);
    assert!(
        mbpoll_coil(&pty.bench_end, 5, 2).await,
        "mbpoll reads the coil LabRig set"
    );
    rig.power(false).await.expect("power off over RTU");
    assert!(!board.coils.lock().unwrap()[2]);
    assert!(!mbpoll_coil(&pty.bench_end, 5, 2).await);
}

#[tokio::test]
async fn an_rtu_unit_that_is_not_on_the_bus_times_out_with_a_clear_error() {
    let pty = Bus::new();
    serve(
        &pty.relay_end,
        RtuBoard {
            unit: 5,
            coils: Arc::default(),
        },
    );
    let err = rig(&pty.bench_end, 6)
        .power(true)
        .await
        .expect_err("nobody is unit 6")
        .to_string();
    assert!(
        err.contains("modbus rtu")
            && err.contains("unit 6")
            && err.contains("no answer within 300 ms"),
        "{err}"
    );

    let err = rig(Path::new("/dev/sacbench-no-such-rs485"), 5)
        .power(true)
        .await
        .expect_err("no port");
    assert!(
        err.to_string().contains("/dev/sacbench-no-such-rs485"),
        "{err}"
    );
}
