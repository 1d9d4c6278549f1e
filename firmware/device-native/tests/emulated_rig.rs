//! The emulated rig with the real board: namespaces, power, link, RTT and
//! console logs, the NI scanner cross-checked with nmap, and nothing left
//! behind when the bench is killed mid-case.
//!
//! A custom harness (libtest-mimic, cargo-test compatible): `main` first
//! enters the rig sandbox (private user, net, mount and PID namespaces),
//! which must happen while the process is single-threaded.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use hub_fixture::journal::Event;
use libtest_mimic::{Arguments, Failed, Trial};
use sacbench_rig::dut::DutFile;
use sacbench_rig::emulated::sandbox;
use sacbench_rig::emulated::topology::Node;
mod common;
use common::ProvisionedRig;
use sacbench_rig::emulated::EmulatedRigConfig;
use sacbench_rig::scan::{scan, ScanTarget};
use sacbench_rig::{LogSource, Rig};

const GUARD: Duration = Duration::from_secs(60);
const HOLD: &str = "--hold-rig";
static NEXT_ID: AtomicU8 = AtomicU8::new(1);

fn signed_device_image(dir: &Path) -> PathBuf {
    sacbench_test_support::write_v1_image(Path::new(env!("CARGO_BIN_EXE_device-native")), dir)
}

async fn rig(dir: &Path, faults: &[&str]) -> ProvisionedRig {
    let config = EmulatedRigConfig {
        id: NEXT_ID.fetch_add(1, Ordering::SeqCst),
        dir: dir.to_owned(),
        // The reference device's DUT file: the rig runs its command.
        dut: std::sync::Arc::new(
            DutFile::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("dut.toml"))
                .expect("the reference DUT file"),
        ),
        sacbench_bin: Path::new(env!("CARGO_BIN_EXE_device-native"))
            .parent()
            .expect("bin dir")
            .to_owned(),
        device_id: "dev-rig".into(),
        faults: faults.iter().map(|f| f.to_string()).collect(),
    };
    let mut rig = ProvisionedRig::start(config).await.expect("rig starts");
    rig.flash(&signed_device_image(dir)).await.expect("flash");
    rig
}

