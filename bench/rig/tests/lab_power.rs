//! Power and link relays: `LabRig` writes coils on a Modbus TCP relay that the
//! test runs itself (tokio-modbus's server API on 127.0.0.1:0), and `mbpoll`,
//! a real third-party Modbus client, reads back what it set.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::future::ready;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use sacbench_rig::lab::{LabRig, RigConfig};
use sacbench_rig::{Capability, Rig};

const COILS: usize = 16;

/// A relay board: `COILS` coils behind one Modbus unit id, with a record of every write.
#[derive(Clone)]
struct RelayBoard {
    unit: u8,
    coils: Arc<Mutex<[bool; COILS]>>,
    writes: Arc<Mutex<Vec<(u16, bool)>>>,
}

impl Service for RelayBoard {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = std::future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        if req.slave != self.unit {
            // What a Modbus TCP gateway answers for a unit behind it that does not respond.
            return ready(Err(ExceptionCode::GatewayTargetDevice));
        }
        let mut coils = self.coils.lock().unwrap();
        ready(match req.request {
            Request::ReadCoils(addr, n) => {
                match coils.get(addr as usize..addr as usize + n as usize) {
                    Some(c) => Ok(Response::ReadCoils(c.to_vec())),
                    None => Err(ExceptionCode::IllegalDataAddress),
                }
            }
            Request::WriteSingleCoil(addr, value) => match coils.get_mut(addr as usize) {
                Some(c) => {
                    *c = value;
                    self.writes.lock().unwrap().push((addr, value));
                    Ok(Response::WriteSingleCoil(addr, value))
                }
                None => Err(ExceptionCode::IllegalDataAddress),
            },
            _ => Err(ExceptionCode::IllegalFunction),
        })
    }
}

impl RelayBoard {
    /// Serve on a fresh loopback port; the listener is bound before this returns,
    /// so clients can connect at once.
    async fn serve(unit: u8, initial: bool) -> (RelayBoard, SocketAddr) {
        let board = RelayBoard {
            unit,
            coils: Arc::new(Mutex::new([initial; COILS])),
            writes: Arc::default(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Server::new(listener);
        let service = board.clone();
        tokio::spawn(async move {
            let on_connected = move |stream, peer| {
                let service = service.clone();
                ready(accept_tcp_connection(stream, peer, move |_| {
                    Ok(Some(service.clone()))
                }))
            };
            let _ = server
                .serve(&on_connected, |e| eprintln!("relay board: {e}"))
                .await;
        });
        (board, addr)
    }

    fn coil(&self, n: u16) -> bool {
        self.coils.lock().unwrap()[n as usize]
    }

    fn writes(&self) -> Vec<(u16, bool)> {
        self.writes.lock().unwrap().clone()
    }
}

fn rig(relay: SocketAddr, unit: u8, power: &str, link: &str) -> LabRig {
    let text = format!(
        "[power]\ntcp = \"{relay}\"\nunit = {unit}\n{power}\ntimeout_ms = 300\n\n{link}\n\n\
         [dut]\nipv4 = \"192.0.2.20\"\n"
    );
    let config = RigConfig::parse(&text, &PathBuf::from("/tmp/power-rig.toml")).expect("valid rig");
    LabRig::new(config, None).expect("rig")
}

/// Read one coil with mbpoll (a real Modbus client). Its references are 1-based.
async fn mbpoll_coil(relay: SocketAddr, unit: u8, coil: u16) -> bool {
    let out = tokio::process::Command::new("mbpoll")
        .args([
            "-m",
            "tcp",
            "-a",
            &unit.to_string(),
            "-t",
            "0",
            "-r",
            &(coil + 1).to_string(),
        ])
        .args([
            "-c",
            "1",
            "-1",
            "-p",
            &relay.port().to_string(),
            &relay.ip().to_string(),
        ])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run mbpoll ({e}): install the Debian package `mbpoll`"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mbpoll failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let tag = format!("[{}]:", coil + 1);
    let value = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(&tag))
        .unwrap_or_else(|| panic!("no {tag} in mbpoll's output:\n{stdout}"))
        .trim();
    match value {
        "1" => true,
        "0" => false,
        other => panic!("mbpoll read {other:?} for coil {coil}"),
    }
}

#[tokio::test]
async fn power_cycle_turns_the_coil_off_then_on_and_mbpoll_sees_it() {
    let (board, addr) = RelayBoard::serve(7, true).await;
    let mut rig = rig(addr, 7, "coil = 5\non_value = true", "");
    assert!(rig.capabilities().has(Capability::Power));

    rig.power(false).await.expect("power off");
    assert!(!board.coil(5), "off = coil cleared");
    assert!(
        !mbpoll_coil(addr, 7, 5).await,
        "mbpoll reads the coil LabRig cleared"
    );

    rig.power_cycle().await.expect("power cycle");
    assert_eq!(
        board.writes(),
        [(5, false), (5, false), (5, true)],
        "off, then off and on"
    );
    assert!(
        mbpoll_coil(addr, 7, 5).await,
        "mbpoll reads the coil LabRig set"
    );
    assert!(
        board.coil(4) && board.coil(6),
        "neighbours untouched (still initial)"
    );
}

#[tokio::test]
async fn an_inverted_relay_clears_the_coil_to_power_on() {
    let (board, addr) = RelayBoard::serve(1, false).await;
    let mut rig = rig(addr, 1, "coil = 0\non_value = false", "");
    rig.power(true).await.expect("power on");
    assert_eq!(board.writes(), [(0, false)]);
    assert!(!mbpoll_coil(addr, 1, 0).await);
    rig.power(false).await.expect("power off");
    assert!(
        mbpoll_coil(addr, 1, 0).await,
        "a normally-closed contact opens with the coil set"
    );
}

#[tokio::test]
async fn the_link_coil_cuts_and_restores_the_link() {
    let (board, addr) = RelayBoard::serve(2, true).await;
    let mut rig = rig(addr, 2, "coil = 0", "[link]\ncoil = 9\nup_value = true");
    assert!(rig.capabilities().has(Capability::Link));
    rig.link(false).await.expect("link down");
    assert!(!mbpoll_coil(addr, 2, 9).await);
    assert!(board.coil(0), "the power coil is untouched");
    rig.link(true).await.expect("link up");
    assert!(mbpoll_coil(addr, 2, 9).await);
    assert_eq!(board.writes(), [(9, false), (9, true)]);

    let mut no_link = self::rig(addr, 2, "coil = 0", "");
    let err = no_link.link(false).await.expect_err("no [link]");
    assert!(err.to_string().contains("link control"), "{err}");
}

#[tokio::test]
async fn relay_refusals_name_the_relay_unit_and_coil() {
    let (board, addr) = RelayBoard::serve(7, true).await;
    // Wrong unit id: the gateway answers with an exception.
    let mut wrong_unit = rig(addr, 9, "coil = 5", "");
    let err = wrong_unit
        .power(false)
        .await
        .expect_err("unit 9 does not exist")
        .to_string();
    assert!(
        err.contains(&addr.to_string()) && err.contains("unit 9") && err.contains("coil 5"),
        "{err}"
    );
    assert!(err.contains("refused"), "{err}");
    // A coil the board does not have.
    let mut wrong_coil = rig(addr, 7, "coil = 999", "");
    let err = wrong_coil
        .power(true)
        .await
        .expect_err("no coil 999")
        .to_string();
    assert!(err.contains("coil 999") && err.contains("refused"), "{err}");
    assert!(board.writes().is_empty(), "nothing was switched");
}

#[tokio::test]
async fn an_absent_or_silent_relay_is_an_error_not_a_hang() {
    // Nobody listens: connection refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = rig(closed, 1, "coil = 0", "")
        .power(true)
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains(&format!("modbus tcp {closed}")) && err.contains("connect"),
        "{err}"
    );

