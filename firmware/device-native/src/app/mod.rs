//! The firmware proper: the thin IO shell around `device-core`'s session,
//! rotation, OTA and backoff machines. One tokio current-thread runtime; the
//! machines decide, this module only carries out their actions (socket
//! writes, flash writes, HTTPS requests) and feeds back what happened.
//!
//! Evidence for the suites: every decision is logged through RTT; every
//! applied command is reported as telemetry with property
//! `kind=command-applied` and body `{"mid", "seq", "payload"}`, where `seq`
//! counts applications on this device (a command applied twice shows twice,
//! with two `seq` values; a report re-sent after a lost PUBACK keeps its
//! `seq`).

mod handlers;
mod legacy;
mod netfaults;
mod store;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use device_core::backoff::{Backoff, BackoffConfig};
use device_core::faults::{Fault, FaultSet};
use device_core::keystore::{Certificate, KeyAlg, PrivateKey};
use device_core::ota::{BootInfo as OtaBootInfo, Ota, OtaConfig, OtaRecord};
use device_core::rotation::Rotation;
use device_core::session::{Action, AppliedIds, Session, SessionConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::bootloader::{BootInfo, EXIT_REBOOT};
use crate::device_log;
use crate::flash::FlashFile;
use crate::provisioning::Provisioning;
use crate::tls::{client_config, ClientCredential};
pub use store::{KeystoreFlash, RecordCell};

/// Wall-clock Unix ms (rotation compares it with `rotateAfter`).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A command applied but whose report the hub has not acknowledged yet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppliedReport {
    pub seq: u64,
    pub mid: String,
    pub payload: String,
}

/// The persisted command state: applied ids (as the session encodes them),
/// the application counter and the unreported applications.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CommandsRecord {
    pub applied: Vec<u8>,
    pub next_seq: u64,
    pub unreported: Vec<AppliedReport>,
    /// A session has subscribed to commands since provisioning (what the
    /// `no-resubscribe` fault wrongly relies on).
    #[serde(default)]
    pub subscribed_once: bool,
}

/// A byte stream to the hub (rustls, or the legacy path of `allow-tls10`).
pub(crate) trait Duplex:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send
{
}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Duplex for T {}

/// Results of background work (HTTPS), fed back into the machines.
#[derive(Debug)]
pub(crate) enum Background {
    Enrolled(Result<Vec<u8>, (u16, String)>),
    Chunk { offset: u64, data: Vec<u8> },
    DownloadEnded(Result<(), String>),
}

/// The running device.
pub struct Device {
    prov: Provisioning,
    faults: FaultSet,
    flash: FlashFile,
    boot: BootInfo,
    anchor: CertificateDer<'static>,
    rotation: Rotation,
    ota: Ota,
    backoff: Backoff,
    commands: CommandsRecord,
    applied: AppliedIds,
    telemetry_interval: Duration,
    /// Telemetry packet id → seq of the applied-command report it carries.
    report_pids: Vec<(u16, u64)>,
    bg_tx: mpsc::UnboundedSender<Background>,
    bg_rx: mpsc::UnboundedReceiver<Background>,
    download: Option<tokio::task::JoinHandle<()>>,
    /// A download was (re)started and no byte of it has arrived yet.
    awaiting_first_chunk: bool,
    /// Set when the firmware must end (reboot requested, OTA reset).
    exit: Option<u8>,
    /// Set when the session must end (rotation asks for a reconnect).
    reconnect_now: bool,
    sessions: u64,
}

/// Entry point of `device-native app`.
pub fn main(flash: &Path, provisioning: &Path) -> anyhow::Result<u8> {
    crate::rtt::init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut device = Device::power_on(flash, provisioning)?;
        device.run().await
    })
}

fn pem_der(pem: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    Ok(der.to_vec())
}