async fn connected(rig: &ProvisionedRig, after: u64) -> Result<(), Failed> {
    let dut = rig.topology().dut_ipv4().to_string();
    let e = rig
        .hub()
        .journal()
        .wait_for(after, GUARD, |e| matches!(e.event, Event::Connected { .. }))
        .await
        .ok_or("the device never connected")?;
    let peer = e.peer.unwrap_or_default();
    if !peer.starts_with(&format!("{dut}:")) {
        return Err(format!("connection from {peer}, expected the DUT {dut}").into());
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn power_link_and_logs() -> Result<(), Failed> {
    runtime().block_on(async {
        let dir = tempfile::tempdir()?;
        let mut rig = rig(dir.path(), &[]).await;
        rig.power(true).await?;
        connected(&rig, 0).await?;
        let logs = rig.logs().await?;
        let rtt: Vec<_> = logs
            .iter()
            .filter(|l| matches!(l.source, LogSource::Rtt { .. }))
            .collect();
        if !rtt.iter().any(|l| l.text.contains("TLS up")) {
            return Err(format!("no RTT line about TLS: {logs:?}").into());
        }
        if !logs
            .iter()
            .any(|l| l.source == LogSource::Console && l.text.starts_with("boot: #1"))
        {
            return Err(format!("no console line from the bootloader: {logs:?}").into());
        }
        // Link down: the DUT stops answering from the gateway's side.
        rig.link(false).await?;
        let mut probe = ScanTarget::full(
            Some(rig.topology().netns_path(Node::Gw)),
            rig.topology().dut_ipv4().into(),
            None,
        );
        probe.tcp_ports = 1..=1;
        probe.udp_ports.clear();
        probe.timeout = Duration::from_millis(300);
        let down = scan(probe.clone())?;
        if down.unanswered_tcp + down.unreachable_tcp != 1 {
            return Err(format!("the link is down but the DUT answered: {down:?}").into());
        }
        rig.link(true).await?;
        let up = scan(probe)?;
        if up.unanswered_tcp + up.unreachable_tcp != 0 {
            return Err(format!("the link is up but the DUT did not answer: {up:?}").into());
        }
        // Power cycle: a fresh boot, a fresh session.
        let mark = rig.hub().journal().len();
        rig.power_cycle().await?;
        connected(&rig, mark).await?;
        Ok(())
    })
}

/// Open TCP ports by nmap (grepable output) from the gateway's namespace.
fn nmap_open(rig: &ProvisionedRig, target: &str, v6: bool) -> Result<Vec<u16>, Failed> {
    let mut cmd = rig.topology().command(Node::Gw, "nmap");
    let ports = format!("-p{}-{}", AGREEMENT_PORTS.start(), AGREEMENT_PORTS.end());
    cmd.args(["-n", "-Pn", "-sT", &ports, "--max-retries", "1", "-oG", "-"]);
    if v6 {
        cmd.arg("-6");
    }
    let out = cmd
        .arg(target)
        .output()
        .map_err(|e| format!("nmap (apt-get install nmap): {e}"))?;
    if !out.status.success() {
        return Err(format!("nmap failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut open: Vec<u16> = text
        .lines()
        .filter_map(|l| l.split_once("Ports: ").map(|(_, p)| p.to_owned()))
        .flat_map(|p| p.split(", ").map(str::to_owned).collect::<Vec<_>>())
        .filter(|p| p.contains("/open/"))
        .filter_map(|p| p.split('/').next()?.trim().parse().ok())
        .collect();
    open.sort_unstable();
    Ok(open)
}

/// The ports both scanners scan in `scanner_agrees_with_nmap`: the device's
/// open one and thousands of closed ones. Not all 65 535: that is the NI
/// cases' work (the reference device's in the fault matrix), and four full
/// scans here cost a 2-core CI machine half a minute of CPU.
const AGREEMENT_PORTS: std::ops::RangeInclusive<u16> = 1..=8191;

fn scanner_agrees_with_nmap() -> Result<(), Failed> {
    runtime().block_on(async {
        let dir = tempfile::tempdir()?;
        let mut rig = rig(dir.path(), &["listen-debug", "udp-discovery"]).await;
        rig.power(true).await?;
        for what in [
            "listening on TCP 2323",
            "answering on UDP 5683",
            "answering on UDP 1900",
        ] {
            rig.wait_console(GUARD, |l| l.contains(what))
                .await
                .ok_or(format!("device never said {what:?}"))?;
        }
        let gw = rig.topology().netns_path(Node::Gw);
        let v4: IpAddr = rig.topology().dut_ipv4().into();
        let ours = scan(ScanTarget {
            tcp_ports: AGREEMENT_PORTS,
            ..ScanTarget::full(Some(gw.clone()), v4, None)
        })?;
        if ours.open_tcp != [2323] || ours.udp_replies() != [1900, 5683] {
            return Err(format!("our scan: {ours:?}").into());
        }
        let theirs = nmap_open(&rig, &v4.to_string(), false)?;
        if theirs != ours.open_tcp {
            return Err(format!("nmap {theirs:?} vs ours {:?}", ours.open_tcp).into());
        }
        let v6: IpAddr = rig
            .topology()
            .dut_ipv6_link_local()
            .expect("a namespace board")
            .into();
        let ours6 = scan(ScanTarget {
            tcp_ports: AGREEMENT_PORTS,
            ..ScanTarget::full(Some(gw), v6, Some("g0".into()))
        })?;
        let theirs6 = nmap_open(&rig, "fe80::2%g0", true)?;
        if ours6.open_tcp != [2323] || theirs6 != ours6.open_tcp {
            return Err(format!("IPv6: ours {:?}, nmap {theirs6:?}", ours6.open_tcp).into());
        }
        Ok(())
    })
}

fn the_reference_device_listens_nowhere() -> Result<(), Failed> {
    runtime().block_on(async {
        let dir = tempfile::tempdir()?;
        let mut rig = rig(dir.path(), &[]).await;
        rig.power(true).await?;
        connected(&rig, 0).await?;
        let gw = rig.topology().netns_path(Node::Gw);
        let report = scan(ScanTarget::full(
            Some(gw),
            rig.topology().dut_ipv4().into(),
            None,
        ))?;
        if !report.open_tcp.is_empty()
            || !report.udp_replies().is_empty()
            || report.unanswered_tcp + report.unreachable_tcp != 0
        {
            return Err(format!("NI-01/02 on the reference device: {report:?}").into());
        }
        Ok(())
    })
}

/// The capture on the rig's capture point, with the hub's key log embedded:
/// tshark (no key-log option) decrypts the device's MQTT, and our analysis
/// sees a DUT-opened TLS 1.3 flow to the hub with the provisioned SNI.
fn capture_decrypts_with_tshark() -> Result<(), Failed> {
    runtime().block_on(async {
        let dir = tempfile::tempdir()?;
        let mut rig = rig(dir.path(), &[]).await;
        let target = rig.capture_target()?;
        let pcap = dir.path().join("capture.pcapng");
        let mut config = sacbench_capture::CaptureConfig::new(target.interface, &pcap);
        config.netns = target.netns;
        let capture = sacbench_capture::Capture::start(config)?;
        rig.power(true).await?;
        connected(&rig, 0).await?;
        // The device's first telemetry is acknowledged: the session carried data.
        rig.hub()
            .journal()
            .wait_for(0, GUARD, |e| matches!(e.event, Event::TwinReported { .. }))
            .await
            .ok_or("no reported properties")?;
        rig.power(false).await?;
        let key_log = std::fs::read(dir.path().join("tls-keys.log"))?;
        capture.stop(Some(&key_log))?;
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&pcap)
            .args([
                "-Y",
                "mqtt.msgtype == 1",
                "-T",
                "fields",
                "-e",
                "mqtt.clientid",
            ])
            .output()
            .map_err(|e| format!("tshark (apt-get install tshark): {e}"))?;
        let ids = String::from_utf8_lossy(&out.stdout);
        if !ids.lines().any(|l| l.trim() == "dev-rig") {
            return Err(format!(
                "tshark did not decrypt the CONNECT: {ids:?} {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let analysis = sacbench_capture::analyze_file(&pcap)?;
        let dut: IpAddr = rig.topology().dut_ipv4().into();
        let flow = analysis
            .tcp_flows
            .iter()
            .find(|f| f.server.port() == 8883)
            .ok_or("no MQTT flow in the analysis")?;
        if flow.client.ip() != dut
            || flow
                .tls
                .client_hellos
                .first()
                .and_then(|h| h.sni.clone())
                .as_deref()
                != Some(rig.topology().hub_host().as_str())
        {
            return Err(format!("unexpected flow: {flow:?}").into());
        }
        Ok(())
    })
}

/// `--hold-rig DIR`: a bench that builds a rig, powers the board, says READY
/// and waits to be killed.
fn hold(dir: &Path) -> ! {
    runtime().block_on(async {
        let mut rig = rig(dir, &[]).await;
        rig.power(true).await.unwrap();
        connected(&rig, 0).await.unwrap();
        println!("READY");
        std::future::pending::<()>().await;
    });
    unreachable!()
}

/// Network namespaces in use by any task of any visible process.
fn netns_in_use() -> std::collections::HashSet<String> {
    let mut found = std::collections::HashSet::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        for t in std::fs::read_dir(p.path().join("task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(link) = std::fs::read_link(t.path().join("ns/net")) {
                found.insert(link.to_string_lossy().into_owned());
            }
        }
    }
    found
}

/// Process ids of live processes that mention `marker` in their command line.
fn pids_of(marker: &Path) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let c = std::fs::read(e.path().join("cmdline")).ok()?;
            let c = String::from_utf8_lossy(&c);
            (c.contains(marker.to_str()?) && !c.contains(HOLD)).then_some(pid)
        })
        .collect()
}

/// Command lines of live processes that mention `marker` (the held rig's dir).
fn processes_of(marker: &Path) -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(marker.to_str().unwrap()) && !c.contains(HOLD))
        .collect()
}

fn killing_the_bench_leaves_nothing_behind() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let marker = dir.path().join("held");
    let mut bench = Command::new(std::env::current_exe()?)
        .arg(HOLD)
        .arg(&marker)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut out = BufReader::new(bench.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line)?;
    if line.trim() != "READY" {
        return Err(format!("the held bench said {line:?}").into());
    }
    if processes_of(&marker).is_empty() {
        return Err("no board process found while the rig was up".into());
    }
    // The held rig's own namespaces: those its board process is in. (Other
    // tests of this run may own namespaces too; they are not compared.)
    let board_ns: std::collections::HashSet<String> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker.to_str().unwrap()))
                .unwrap_or(false)
        })
        .filter_map(|e| std::fs::read_link(e.path().join("ns/net")).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect();
    let own = std::fs::read_link("/proc/self/ns/net")?
        .to_string_lossy()
        .into_owned();
    if board_ns.is_empty() || board_ns.contains(&own) {
        return Err(
            format!("the held board is not in a namespace of its own: {board_ns:?}").into(),
        );
    }
    // A pidfd for each of the held rig's processes: readable once it ended.
    let pidfds: Vec<_> = pids_of(&marker)
        .into_iter()
        .filter_map(|pid| {
            rustix::process::Pid::from_raw(pid).and_then(|p| {
                rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
            })
        })
        .collect();
    // SIGKILL: no cleanup code of the bench runs.
    bench.kill()?;
    bench.wait()?;
    let mut rest = Vec::new();
    out.read_to_end(&mut rest)?;
    // The kernel ends the rest of the sandbox (its PID 1 died): wait for
    // each held process's end, bounded by the guard.
    for fd in &pidfds {
        let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        let limit = rustix::event::Timespec {
            tv_sec: GUARD.as_secs() as i64,
            tv_nsec: 0,
        };
        rustix::event::poll(&mut fds, Some(&limit)).map_err(|e| format!("poll: {e}"))?;
    }
    let survivors = processes_of(&marker);
    if !survivors.is_empty() {
        return Err(format!("processes survived: {survivors:?}").into());
    }
    // With its processes gone and its mounts (in its private mount
    // namespace) gone, nothing holds the board's namespace — and its veth.
    let still: Vec<_> = netns_in_use()
        .into_iter()
        .filter(|ns| board_ns.contains(ns))
        .collect();
    if !still.is_empty() {
        return Err(format!("namespaces still in use: {still:?}").into());
    }
    Ok(())
}

