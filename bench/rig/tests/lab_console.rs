//! The console: a `socat` pty pair stands in for the DUT's serial port. Lines
//! written into one end come out of `LabRig::logs()` read from the other.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

use sacbench_rig::lab::{LabRig, RigConfig};
use sacbench_rig::{Capability, LogLine, LogSource, Rig, RigError};

/// Two connected ptys from `socat`, killed on drop.
struct PtyPair {
    child: Child,
    _stderr: BufReader<ChildStderr>,
    /// The end the rig reads (the "DUT console").
    rig_end: PathBuf,
    /// The end the test writes (the "DUT").
    dut_end: PathBuf,
}

impl PtyPair {
    fn new() -> PtyPair {
        let mut child = Command::new("socat")
            .args(["-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run socat ({e}): install the Debian package `socat`")
            });
        // socat -d -d says "... N PTY is /dev/pts/7" for each end, then starts relaying;
        // reading its stderr up to that point is the wait, no sleeping.
        let mut stderr = BufReader::new(child.stderr.take().expect("piped"));
        let mut ptys = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            let n = stderr.read_line(&mut line).expect("read socat stderr");
            assert!(
                n > 0,
                "socat exited before relaying; pty paths so far: {ptys:?}"
            );
            if let Some((_, path)) = line.trim_end().split_once("PTY is ") {
                ptys.push(PathBuf::from(path));
            }
            if line.contains("starting data transfer loop") {
                break;
            }
        }
        assert_eq!(ptys.len(), 2, "socat named {ptys:?}");
        let dut_end = ptys.pop().unwrap();
        let rig_end = ptys.pop().unwrap();
        PtyPair {
            child,
            _stderr: stderr,
            rig_end,
            dut_end,
        }
    }

    fn dut_writer(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&self.dut_end)
            .expect("open the DUT end")
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn console_rig(port: &str) -> Result<LabRig, RigError> {
    let text =
        format!("[console]\nport = \"{port}\"\nbaud = 115200\n\n[dut]\nipv4 = \"192.0.2.20\"\n");
    let config = RigConfig::parse(&text, &PathBuf::from("/tmp/console-rig.toml")).expect("valid");
    LabRig::new(config, None)
}

/// Collect log lines until there are `n`, waiting on the rig's arrival signal.
async fn collect(rig: &mut LabRig, n: usize) -> Vec<LogLine> {
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            rig.wait_for_logs(Duration::from_secs(10)).await,
            "only {} of {n} lines arrived: {got:?}",
            got.len()
        );
        got.extend(rig.logs().await.expect("logs"));
    }
    got
}

#[tokio::test]
async fn lines_written_by_the_dut_come_out_of_logs_with_timestamps() {
    let pty = PtyPair::new();
    let mut rig = console_rig(pty.rig_end.to_str().unwrap()).expect("console opens");
    assert!(rig.capabilities().has(Capability::Console));
    assert!(!rig.capabilities().has(Capability::Power));

    let before = now_ns();
    let mut dut = pty.dut_writer();
    // CRLF and LF endings, and a line split across two writes.
    dut.write_all(b"*** Booting sacbench device ***\r\nboot: slot 0 ok\nmqtt: conn")
        .unwrap();
    let first = collect(&mut rig, 2).await;
    let texts: Vec<&str> = first.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        texts,
        ["*** Booting sacbench device ***", "boot: slot 0 ok"]
    );

    dut.write_all(b"ecting\n").unwrap();
    let second = collect(&mut rig, 1).await;
    assert_eq!(
        second[0].text, "mqtt: connecting",
        "the partial line waited for its end"
    );
    let after = now_ns();

    let all: Vec<&LogLine> = first.iter().chain(&second).collect();
    assert!(all.iter().all(|l| l.source == LogSource::Console));
    assert!(
        all.windows(2).all(|w| w[0].at_ns <= w[1].at_ns),
        "stamps in order"
    );
    assert!(
        all.iter().all(|l| (before..=after).contains(&l.at_ns)),
        "stamped with the bench clock when read"
    );
    assert!(rig.logs().await.unwrap().is_empty(), "logs() drained them");
}

#[tokio::test]
async fn a_lost_console_is_reported_by_logs() {
    let mut pty = PtyPair::new();
    let mut rig = console_rig(pty.rig_end.to_str().unwrap()).expect("console opens");
    pty.dut_writer().write_all(b"last words\n").unwrap();
    let lines = collect(&mut rig, 1).await;
    assert_eq!(lines[0].text, "last words");

    // The serial adapter goes away: the reader notices and logs() says so, naming the port.
    pty.child.kill().unwrap();
    pty.child.wait().unwrap();
    assert!(
        rig.wait_for_logs(Duration::from_secs(10)).await,
        "the loss was not reported"
    );
    let err = rig.logs().await.expect_err("a lost console is an error");
    assert!(
        err.to_string().contains(pty.rig_end.to_str().unwrap()),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_console_port_fails_at_open_naming_the_field() {
    let err = console_rig("/dev/sacbench-no-such-tty").expect_err("no such port");
    let msg = err.to_string();
    assert!(
        msg.contains("console.port") && msg.contains("/dev/sacbench-no-such-tty"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_console_only_rig_has_no_power_link_flash_or_capture() {
    let pty = PtyPair::new();
    let mut rig = console_rig(pty.rig_end.to_str().unwrap()).expect("console opens");
    assert!(matches!(
        rig.power(true).await,
        Err(RigError::Unsupported(Capability::Power))
    ));
    assert!(matches!(
        rig.link(false).await,
        Err(RigError::Unsupported(Capability::Link))
    ));
    let flash = rig.flash(&PathBuf::from("/nonexistent.elf")).await;
    assert!(matches!(
        flash,
        Err(RigError::Unsupported(Capability::Flash))
    ));
    assert!(matches!(
        rig.capture_target(),
        Err(RigError::Unsupported(Capability::Capture))
    ));
    assert_eq!(
        rig.dut_addresses().ipv4,
        Some("192.0.2.20".parse().unwrap())
    );
    assert_eq!(
        rig.name(),
        "/tmp/console-rig.toml",
        "unnamed rigs go by their file"
    );
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}
