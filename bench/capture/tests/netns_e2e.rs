//! End to end, as root: two private network namespaces joined by a veth pair, an
//! `openssl s_server -www` (TLS 1.3) in one, `curl` in the other, captured by our AF_PACKET
//! capture on the server's veth, the client's key log embedded. Then Debian's `tshark`
//! must show the decrypted HTTP with no key-log option, and must agree with our analysis on
//! SNI, version, cipher suite and frame numbers.
//!
//! Needs: root (or CAP_NET_ADMIN + CAP_SYS_ADMIN + CAP_NET_RAW), iproute2, openssl, curl,
//! tshark. Traffic stays inside the two namespaces (10.231.N.0/30 exists nowhere else).
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError, PcapNGReader};
use sacbench_capture::analysis::TLS13;
use sacbench_capture::{analyze_file, Capture, CaptureConfig};

const HOST: &str = "hub.sacbench.test";

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is the tool installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces and the veth between them; deleted on drop, also when the test panics.
struct Topology {
    server_ns: String,
    client_ns: String,
    server_if: String,
    server_ip: String,
}

impl Topology {
    fn new() -> Topology {
        let id = std::process::id() % 100_000;
        let t = Topology {
            server_ns: format!("sacbench-cap-{id}-s"),
            client_ns: format!("sacbench-cap-{id}-c"),
            server_if: format!("scap{id}s"),
            server_ip: format!("10.231.{}.1", id % 250),
        };
        for ns in [&t.server_ns, &t.client_ns] {
            let out = Command::new("ip").args(["netns", "add", ns]).output();
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) => panic!(
                    "cannot create network namespace {ns} (this test needs root): {}",
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => panic!("cannot run `ip` (install iproute2): {e}"),
            }
        }
        let client_if = format!("scap{id}c");
        let client_ip = format!("10.231.{}.2", id % 250);
        run(Command::new("ip").args([
            "link",
            "add",
            &t.server_if,
            "netns",
            &t.server_ns,
            "type",
            "veth",
            "peer",
            "name",
            &client_if,
            "netns",
            &t.client_ns,
        ]));
        for (ns, dev, ip) in [
            (&t.server_ns, &t.server_if, &t.server_ip),
            (&t.client_ns, &client_if, &client_ip),
        ] {
            let addr = format!("{ip}/30");
            run(Command::new("ip").args(["-n", ns, "addr", "add", &addr, "dev", dev]));
            run(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]));
            run(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]));
        }
        t
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a namespace also deletes the veth end inside it, and so the pair.
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A child process killed (by its own pid) and reaped on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `openssl s_server -www` in the server namespace and returns once it printed
/// ACCEPT, i.e. once it listens: readiness by its own word, not by a sleep.
fn start_server(topo: &Topology, dir: &Path) -> Reaped {
    let ck = rcgen::generate_simple_self_signed(vec![HOST.to_string()]).expect("cert");
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).expect("write cert");
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).expect("write key");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &topo.server_ns, "openssl", "s_server"])
        .args(["-accept", "443", "-www", "-tls1_3", "-naccept", "1"])
        .arg("-cert")
        .arg(dir.join("cert.pem"))
        .arg("-key")
        .arg(dir.join("key.pem"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start openssl s_server (install openssl)");
    let stdout = child.stdout.take().expect("piped stdout");
    let server = Reaped(child);
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("ACCEPT") => break,
            Some(Ok(_)) => {}
            _ => panic!("openssl s_server ended before listening"),
        }
    }
    server
}

/// The same file with the Decryption Secrets Block left out, or moved after the packets:
/// shows that the DSB is what makes tshark decrypt, and that it must precede the packets.
fn rewrite(src: &Path, dst: &Path, secrets_at_end: bool) {
    let mut reader =
        PcapNGReader::new(1 << 20, std::fs::File::open(src).expect("open")).expect("reader");
    let mut out = std::fs::File::create(dst).expect("create");
    let mut secrets = Vec::new();
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                let is_secrets = matches!(block, PcapBlockOwned::NG(Block::DecryptionSecrets(_)));
                let raw = &reader.data()[..offset];
                if is_secrets {
                    secrets.extend_from_slice(raw);
                } else {
                    out.write_all(raw).expect("write");
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => reader.refill().expect("refill"),
            Err(e) => panic!("reading back the capture: {e:?}"),
        }
    }
    assert!(
        !secrets.is_empty(),
        "the capture has no Decryption Secrets Block"
    );
    if secrets_at_end {
        out.write_all(&secrets).expect("write");
    }
}