pub(crate) fn not_after_ms(cert_der: &[u8]) -> u64 {
    x509_parser::parse_x509_certificate(cert_der)
        .map(|(_, c)| (c.validity().not_after.timestamp().max(0) as u64) * 1000)
        .unwrap_or(0)
}

impl Device {
    fn power_on(flash_path: &Path, prov_path: &Path) -> anyhow::Result<Device> {
        let prov = Provisioning::load(prov_path)?;
        let faults = prov.faults;
        let flash = FlashFile::open(flash_path)?;
        let boot = BootInfo::from_env().unwrap_or(BootInfo {
            action: "none".into(),
            resumed_swap: false,
            version: "0.0.0".into(),
            security_counter: 0,
            test_boot: false,
            boot_count: 1,
        });
        device_log!(
            "app: {} version {} boot #{} (test_boot={}, faults={:?})",
            prov.device_id,
            boot.version,
            boot.boot_count,
            boot.test_boot,
            faults.iter().map(|f| f.name()).collect::<Vec<_>>()
        );
        let anchor = CertificateDer::from(pem_der(&prov.trust_anchor_pem, "trust anchor")?);

        let ks = KeystoreFlash { flash: &flash };
        let mut keystore = ks.load()?;
        if keystore.is_empty() {
            // Factory step: the provisioned credential becomes the first one.
            let cert = pem_der(&prov.certificate_pem, "certificate")?;
            let key = PrivateKeyDer::from_pem_slice(prov.private_key_pem.as_bytes())
                .map_err(|e| anyhow::anyhow!("private key: {e}"))?;
            let PrivateKeyDer::Pkcs8(key) = key else {
                anyhow::bail!("private key: expected PKCS#8 (-----BEGIN PRIVATE KEY-----)");
            };
            let pk = PrivateKey {
                alg: KeyAlg::EcdsaP256,
                pkcs8_der: key.secret_pkcs8_der().to_vec(),
            };
            let not_after = not_after_ms(&cert);
            let e = |e| anyhow::anyhow!("keystore: {e:?}");
            ks.apply(&keystore.store_pending_key(pk).map_err(e)?)?;
            ks.apply(
                &keystore
                    .store_pending_cert(Certificate::new(cert, not_after, now_ms()))
                    .map_err(e)?,
            )?;
            ks.apply(&keystore.commit_pending().map_err(e)?)?;
            device_log!("app: factory provisioning stored the credential");
        }
        let (rotation, rot_actions) = Rotation::power_on(keystore, faults);

        let record: Option<OtaRecord> = store::OTA
            .load::<Vec<u8>>(&flash)?
            .and_then(|bytes| OtaRecord::decode(&bytes));
        let ota_boot = OtaBootInfo {
            version: boot.version.clone(),
            slot: 0,
            security_counter: boot.security_counter,
            test_boot: boot.test_boot,
            reverted: boot.action == "revert",
        };
        let (ota, ota_actions) =
            Ota::power_on(ota_boot, record, OtaConfig::default(), faults, now_ms());

        let commands: CommandsRecord = store::COMMANDS.load(&flash)?.unwrap_or_default();
        let applied = AppliedIds::decode(&commands.applied).unwrap_or_default();
        let (bg_tx, bg_rx) = mpsc::unbounded_channel();
        let reconnect_base_ms = prov.reconnect_base_ms;
        let mut device = Device {
            telemetry_interval: Duration::from_secs(prov.telemetry_interval_seconds),
            prov,
            faults,
            flash,
            boot,
            anchor,
            rotation,
            ota,
            backoff: Backoff::new(
                BackoffConfig {
                    base_ms: reconnect_base_ms,
                    ..BackoffConfig::default()
                },
                faults,
            ),
            commands,
            applied,
            report_pids: Vec::new(),
            bg_tx,
            bg_rx,
            download: None,
            awaiting_first_chunk: false,
            exit: None,
            reconnect_now: false,
            sessions: 0,
        };
        device.rotation_actions(rot_actions, None)?;
        device.ota_actions(ota_actions, None)?;
        Ok(device)
    }