    // Accepts the connection but never answers: the configured timeout (300 ms) ends it.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let (conn, _) = silent.accept().await.unwrap();
        std::future::pending::<()>().await;
        drop(conn);
    });
    let err = rig(addr, 1, "coil = 0", "")
        .power(true)
        .await
        .expect_err("silent")
        .to_string();
    assert!(err.contains("no answer within 300 ms"), "{err}");
    held.abort();
}

/// Power and the probe together: the probe hears of every power change (a
/// debug session does not survive a cut), a power-on boots the target again,
/// and flashing switches power on first because an unpowered chip's debug port
/// does not answer.
#[tokio::test]
async fn power_changes_reach_the_probe_and_flash_powers_the_dut_first() {
    use sacbench_rig::lab::{FakeProbe, RttData};
    let (board, addr) = RelayBoard::serve(4, false).await;
    let text = format!(
        "[probe]\nselector = \"1366:1015\"\nchip = \"nRF52840_xxAA\"\n\
         [power]\ntcp = \"{addr}\"\nunit = 4\ncoil = 3\n[dut]\nipv4 = \"192.0.2.20\"\n"
    );
    let config = RigConfig::parse(&text, &PathBuf::from("/tmp/probe-power-rig.toml")).unwrap();
    let boot = RttData {
        channel: 0,
        name: "Terminal".into(),
        bytes: b"boot: hello\n".to_vec(),
    };
    let fake = FakeProbe::new(vec![boot], 64);
    let mut rig = LabRig::new(config, Some(Box::new(fake.clone()))).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("device.elf");
    std::fs::write(&image, b"\x7fELF rest").unwrap();
    rig.flash(&image).await.expect("flash");
    assert_eq!(
        board.writes(),
        [(3, true)],
        "power was switched on before flashing"
    );
    assert_eq!(fake.record().power, [true]);
    assert_eq!(fake.record().flashed.len(), 1);

    let boot_line =
        |lines: Vec<sacbench_rig::LogLine>| lines.iter().any(|l| l.text == "boot: hello");
    assert!(rig.wait_for_logs(std::time::Duration::from_secs(10)).await);
    assert!(boot_line(rig.logs().await.unwrap()));

    rig.power(false).await.expect("off");
    // Once power(false) returns, all output from before the cut is queued: drain it,
    // so the next boot line can only come from the next boot.
    rig.logs().await.unwrap();
    rig.power(true).await.expect("on");
    assert_eq!(fake.record().power, [true, false, true]);
    assert_eq!(board.writes(), [(3, true), (3, false), (3, true)]);
    assert!(rig.wait_for_logs(std::time::Duration::from_secs(10)).await);
    assert!(
        boot_line(rig.logs().await.unwrap()),
        "the target booted again after power-on"
    );

    // Already powered: flashing again does not touch the relay.
    rig.flash(&image).await.expect("flash again");
    assert_eq!(board.writes().len(), 3);
}