/// An emulated rig for the DUT file `dut_file` (a device nobody here wrote).
async fn foreign_rig(
    dir: &Path,
    dut_file: &Path,
    device_id: &str,
) -> Result<ProvisionedRig, Failed> {
    let dut = DutFile::load(dut_file).map_err(|e| e.to_string())?;
    let config = EmulatedRigConfig {
        id: NEXT_ID.fetch_add(1, Ordering::SeqCst),
        dir: dir.join("rig"),
        dut: std::sync::Arc::new(dut),
        sacbench_bin: dir.to_owned(),
        device_id: device_id.into(),
        faults: Vec::new(),
    };
    Ok(ProvisionedRig::start(config).await?)
}

/// Any DUT file's command runs as the board: placeholders filled, the
/// provisioning directory written (the key private), the hub's name
/// resolving through the normal resolver inside the DUT's namespace; a
/// command that exits by itself while powered is started again (a reset),
/// noted in the device log; power off ends it for good.
fn a_foreign_command_is_the_board_and_its_exit_a_reset() -> Result<(), Failed> {
    runtime().block_on(async {
        let dir = tempfile::tempdir()?;
        let dut_file = dir.path().join("dut.toml");
        std::fs::write(
            &dut_file,
            r#"name = "a shell device"
implements = ["telemetry"]
[emulated]
command = ["sh", "-c", "echo up {device_id} key=$(stat -c %a {provisioning}/device.key) state=$(ls -d {state}); getent hosts {hub_host}; exit 3"]
"#,
        )?;
        let mut rig = foreign_rig(dir.path(), &dut_file, "dev-sh").await?;
        let hub_ip = rig.topology().hub_ipv4().to_string();
        let host = rig.topology().hub_host();
        rig.power(true).await?;
        let n = std::sync::atomic::AtomicUsize::new(0);
        rig.wait_console(GUARD, |l| {
            l.starts_with("up dev-sh key=600 state=/")
                && n.fetch_add(1, Ordering::SeqCst) == 1
        })
        .await
        .ok_or("the command did not run twice (no reset)")?;
        rig.wait_console(GUARD, |l| l.starts_with(&hub_ip) && l.contains(&host))
            .await
            .ok_or_else(|| format!("{host} did not resolve to {hub_ip} in the DUT's namespace"))?;
        rig.power(false).await?;
        let logs = rig.logs().await?;
        let resets = logs
            .iter()
            .filter(|l| l.source == LogSource::Rig && l.text.contains("reset: the DUT exited by itself"))
            .count();
        if resets == 0 {
            return Err(format!("no reset noted: {logs:?}").into());
        }
        // Powered off: no further start.
        let ups = |logs: &[sacbench_rig::LogLine]| {
            logs.iter().filter(|l| l.text.starts_with("up dev-sh")).count()
        };
        let before = ups(&logs);
        let after = rig.logs().await?;
        if ups(&after) != 0 || before < 2 {
            return Err(format!("{before} starts, then {} after power off", ups(&after)).into());
        }
        Ok(())
    })
}

