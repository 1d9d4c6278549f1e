//! The two brokers under the same load: the fixture hub (`hub-fixture
//! serve`, a separate process so its memory is its own) and Debian's
//! `mosquitto` with `require_certificate true`, both on loopback, both with
//! a server certificate from the same CA, both trusting the same device
//! certificates.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use hub_fixture::hub::{DeviceCredentials, HubConfig, HubFixture};
use hub_fixture::pki::{CertificateAuthority, Validity};

/// A device identity the load generator presents (to either broker).
#[derive(Clone)]
pub struct Device {
    pub id: String,
    pub serial: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// What the generator needs to reach a broker.
#[derive(Clone)]
pub struct Target {
    pub name: &'static str,
    pub port: u16,
    /// The CA both brokers' certificates come from.
    pub ca_pem: String,
}

/// A broker process; killed when dropped.
pub struct Broker {
    pub target: Target,
    pub child: Child,
    /// The hub's admin endpoint (revocation); `None` for mosquitto.
    pub admin: Option<SocketAddr>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Registers `n` devices in the hub's (new, empty) data directory (through the hub
/// library, in-process: certificate issuance and the registry), then stops
/// that hub so `hub-fixture serve` can open the same directory.
pub async fn register_devices(data: &Path, n: usize) -> Result<Vec<Device>> {
    let mut config = HubConfig::for_tests(data);
    config.host_names = vec!["localhost".into()];
    let hub = HubFixture::start(config)
        .await
        .context("hub for registration")?;
    let mut devices = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("perf-{i:05}");
        let creds: DeviceCredentials = hub.register_device(&id).context("registering")?;
        devices.push(Device {
            id,
            serial: creds.serial,
            cert_pem: creds.cert_pem,
            key_pem: creds.key_pem,
        });
    }
    hub.shutdown();
    drop(hub);
    Ok(devices)
}

/// The run's CA (the hub's, in its data directory).
pub fn ca(data: &Path) -> Result<CertificateAuthority> {
    Ok(CertificateAuthority::load_or_create(
        data,
        "sacbench run CA",
        SystemTime::now(),
    )?)
}

/// Waits for a line of `child`'s stderr matching `ready`; its other lines are dropped.
fn wait_ready(child: &mut Child, what: &str, ready: impl Fn(&str) -> bool) -> Result<String> {
    let err = child.stderr.take().context("stderr piped")?;
    let mut lines = BufReader::new(err).lines();
    for l in lines.by_ref() {
        let l = l?;
        if ready(&l) {
            std::thread::spawn(move || lines.for_each(drop));
            return Ok(l);
        }
    }
    bail!("{what} ended before it was ready")
}

/// Starts `hub-fixture serve` on `port` (MQTT) with its admin endpoint.
pub fn start_hub(exe: &Path, data: &Path, port: u16, ca_pem: &str) -> Result<Broker> {
    let admin: SocketAddr = ([127, 0, 0, 1], port + 1).into();
    let mut child = Command::new(exe)
        .arg("serve")
        .arg("--data")
        .arg(data)
        .args(["--host-name", "localhost"])
        .args(["--mqtt", &format!("127.0.0.1:{port}")])
        .args(["--https", "127.0.0.1:0"])
        .args(["--listen-admin", &admin.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    // It prints one JSON line with its addresses when it is ready.
    let out = child.stdout.take().context("stdout piped")?;
    let mut lines = BufReader::new(out).lines();
    match lines.next() {
        Some(Ok(l)) if l.contains("mqtt") => {}
        other => bail!("hub-fixture serve did not start: {other:?}"),
    }
    std::thread::spawn(move || lines.for_each(drop));
    if let Some(err) = child.stderr.take() {
        std::thread::spawn(move || BufReader::new(err).lines().for_each(drop));
    }
    Ok(Broker {
        target: Target {
            name: "hub",
            port,
            ca_pem: ca_pem.to_owned(),
        },
        child,
        admin: Some(admin),
    })
}

/// Starts mosquitto on `port`: mutual TLS with the hub's CA, a server
/// certificate for `localhost` from it, the certificate's CN as user name.
pub fn start_mosquitto(dir: &Path, ca: &CertificateAuthority, port: u16) -> Result<Broker> {
    std::fs::create_dir_all(dir)?;
    let server = ca.issue_server(
        &["localhost".into(), "127.0.0.1".into()],
        Validity::days_from(SystemTime::now(), 2),
    )?;
    let path = |f: &str| -> PathBuf { dir.join(f) };
    std::fs::write(path("ca.pem"), ca.cert_pem())?;
    std::fs::write(path("server.pem"), &server.cert_pem)?;
    std::fs::write(
        path("server.key"),
        server.key_pem.as_deref().unwrap_or_default(),
    )?;
    std::fs::write(
        path("mosquitto.conf"),
        format!(
            "per_listener_settings false\npersistence false\nlog_dest stderr\nlog_type error\n\
             log_type warning\nlog_type notice\nlog_type information\nconnection_messages false\n\
             max_queued_messages 100000\n\
             listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
             require_certificate true\nuse_identity_as_username true\n",
            path("ca.pem").display(),
            path("server.pem").display(),
            path("server.key").display(),
        ),
    )?;
    let mut child = Command::new("mosquitto")
        .arg("-c")
        .arg(path("mosquitto.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting mosquitto (apt-get install mosquitto)")?;
    wait_ready(&mut child, "mosquitto", |l| {
        l.contains("Opening ipv4 listen socket")
    })?;
    Ok(Broker {
        target: Target {
            name: "mosquitto",
            port,
            ca_pem: ca.cert_pem().to_owned(),
        },
        child,
        admin: None,
    })
}

/// A process's resident set size, bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("VmRSS")?;
    Ok(kb * 1024)
}

/// Lets this process (and the brokers it starts) hold `n` open files.
pub fn raise_fd_limit(n: u64) -> Result<()> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    // Just what is needed: some programs walk every possible descriptor at
    // start-up, and a limit of millions makes them crawl.
    setrlimit(Resource::RLIMIT_NOFILE, n, n.max(hard))
        .or_else(|_| setrlimit(Resource::RLIMIT_NOFILE, n.min(hard), hard))
        .context("raising the open-file limit")?;
    Ok(())
}

/// How long to give a broker to come up or answer, a guard only.
pub const GUARD: Duration = Duration::from_secs(60);
