//! `modbus-leaf` against mbpoll, a third-party Modbus master: reads and
//! writes over Modbus TCP and over RTU on a socat pty pair, and the leaf
//! logs each write (what the GW cases read). (This test also makes the
//! workspace's test build produce the `modbus-leaf` binary that the gateway
//! tests and the GW cases run.)
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const GUARD: Duration = Duration::from_secs(20);

struct Proc(Child, mpsc::Receiver<String>);

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Proc(child, rx)
    }

    fn expect(&self, pred: impl Fn(&str) -> bool) -> String {
        loop {
            let l = self.1.recv_timeout(GUARD).expect("the line in time");
            if pred(&l) {
                return l;
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mbpoll(args: &[&str]) -> String {
    let out = Command::new("mbpoll")
        .args(args)
        .output()
        .expect("mbpoll runs (apt-get install mbpoll)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "mbpoll {args:?}: {text}");
    text
}

#[test]
fn mbpoll_reads_and_writes_over_tcp() {
    let leaf = Proc::spawn(Command::new(env!("CARGO_BIN_EXE_modbus-leaf")).args([
        "--tcp",
        "127.0.0.1:0",
        "--unit",
        "3",
        "--set",
        "h0=215",
        "--set",
        "i4=77",
    ]));
    let bound = leaf.expect(|l| l.starts_with("leaf: unit 3 on "));
    let port = bound.rsplit(':').next().unwrap().to_owned();
    let base = ["-m", "tcp", "-a", "3", "-p", &port, "-1"];
    let holding = mbpoll(&[&base[..], &["-t", "4", "-r", "1", "127.0.0.1"]].concat());
    assert!(holding.contains("[1]: \t215"), "{holding}");
    let input = mbpoll(&[&base[..], &["-t", "3", "-r", "5", "127.0.0.1"]].concat());
    assert!(input.contains("[5]: \t77"), "{input}");
    mbpoll(&[&base[..], &["-t", "4", "-r", "11", "127.0.0.1", "42"]].concat());
    leaf.expect(|l| l == "leaf: write unit=3 register=10 words=[42]");
    let back = mbpoll(&[&base[..], &["-t", "4", "-r", "11", "127.0.0.1"]].concat());
    assert!(back.contains("[11]: \t42"), "{back}");
}

#[test]
fn mbpoll_reads_and_writes_over_rtu() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("leaf"), dir.path().join("master"));
    let socat = Proc::spawn(
        Command::new("socat")
            .args(["-d", "-d"])
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display())),
    );
    socat.expect(|l| l.contains("starting data transfer loop"));
    let leaf = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_modbus-leaf"))
            .arg("--rtu")
            .arg(&a)
            .args(["--baud", "9600", "--unit", "7", "--set", "h2=42"]),
    );
    leaf.expect(|l| l.starts_with("leaf: unit 7 on "));
    let port = b.display().to_string();
    let base = ["-m", "rtu", "-a", "7", "-b", "9600", "-P", "none", "-1"];
    let read = mbpoll(&[&base[..], &["-t", "4", "-r", "3", &port]].concat());
    assert!(read.contains("[3]: \t42"), "{read}");
    mbpoll(&[&base[..], &["-t", "4", "-r", "21", &port, "50"]].concat());
    leaf.expect(|l| l == "leaf: write unit=7 register=20 words=[50]");
}
