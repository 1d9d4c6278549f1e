//! The firmware proper: a thin IO shell around `device_core::device::Device`,
//! the machine that makes every decision. One tokio current-thread runtime;
//! the shell carries out the machine's actions in order (socket writes,
//! flash writes, HTTPS requests, key generation), feeds back what happened
//! (bytes received, transport up or down, answers) and wakes it at
//! [`Device::poll_timeout`]. Time passed in is the wall clock, Unix ms.
//!
//! Evidence for the suites: every decision is logged through RTT (the
//! machine's log lines, prefixed `app: `); every applied command is
//! reported as telemetry with property `kind=command-applied` and body
//! `{"mid", "seq", "payload"}`, where `seq` counts applications on this
//! device (a command applied twice shows twice, with two `seq` values; a
//! report re-sent after a lost PUBACK keeps its `seq`).

mod legacy;
mod netfaults;
mod services;
mod store;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use device_core::backoff::BackoffConfig;
use device_core::device::{
    Action, BootState, Device, DeviceConfig, Event, FactoryCredential, Stored,
};
use device_core::faults::{Fault, FaultSet};
use device_core::keystore::{KeyAlg, PrivateKey};
use device_core::ota::{OtaConfig, OtaRecord};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::bootloader::{built_in_keys, BootInfo, BOARD, EXIT_REBOOT};
use crate::device_log;
use crate::flash::FlashFile;
use crate::provisioning::Provisioning;
use crate::tls::{client_config, ClientCredential};
pub use store::{CommandsRecord, KeystoreFlash, RecordCell};

/// The board's wall clock, Unix ms (time-scaled when the bench asks): the
/// machine's `now` (certificate validity and renewal, `rotateAfter`, timers).
pub(crate) fn now_ms() -> u64 {
    crate::clock::now_ms()
}

/// A byte stream to the hub (rustls, or the legacy path of `allow-tls10`).
pub(crate) trait Duplex:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send
{
}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Duplex for T {}

/// Results of background work (HTTPS), fed back into the machine.
#[derive(Debug)]
pub(crate) enum Background {
    Enrolled(Result<Vec<u8>, (u16, String)>),
    Chunk { offset: u64, data: Vec<u8> },
    DownloadEnded(Result<(), String>),
}

/// The running firmware: the machine and the IO it needs.
pub struct Shell {
    prov: Provisioning,
    faults: FaultSet,
    flash: FlashFile,
    anchor: CertificateDer<'static>,
    device: Device<rand::rngs::ThreadRng>,
    stream: Option<Box<dyn Duplex>>,
    bg_tx: mpsc::UnboundedSender<Background>,
    bg_rx: mpsc::UnboundedReceiver<Background>,
    download: Option<tokio::task::JoinHandle<()>>,
}

/// Entry point of `device-native app`.
pub fn main(flash: &Path, provisioning: &Path) -> anyhow::Result<u8> {
    crate::rtt::init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut shell = Shell::power_on(flash, provisioning)?;
        shell.run().await
    })
}

fn pem_der(pem: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    Ok(der.to_vec())
}

/// The public key of a certificate, as an image key would be loaded.
fn spki_key(cert_der: &[u8]) -> Option<device_core::image::TrustedKey> {
    let (_, c) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    device_core::image::TrustedKey::from_spki_der(c.public_key().raw).ok()
}

/// A certificate's (notBefore, notAfter), Unix ms; zeros if it does not parse.
pub(crate) fn validity_ms(cert_der: &[u8]) -> (u64, u64) {
    x509_parser::parse_x509_certificate(cert_der)
        .map(|(_, c)| {
            let v = c.validity();
            let ms = |t: x509_parser::time::ASN1Time| (t.timestamp().max(0) as u64) * 1000;
            (ms(v.not_before), ms(v.not_after))
        })
        .unwrap_or((0, 0))
}

/// The provisioned credential, as the machine stores it into an empty keystore.
fn factory_credential(prov: &Provisioning) -> anyhow::Result<FactoryCredential> {
    let cert_der = pem_der(&prov.certificate_pem, "certificate")?;
    let key = PrivateKeyDer::from_pem_slice(prov.private_key_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("private key: {e}"))?;
    let PrivateKeyDer::Pkcs8(key) = key else {
        anyhow::bail!("private key: expected PKCS#8 (-----BEGIN PRIVATE KEY-----)");
    };
    Ok(FactoryCredential {
        key: PrivateKey {
            alg: KeyAlg::EcdsaP256,
            pkcs8_der: key.secret_pkcs8_der().to_vec(),
        },
        not_after_ms: validity_ms(&cert_der).1,
        not_before_ms: validity_ms(&cert_der).0,
        cert_der,
    })
}