/// NI-02's probes against real services nobody here wrote, run as the DUT
/// in its namespace: Debian's dnsmasq (DNS and TFTP), chrony (an NTP
/// server) and net-snmp's snmpd: each answers its protocol's probe.
fn real_udp_services_answer_the_protocol_probes() -> Result<(), Failed> {
    runtime().block_on(async {
        let dir = tempfile::tempdir()?;
        let dut_file = dir.path().join("dut.toml");
        // Three daemons in the foreground of one process group: the board.
        // socat hands the datagram to the command's stdin: the command
        // reads it before answering (an `echo` alone may exit first, and
        // socat then fails writing to it — EPIPE — and sends nothing).
        let script = "set -e; s={state}; \
            printf 'allow all\\nlocal stratum 8\\ncmdport 0\\npidfile %s/chronyd.pid\\n' $s > $s/chrony.conf; \
            printf 'rocommunity public\\nagentAddress udp:161\\n' > $s/snmpd.conf; \
            dnsmasq -k -u root -g \"\" --conf-file=/dev/null --no-resolv --no-hosts --pid-file= --log-facility=- \
              --address=/sacbench.test/192.0.2.7 --enable-tftp --tftp-root=$s & \
            chronyd -d -x -u root -f $s/chrony.conf & \
            snmpd -f -Lo -C -c $s/snmpd.conf -p $s/snmpd.pid -Ln & \
            socat -d -d UDP4-RECVFROM:40123,fork SYSTEM:'head -c1 >/dev/null; echo here' & \
            wait";
        std::fs::write(
            &dut_file,
            format!(
                "name = \"udp services\"\nimplements = []\n[emulated]\ncommand = [\"sh\", \"-c\", {script:?}]\n"
            ),
        )?;
        let mut rig = foreign_rig(dir.path(), &dut_file, "dev-udp").await?;
        rig.power(true).await?;
        // The well-known ones, and a service on a port no list names: the
        // scan of every UDP port finds it.
        let want = [53u16, 69, 123, 161, 40123];
        let target = || {
            let mut t = ScanTarget::full(
                Some(rig.topology().netns_path(Node::Gw)),
                rig.topology().dut_ipv4().into(),
                None,
            );
            t.tcp_ports = 1..=1;
            t
        };
        // socat says when it is bound ("receiving on"); the daemons start
        // in any order and say nothing a test can wait on: probe just their
        // ports (each probe bounded by its per-port timeout) until all
        // answer, within the guard ... (not socat's: after a datagram its
        // fork leaves the port unbound for a moment)
        rig.wait_console(GUARD, |l| l.contains("receiving on AF=2 0.0.0.0:40123"))
            .await
            .ok_or("socat never said it was receiving on UDP 40123")?;
        let daemons: Vec<u16> = want.iter().copied().filter(|p| *p != 40123).collect();
        let deadline = std::time::Instant::now() + GUARD;
        loop {
            let t = ScanTarget {
                udp_ports: daemons.clone(),
                ..target()
            };
            let r = tokio::task::spawn_blocking(move || scan(t)).await??;
            if daemons.iter().all(|p| r.udp_replies().contains(p)) || std::time::Instant::now() > deadline {
                break;
            }
        }
        // ... then scan every UDP port once.
        let full = target().all_udp();
        let report = tokio::task::spawn_blocking(move || scan(full)).await??;
        let logs = rig.logs().await?;
        for p in want {
            if !report.udp_replies().contains(&p) {
                return Err(format!("no reply on {p}: {}; {logs:?}", report.udp_text()).into());
            }
        }
        // The words say what answered, as text or hex.
        let text = report.udp_text();
        if !text.contains("53 (DNS query): reply hex 5a c1")
            || !text.contains("161 (SNMP get-request (public)): reply hex 30")
            || !text.contains("40123 (generic probe): reply \"here\\n\"")
            || !text.contains("other ports: ")
        {
            return Err(text.into());
        }
        rig.power(false).await?;
        Ok(())
    })
}