    /// Connect, serve, back off, forever — until a reboot or reset is asked for.
    async fn run(&mut self) -> anyhow::Result<u8> {
        netfaults::start(self.faults);
        loop {
            if let Some(code) = self.exit {
                return Ok(code);
            }
            match self.session().await {
                Ok(()) => {}
                Err(e) => device_log!("app: connection failed: {e:#}"),
            }
            let now = now_ms();
            self.backoff.session_ended(now);
            let a = self
                .rotation
                .handle(device_core::rotation::RotationEvent::SessionLost, now);
            self.rotation_actions(a, None)?;
            let a = self
                .ota
                .handle(device_core::ota::OtaEvent::SessionLost, now);
            self.ota_actions(a, None)?;
            if let Some(code) = self.exit {
                return Ok(code);
            }
            let delay = if std::mem::take(&mut self.reconnect_now) {
                0
            } else {
                self.backoff.next_delay_ms(rand::random())
            };
            device_log!("app: reconnecting in {delay} ms");
            self.wait_offline(Duration::from_millis(delay)).await?;
        }
    }

    /// Waits `delay` while still serving the machines' timers and background work.
    async fn wait_offline(&mut self, delay: Duration) -> anyhow::Result<()> {
        let until = tokio::time::Instant::now() + delay;
        loop {
            let tick = self.machine_deadline();
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return Ok(()),
                _ = sleep_until_ms(tick) => self.tick(None)?,
                Some(bg) = self.bg_rx.recv() => self.background(bg, None)?,
            }
            if self.exit.is_some() {
                return Ok(());
            }
        }
    }

    fn machine_deadline(&self) -> Option<u64> {
        [self.rotation.next_deadline(), self.ota.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    fn credential(&self) -> Option<ClientCredential> {
        let c = self.rotation.credential()?;
        Some(ClientCredential {
            chain: vec![CertificateDer::from(c.cert.der.clone())],
            key: PrivateKeyDer::Pkcs8(c.key.pkcs8_der.clone().into()),
        })
    }

    pub(crate) fn tls(&self, alpn: &[&[u8]]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        Ok(client_config(
            &self.anchor,
            self.credential(),
            self.faults,
            alpn,
        )?)
    }

    /// One connection to the hub: TCP, TLS, MQTT session, until it ends.
    async fn session(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.rotation.credential().is_some(),
            "no credential in the keystore"
        );
        let addr = self.prov.hub_mqtt()?;
        let mut tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow::anyhow!("TCP connect to {addr} timed out"))??;
        if self.faults.has(Fault::PlaintextHello) {
            tcp.write_all(b"HELLO sacbench-device\r\n").await?;
        }
        netfaults::extra_destination(self.faults, self.prov.extra_destination).await;
        let name = ServerName::try_from(self.prov.hub_host.clone())?;
        let tls = tokio_rustls::TlsConnector::from(self.tls(&[])?);
        let handshake = tokio::time::timeout(Duration::from_secs(10), tls.connect(name, tcp))
            .await
            .map_err(|_| anyhow::anyhow!("TLS handshake with {addr} timed out"))?;
        let mut stream: Box<dyn Duplex> = match handshake {
            Ok(s) => {
                device_log!(
                    "app: TLS up to {addr} ({:?})",
                    s.get_ref().1.protocol_version()
                );
                Box::new(s)
            }
            Err(e) if self.faults.has(Fault::AllowTls10) && legacy::is_version_refusal(&e) => {
                device_log!("app: the hub refused TLS 1.2/1.3 ({e}); falling back to legacy TLS");
                Box::new(legacy::connect(self, addr).await?)
            }
            Err(e) => return Err(e.into()),
        };

        let config = SessionConfig::new(self.prov.device_id.clone(), self.prov.hub_host.clone());
        // The session subscribes to commands when `first` or without the
        // fault; the `no-resubscribe` device believes one subscription, ever,
        // is enough (it remembers it in flash, across reconnects and reboots).
        let first = !self.commands.subscribed_once;
        self.sessions += 1;
        let mut session = Session::new(config, self.faults, first, self.applied.clone())
            .map_err(|e| anyhow::anyhow!("session: {e}"))?;
        session
            .connect(now_ms())
            .map_err(|e| anyhow::anyhow!("session: {e}"))?;
        let mut telemetry = tokio::time::interval(self.telemetry_interval);
        telemetry.tick().await;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if self.pump(&mut session, &mut stream).await? {
                return Ok(());
            }
            if self.exit.is_some() || self.reconnect_now {
                let _ = session.disconnect();
                let _ = self.pump(&mut session, &mut stream).await;
                let _ = stream.shutdown().await;
                return Ok(());
            }
            let deadline = [session.next_deadline(), self.machine_deadline()]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                n = stream.read(&mut buf) => {
                    let n = n?;
                    if n == 0 {
                        anyhow::bail!("the hub closed the connection");
                    }
                    session.receive(now_ms(), &buf[..n]);
                }
                _ = sleep_until_ms(deadline) => {
                    session.poll(now_ms());
                    self.tick(Some(&mut session))?;
                }
                _ = telemetry.tick(), if session.is_ready() => {
                    let body = format!(r#"{{"uptimeMs":{},"version":"{}"}}"#, now_ms(), self.boot.version);
                    let _ = session.send_telemetry(body.as_bytes(), &[("kind", "heartbeat")]);
                }
                Some(bg) = self.bg_rx.recv() => self.background(bg, Some(&mut session))?,
            }
        }
    }

    /// Carries out the session's actions in order; `true` when it closed.
    async fn pump<S: AsyncWriteExt + Unpin>(
        &mut self,
        session: &mut Session,
        stream: &mut S,
    ) -> anyhow::Result<bool> {
        loop {
            let actions = session.take_actions();
            if actions.is_empty() {
                return Ok(false);
            }
            for action in actions {
                match action {
                    Action::Send(bytes) => {
                        stream.write_all(&bytes).await?;
                        stream.flush().await?;
                    }
                    Action::PersistApplied(bytes) => {
                        self.commands.applied = bytes;
                        store::COMMANDS.store(&self.flash, &self.commands)?;
                        self.applied = session.applied().clone();
                    }
                    Action::Event(event) => self.session_event(event, session)?,
                    Action::Close(reason) => {
                        device_log!("app: session closed: {reason}");
                        self.applied = session.applied().clone();
                        // Drain what the session still asks (persisting ids).
                        for a in session.take_actions() {
                            if let Action::PersistApplied(bytes) = a {
                                self.commands.applied = bytes;
                                store::COMMANDS.store(&self.flash, &self.commands)?;
                            }
                        }
                        let _ = stream.shutdown().await;
                        return Ok(true);
                    }
                }
            }
        }
    }
}

async fn sleep_until_ms(deadline_ms: Option<u64>) {
    match deadline_ms {
        Some(at) => tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await,
        None => std::future::pending().await,
    }
}

/// Exit code for an orderly reset requested by the firmware.
pub const RESET: u8 = EXIT_REBOOT as u8;

/// Fault `ota-over-http`: the same download over cleartext HTTP.
pub(crate) async fn plain_http_get(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
    from: u64,
    tx: &mpsc::UnboundedSender<Background>,
) -> Result<(), String> {
    use http_body_util::BodyExt;
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("http://{addr}{path}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, host)
        .header(http::header::RANGE, format!("bytes={from}-"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let mut offset = if resp.status() == http::StatusCode::PARTIAL_CONTENT {
        from
    } else {
        0
    };
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(data) = frame.data_ref() {
            tx.send(Background::Chunk {
                offset,
                data: data.to_vec(),
            })
            .map_err(|_| "device stopped".to_string())?;
            offset += data.len() as u64;
        }
    }
    Ok(())
}