fn tshark(file: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(file).args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = run(&mut cmd);
    out.lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

#[test]
fn capture_embeds_key_log_and_tshark_agrees_with_analysis() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topo = Topology::new();
    let server = start_server(&topo, dir.path());
    let pcap: PathBuf = dir.path().join("capture.pcapng");
    let mut config = CaptureConfig::new(topo.server_if.clone(), &pcap);
    config.netns = Some(PathBuf::from("/run/netns").join(&topo.server_ns));
    config.description = "server side of the test veth".into();
    let capture = Capture::start(config).expect("start capture");

    let keylog = dir.path().join("keylog.txt");
    let resolve = format!("{HOST}:443:{}", topo.server_ip);
    let body = run(Command::new("ip")
        .args(["netns", "exec", &topo.client_ns, "curl", "-sS", "--http1.1"])
        .args(["--max-time", "10", "--resolve", &resolve, "--cacert"])
        .arg(dir.path().join("cert.pem"))
        .arg(format!("https://{HOST}/"))
        .env("SSLKEYLOGFILE", &keylog));
    assert!(body.contains("s_server"), "unexpected page: {body}");
    drop(server);

    let key_log = std::fs::read(&keylog).expect("curl wrote no key log");
    assert!(String::from_utf8_lossy(&key_log).contains("CLIENT_HANDSHAKE_TRAFFIC_SECRET"));
    let summary = capture.stop(Some(&key_log)).expect("stop capture");
    assert!(summary.packets >= 10, "{summary:?}");
    assert_eq!(summary.truncated, 0);
    assert!(!dir.path().join("capture.pcapng.spool").exists());

    // Decrypted HTTP, with no key-log option given to tshark.
    let http = tshark(&pcap, "http", &["frame.number", "http.request.method"]);
    assert!(
        http.iter()
            .any(|r| r.get(1).map(String::as_str) == Some("GET")),
        "tshark shows no decrypted GET: {http:?}"
    );
    let bare = dir.path().join("bare.pcapng");
    rewrite(&pcap, &bare, false);
    assert!(tshark(&bare, "http", &["frame.number"]).is_empty());
    let late = dir.path().join("late.pcapng");
    rewrite(&pcap, &late, true);
    assert!(tshark(&late, "http", &["frame.number"]).is_empty());

    // Our analysis and tshark agree on the handshake.
    let a = analyze_file(&pcap).expect("analysis");
    assert_eq!(a.frames, summary.packets);
    let flows: Vec<_> = a
        .tcp_flows
        .iter()
        .filter(|f| f.server.port() == 443)
        .collect();
    assert_eq!(flows.len(), 1, "{:#?}", a.tcp_flows);
    let flow = flows[0];
    assert_eq!(flow.server.ip().to_string(), topo.server_ip);
    assert!(flow.tls_throughout(), "{flow:#?}");
    let ch = &flow.tls.client_hellos[0];
    let sh = flow.tls.server_hello.as_ref().expect("server hello");
    let t_ch = tshark(
        &pcap,
        "tls.handshake.type == 1",
        &[
            "frame.number",
            "tls.handshake.extensions_server_name",
            "tls.handshake.ciphersuite",
        ],
    );
    assert_eq!(t_ch.len(), 1, "{t_ch:?}");
    assert_eq!(t_ch[0][0], ch.frames.last.number.to_string());
    assert_eq!(ch.sni.as_deref(), Some(HOST));
    assert_eq!(t_ch[0][1], HOST);
    let offered: Vec<String> = ch
        .cipher_suites
        .iter()
        .map(|c| format!("0x{c:04x}"))
        .collect();
    assert_eq!(t_ch[0][2], offered.join(","));
    let t_sh = tshark(
        &pcap,
        "tls.handshake.type == 2",
        &[
            "frame.number",
            "tls.handshake.extensions.supported_version",
            "tls.handshake.ciphersuite",
        ],
    );
    assert_eq!(t_sh.len(), 1, "{t_sh:?}");
    assert_eq!(t_sh[0][0], sh.frames.last.number.to_string());
    assert_eq!(sh.version(), TLS13);
    assert_eq!(t_sh[0][1], format!("0x{TLS13:04x}"));
    assert_eq!(t_sh[0][2], format!("0x{:04x}", sh.cipher_suite));
    // Frame numbers line up with tshark's for the SYN too.
    let syn = tshark(
        &pcap,
        "tcp.flags.syn == 1 && tcp.flags.ack == 0",
        &["frame.number"],
    );
    assert_eq!(syn, [[flow.syns[0].number.to_string()]]);
}

#[test]
fn capture_on_a_missing_interface_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("never.pcapng");
    let err = Capture::start(CaptureConfig::new("sacbench-nope0", &out))
        .err()
        .expect("capture on a missing interface must fail");
    assert!(err.to_string().contains("sacbench-nope0"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).expect("read dir").count(), 0);
}

#[test]
fn capture_goes_on_across_the_link_going_down_and_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topo = Topology::new();
    let server = start_server(&topo, dir.path());
    let pcap = dir.path().join("capture.pcapng");
    let mut config = CaptureConfig::new(topo.server_if.clone(), &pcap);
    config.netns = Some(PathBuf::from("/run/netns").join(&topo.server_ns));
    let capture = Capture::start(config).expect("start capture");
    // One page fetched (curl waits for it), the link down and up, one more
    // from a new server (s_server serves one connection).
    let resolve = format!("{HOST}:443:{}", topo.server_ip);
    let fetch = || {
        run(Command::new("ip")
            .args(["netns", "exec", &topo.client_ns, "curl", "-sS", "--http1.1"])
            .args(["--max-time", "10", "--retry", "3", "--retry-all-errors"])
            .args(["--resolve", &resolve, "--cacert"])
            .arg(dir.path().join("cert.pem"))
            .arg(format!("https://{HOST}/")))
    };
    fetch();
    drop(server);
    let _server = start_server(&topo, dir.path());
    for state in ["down", "up"] {
        run(Command::new("ip").args([
            "-n",
            &topo.server_ns,
            "link",
            "set",
            &topo.server_if,
            state,
        ]));
    }
    fetch();
    let summary = capture
        .stop(None)
        .expect("the capture survives the link going down");
    let a = analyze_file(&pcap).expect("analysis");
    assert_eq!(a.frames, summary.packets);
    let fetches = a
        .tcp_flows
        .iter()
        .filter(|f| f.server.port() == 443 && f.syn_ack.is_some());
    assert_eq!(fetches.count(), 2, "{:#?}", a.tcp_flows);
}