/// A second board of the DUT: its own address (the hub tells its
/// connections apart), its own flash and provisioning (here another
/// identity), console and power; one per rig.
fn a_second_board_is_a_unit_of_its_own() -> Result<(), Failed> {
    runtime().block_on(async {
        let dir = tempfile::tempdir()?;
        let mut rig = rig(dir.path(), &[]).await;
        let creds = rig.hub().register_device("dev-rig-b")?;
        let mut record = rig.side.records[0].clone();
        record.device.device_id = creds.device_id.clone();
        record.certificate_pem = creds.cert_pem.clone();
        record.private_key_pem = creds.key_pem.clone();
        let mut b = rig.second_board(&record).await?;
        let b_ip = b.ipv4();
        if b_ip == rig.topology().dut_ipv4() {
            return Err(format!("the second board shares the first's address {b_ip}").into());
        }
        if rig.second_board(&record).await.is_ok() {
            return Err("a second second board".into());
        }
        rig.power(true).await?;
        b.power(true).await?;
        for (id, ip) in [("dev-rig", rig.topology().dut_ipv4()), ("dev-rig-b", b_ip)] {
            let e = rig
                .hub()
                .journal()
                .wait_for(0, GUARD, |e| {
                    matches!(e.event, Event::Connected { .. }) && e.device_id.as_deref() == Some(id)
                })
                .await
                .ok_or(format!("{id} never connected"))?;
            let peer = e.peer.unwrap_or_default();
            if !peer.starts_with(&format!("{ip}:")) {
                return Err(format!("{id} connected from {peer}, expected {ip}").into());
            }
        }
        // Its console is its own: its boot, under its identity.
        let mine = b
            .wait_console_from(0, GUARD, &|l: &str| l.contains("dev-rig-b version"))
            .await;
        if mine.is_none() || rig.console_lines().iter().any(|l| l.contains("dev-rig-b")) {
            return Err(format!(
                "consoles: first {:?}, second {:?}",
                rig.console_lines(),
                b.console_lines()
            )
            .into());
        }
        // Its own flash, written with the first board's image.
        let flash_b = dir.path().join("board-b/state/flash.bin");
        if !flash_b.exists() || !dir.path().join("state/flash.bin").exists() {
            return Err(format!("no flash of its own at {}", flash_b.display()).into());
        }
        // Its power is its own: off, its session ends; the first's stays.
        let mark = rig.hub().journal().len();
        b.power(false).await?;
        rig.hub()
            .journal()
            .wait_for(mark, GUARD, |e| {
                matches!(e.event, Event::SessionClosed { .. })
                    && e.device_id.as_deref() == Some("dev-rig-b")
            })
            .await
            .ok_or("the second board's session did not end at its power off")?;
        if !rig.hub().is_connected("dev-rig") {
            return Err("the first board lost its session with the second's power".into());
        }
        drop(b);
        rig.power(false).await?;
        Ok(())
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    sandbox::enter_or_exit("");
    if args.get(1).map(String::as_str) == Some(HOLD) {
        hold(Path::new(&args[2]));
    }
    let tests = vec![
        Trial::test("power_link_and_logs", power_link_and_logs),
        Trial::test("scanner_agrees_with_nmap", scanner_agrees_with_nmap),
        Trial::test(
            "the_reference_device_listens_nowhere",
            the_reference_device_listens_nowhere,
        ),
        Trial::test(
            "killing_the_bench_leaves_nothing_behind",
            killing_the_bench_leaves_nothing_behind,
        ),
        Trial::test("capture_decrypts_with_tshark", capture_decrypts_with_tshark),
        Trial::test(
            "a_foreign_command_is_the_board_and_its_exit_a_reset",
            a_foreign_command_is_the_board_and_its_exit_a_reset,
        ),
        Trial::test(
            "real_udp_services_answer_the_protocol_probes",
            real_udp_services_answer_the_protocol_probes,
        ),
        Trial::test(
            "a_second_board_is_a_unit_of_its_own",
            a_second_board_is_a_unit_of_its_own,
        ),
    ];
    libtest_mimic::run(&Arguments::from_args(), tests).exit();
}