impl Shell {
    fn power_on(flash_path: &Path, prov_path: &Path) -> anyhow::Result<Shell> {
        let prov = Provisioning::load(prov_path)?;
        if let Some(scale) = prov.clock {
            crate::clock::set_scale(scale);
        }
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
        let anchor = CertificateDer::from(pem_der(&prov.trust_anchor_pem, "trust anchor")?);
        let keystore = KeystoreFlash { flash: &flash }.load()?;
        let factory = if keystore.is_empty() {
            Some(factory_credential(&prov)?)
        } else {
            None
        };
        let ota: Option<OtaRecord> = store::OTA
            .load::<Vec<u8>>(&flash)?
            .and_then(|bytes| OtaRecord::decode(&bytes));
        let commands: CommandsRecord = store::COMMANDS.load(&flash)?.unwrap_or_default();
        let config = DeviceConfig {
            device_id: prov.device_id.clone(),
            hub_host: prov.hub_host.clone(),
            faults,
            telemetry_interval_ms: prov.telemetry_interval_seconds.saturating_mul(1000),
            backoff: BackoffConfig {
                base_ms: prov.reconnect_base_ms,
                ..BackoffConfig::default()
            },
            ota: OtaConfig::default(),
            image_keys: built_in_keys(),
            // The TLS trust anchor's key: known, but no firmware signer.
            other_keys: spki_key(&anchor).into_iter().collect(),
            board: BOARD.into(),
            max_packet_size: device_core::session::MAX_PACKET_SIZE,
        };
        let boot = BootState {
            reverted: boot.action == "revert",
            version: boot.version,
            security_counter: boot.security_counter,
            test_boot: boot.test_boot,
            boot_count: boot.boot_count,
        };
        let stored = Stored {
            keystore,
            ota,
            commands,
        };
        let device = Device::power_on(config, boot, stored, factory, rand::rng(), now_ms());
        let (bg_tx, bg_rx) = mpsc::unbounded_channel();
        Ok(Shell {
            prov,
            faults,
            flash,
            anchor,
            device,
            stream: None,
            bg_tx,
            bg_rx,
            download: None,
        })
    }

    /// Carries out actions and feeds events until the machine resets.
    async fn run(&mut self) -> anyhow::Result<u8> {
        netfaults::start(self.faults);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            while let Some(action) = self.device.poll_action() {
                if let Some(code) = self.execute(action).await? {
                    return Ok(code);
                }
            }
            let deadline = self.device.poll_timeout();
            tokio::select! {
                n = read_some(&mut self.stream, &mut buf) => {
                    let now = now_ms();
                    match n {
                        Ok(0) => self.transport_down("the hub closed the connection".into()),
                        Ok(n) => self.device.handle(now, Event::Received(&buf[..n])),
                        Err(e) => self.transport_down(e.to_string()),
                    }
                }
                _ = sleep_until_ms(deadline) => self.device.handle_timeout(now_ms()),
                Some(bg) = self.bg_rx.recv() => self.background(bg),
            }
        }
    }

    fn transport_down(&mut self, reason: String) {
        self.stream = None;
        self.device.handle(
            now_ms(),
            Event::TransportDown {
                reason: reason.as_str(),
            },
        );
    }

    /// One action; `Some(exit code)` when the firmware must end.
    async fn execute(&mut self, action: Action) -> anyhow::Result<Option<u8>> {
        match action {
            Action::Log(line) => device_log!("app: {line}"),
            Action::Connect => match self.connect().await {
                Ok(stream) => {
                    self.stream = Some(stream);
                    self.device.handle(now_ms(), Event::TransportUp);
                }
                Err(e) => self.transport_down(format!("{e:#}")),
            },
            Action::Send(bytes) => {
                if let Some(stream) = &mut self.stream {
                    let written = async {
                        stream.write_all(&bytes).await?;
                        stream.flush().await
                    }
                    .await;
                    if let Err(e) = written {
                        self.transport_down(e.to_string());
                    }
                }
            }
            Action::CloseTransport => {
                if let Some(mut stream) = self.stream.take() {
                    let _ = stream.shutdown().await;
                }
            }
            Action::PersistKeystore(writes) => {
                KeystoreFlash { flash: &self.flash }.apply(&writes)?
            }
            Action::PersistCommands(log) => store::COMMANDS.store(&self.flash, &log)?,
            Action::PersistOta(bytes) => store::OTA.store(&self.flash, &bytes)?,
            Action::Reset => return Ok(Some(RESET)),
            other => self.service(other)?,
        }
        Ok(None)
    }

    fn credential(&self) -> Option<ClientCredential> {
        let c = self.device.credential()?;
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

    /// TCP and TLS to the hub (with the transport's fault switches).
    async fn connect(&mut self) -> anyhow::Result<Box<dyn Duplex>> {
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
        match handshake {
            Ok(s) => {
                device_log!(
                    "app: TLS up to {addr} ({:?})",
                    s.get_ref().1.protocol_version()
                );
                Ok(Box::new(s))
            }
            Err(e) if self.faults.has(Fault::AllowTls10) && legacy::is_version_refusal(&e) => {
                device_log!("app: the hub refused TLS 1.2/1.3 ({e}); falling back to legacy TLS");
                let cred = self
                    .device
                    .credential()
                    .ok_or_else(|| anyhow::anyhow!("no credential"))?;
                Ok(Box::new(
                    legacy::connect(cred, &self.anchor, &self.prov.hub_host, addr).await?,
                ))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Reads from the transport; pends forever without one.
async fn read_some(stream: &mut Option<Box<dyn Duplex>>, buf: &mut [u8]) -> std::io::Result<usize> {
    match stream {
        Some(s) => s.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_ms(deadline_ms: Option<u64>) {
    match deadline_ms {
        Some(at) => {
            tokio::time::sleep(crate::clock::real_duration(at.saturating_sub(now_ms()))).await
        }
        None => std::future::pending().await,
    }
}

/// Exit code for an orderly reset requested by the firmware.
pub const RESET: u8 = EXIT_REBOOT as u8;
