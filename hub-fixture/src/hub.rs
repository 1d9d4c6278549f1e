//! The hub: shared state and every operation a suite drives.
//!
//! [`HubFixture`] is the in-process admin API (register, revoke, send C2D,
//! twin, methods, clock); the admin HTTP endpoint and the CLI call the same
//! methods. The listeners (MQTT in [`crate::mqtt_server`], HTTPS in
//! [`crate::https`]) share this state through `Arc<HubState>`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use crate::clock::{Clock, VirtualClock};
use crate::journal::{CloseReason, Event, Journal};
use crate::pki::{CertificateAuthority, IssuedCert, KeyAlgorithm, PkiError, Validity};
use crate::serial::Serial;
use crate::session::SessionConfig;
use crate::store::{
    CertRecord, DeviceRecord, DeviceStatus, Feedback, NewMessage, QueuedMessage, Store, StoreError,
    Twin,
};
use crate::tls::{KeyLogWriter, RevokedSerials};

/// Errors of hub operations.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The store refused the operation (unknown device, full queue, bad TTL,
    /// oversized twin or message...) or its database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Loading or creating the CA, or issuing a certificate, failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// rustls refused the listeners' TLS server configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// An I/O operation failed: in the data directory (lock, journal,
    /// firmware), on the key log, or reading a listener's local address.
    #[error("{what}: {source}")]
    Io {
        /// What the hub was doing, e.g. `opening journal.jsonl`.
        what: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The [`HubConfig`] cannot work: no host name, or an admin address that
    /// is not loopback.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Another live hub holds the data directory's lock.
    #[error(
        "data directory {} is in use by another hub{}: stop that hub or use another data directory",
        .dir.display(),
        .holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    DataDirInUse {
        /// The data directory another hub holds.
        dir: PathBuf,
        /// Process id of the hub holding the lock, when its lock file names one.
        holder: Option<u32>,
    },
    /// A listener's address cannot be bound (taken, not local, not permitted).
    /// The I/O error is part of the message, not a `source`: printed with its
    /// chain it would say the same thing twice.
    #[error("{listener} listener: cannot listen on {addr}: {error}")]
    Bind {
        /// Which listener: `mqtt`, `https` or `admin`.
        listener: &'static str,
        /// The address it was configured with.
        addr: SocketAddr,
        /// Why the bind failed.
        error: std::io::Error,
    },
    /// No device with this id is registered (the admin API answers 404).
    #[error("device {0:?} is not registered")]
    UnknownDevice(String),
    /// No certificate with this serial was ever issued by the hub (the admin
    /// API answers 404).
    #[error("no certificate with serial {0}")]
    UnknownSerial(String),
    /// A name given to the hub breaks its rules: a device id, certificate
    /// serial or firmware name.
    #[error("invalid {what} {value:?}: {why}")]
    InvalidName {
        /// What kind of name, e.g. `device id`.
        what: &'static str,
        /// The name as given.
        value: String,
        /// The rule it breaks.
        why: &'static str,
    },
}

impl HubError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        HubError::Io {
            what: what.into(),
            source,
        }
    }
}

/// What a device needs to connect: its certificate and key, and the trust anchor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceCredentials {
    /// The device id: MQTT client id and the certificate's subject CN.
    pub device_id: String,
    /// The device certificate, PEM.
    pub cert_pem: String,
    /// The certificate's private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The certificate's serial, canonical lower-case hex (what revocation takes).
    pub serial: String,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub thumbprint: String,
    /// The run CA's certificate, PEM: the trust anchor for the hub's server certificate.
    pub ca_pem: String,
    /// The hub host name to connect to: TLS server name and the start of the
    /// CONNECT user name.
    pub hub_host: String,
}

/// Result of a direct method call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodResponse {
    /// The device's status code, or the hub's own: 404 the device is not
    /// connected, 504 it did not answer in time.
    pub status: u16,
    /// The device's response payload as JSON; a payload that is not JSON
    /// becomes a string, an empty one (or none) `null`.
    pub payload: serde_json::Value,
}

pub use crate::hub_state::HubState;
pub(crate) use crate::hub_state::{SessionCommand, SessionHandle, CLOCK_OFFSET_KEY};

/// A running fixture hub. Cheap to clone; dropping the last clone does not
/// stop it: call [`HubFixture::shutdown`].
#[derive(Clone)]
pub struct HubFixture {
    pub(crate) state: Arc<HubState>,
    mqtt_addr: SocketAddr,
    https_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    dir_lock: DirLock,
    /// The listener tasks: once they end, their sockets are closed (or
    /// handed back, [`HubFixture::stop`]).
    pub(crate) listeners: Arc<Mutex<Option<ListenerTasks>>>,
}

/// The tasks accepting on the hub's listeners; the MQTT and HTTPS ones
/// hand their socket back when the hub shuts down.
pub(crate) struct ListenerTasks {
    pub(crate) mqtt: tokio::task::JoinHandle<tokio::net::TcpListener>,
    pub(crate) https: tokio::task::JoinHandle<tokio::net::TcpListener>,
    pub(crate) admin: Option<tokio::task::JoinHandle<()>>,
}

/// A stopped hub's MQTT and HTTPS listening sockets, still bound and
/// listening: what [`HubFixture::start_on`] starts the next hub on.
#[derive(Debug)]
pub struct Listeners {
    pub(crate) mqtt: tokio::net::TcpListener,
    pub(crate) https: tokio::net::TcpListener,
}

impl std::fmt::Debug for HubFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubFixture")
            .field("mqtt", &self.mqtt_addr)
            .field("https", &self.https_addr)
            .finish_non_exhaustive()
    }
}

fn validate_device_id(id: &str) -> Result<(), HubError> {
    // IoT Hub: up to 128 chars of ASCII letters, digits and - . _ : (we keep
    // it strict so ids are safe in topics, file names and URLs).
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'));
    if ok {
        Ok(())
    } else {
        Err(HubError::InvalidName {
            what: "device id",
            value: id.to_owned(),
            why: "use 1-128 of A-Z a-z 0-9 - . _ :",
        })
    }
}

impl HubFixture {
    /// Opens (or creates) the data directory and starts the listeners.
    pub async fn start(config: HubConfig) -> Result<Self, HubError> {
        Self::start_inner(config, None).await
    }

    pub(crate) async fn start_inner(
        config: HubConfig,
        kept: Option<Listeners>,
    ) -> Result<Self, HubError> {
        if config.host_names.is_empty() {
            return Err(HubError::Config("at least one host name is needed".into()));
        }
        if let Some(a) = config.admin_addr {
            if !a.ip().is_loopback() {
                return Err(HubError::Config(format!(
                    "admin address {a} is not a loopback address"
                )));
            }
        }
        let dir = &config.data_dir;
        // The lock comes before anything else in the directory is opened or
        // changed: a second hub must leave a live one's files alone.
        create_private_dir(dir)?;
        let dir_lock = DirLock::acquire(dir)?;
        make_private(dir)?;
        create_private_dir(&dir.join("firmware"))?;
        if let Some(p) = &config.key_log {
            private_key_log(p)?;
        }
        // Listeners before the store, journal and CA: a taken address
        // leaves none of them behind in a new directory.
        let bind = |listener: &'static str, addr: SocketAddr| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|error| HubError::Bind {
                    listener,
                    addr,
                    error,
                })
        };
        let (mqtt, https) = match kept {
            Some(Listeners { mqtt, https }) => (mqtt, https),
            None => (
                bind("mqtt", config.mqtt_addr).await?,
                bind("https", config.https_addr).await?,
            ),
        };
        let admin = match config.admin_addr {
            Some(a) => Some(bind("admin", a).await?),
            None => None,
        };
        let store = Store::open(&dir.join("hub.sqlite"), config.store.clone())?;
        let offset_ms: u64 = store
            .meta(CLOCK_OFFSET_KEY)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut clock = VirtualClock::with_offset(Duration::from_millis(offset_ms));
        if let Some(scale) = config.time_scale {
            clock = clock.scaled(scale);
        }
        let clock = Arc::new(clock);
        let journal = Journal::new(clock.clone());
        journal
            .write_to(&dir.join("journal.jsonl"))
            .map_err(|e| HubError::io("opening journal.jsonl", e))?;
        let ca = CertificateAuthority::load_or_create(dir, "sacbench run CA", clock.now())?;
        let server = ca.issue_server(&config.host_names, Validity::days_from(clock.now(), 30))?;
        let revoked = Arc::new(RevokedSerials::default());
        for s in store.revoked_serials()? {
            revoked.insert(&s);
        }
        let key_log: Option<Arc<dyn rustls::KeyLog>> = match &config.key_log {
            Some(p) => Some(Arc::new(KeyLogWriter::create(p).map_err(|e| {
                HubError::io(format!("opening key log {}", p.display()), e)
            })?)),
            None => None,
        };
        let tls = crate::tls::server_config(
            ca.cert_der(),
            &server,
            revoked.clone(),
            clock.clone(),
            key_log,
            &[],
        )?;
        let session_config = SessionConfig {
            hub_host: config.host_names[0].clone(),
            max_packet_size: config.max_packet_size,
            c2d_window: config.c2d_window,
        };
        let local = |l: &tokio::net::TcpListener| {
            l.local_addr().map_err(|e| HubError::io("local address", e))
        };
        let mqtt_addr = local(&mqtt)?;
        let https_addr = local(&https)?;
        let admin_addr = admin.as_ref().map(local).transpose()?;
        let (shutdown, _) = watch::channel(false);
        let state = Arc::new(HubState {
            config,
            session_config,
            clock,
            journal,
            store: Mutex::new(store),
            ca,
            revoked,
            sessions: Mutex::new(HashMap::new()),
            methods: Mutex::new(HashMap::new()),
            refuse_enrollment: Mutex::new(Default::default()),
            firmware_rate: Mutex::new(None),
            withhold_connack: Mutex::new(Default::default()),
            lose_puback: Mutex::new(Default::default()),
            held_desired: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            tls,
            shutdown,
        });
        let hub = Self {
            state: state.clone(),
            mqtt_addr,
            https_addr,
            admin_addr,
            dir_lock,
            listeners: Default::default(),
        };
        // The lock lives as long as the hub runs, even when every handle is
        // dropped without `shutdown` (the listeners go on): this task keeps
        // it until the shutdown signal, or until the runtime goes away.
        let held = hub.dir_lock.clone();
        let mut stopped = state.shutdown.subscribe();
        tokio::spawn(async move {
            let _ = stopped.wait_for(|s| *s).await;
            held.release();
        });
        state.journal.record(
            None,
            None,
            Event::HubStarted {
                mqtt: mqtt_addr.to_string(),
                https: https_addr.to_string(),
                host_name: hub.host_name().to_owned(),
            },
        );
        let tasks = ListenerTasks {
            mqtt: tokio::spawn(crate::mqtt_server::serve(state.clone(), mqtt)),
            https: tokio::spawn(crate::https::serve(state.clone(), https)),
            admin: admin.map(|admin| tokio::spawn(crate::admin::serve(hub.clone(), admin))),
        };
        *hub.listeners.lock().expect("listeners lock") = Some(tasks);
        Ok(hub)
    }

    /// Stops accepting and closes every live session.
    pub fn shutdown(&self) {
        self.state.shutdown.send_replace(true);
        // At once, not when the task above gets to run: a hub started on the
        // same directory right after this call must get the lock.
        self.dir_lock.release();
        let sessions = self.state.sessions.lock().expect("sessions lock");
        for h in sessions.values() {
            let _ = h.tx.send(SessionCommand::Close {
                reason: CloseReason::HubShutdown,
                detail: "hub shut down".into(),
                revoked_at: None,
            });
        }
    }

    /// The address the MQTT listener is bound to (the actual port when 0 was asked).
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.mqtt_addr
    }
    /// The address the HTTPS listener is bound to (the actual port when 0 was asked).
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }
    /// The address the admin HTTP endpoint is bound to; `None` when it was not asked for.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }
    /// The hub host name devices must use (user name, SNI, certificate).
    pub fn host_name(&self) -> &str {
        &self.state.config.host_names[0]
    }
    /// The run CA's certificate, PEM: what devices trust the hub by.
    pub fn ca_pem(&self) -> &str {
        self.state.ca.cert_pem()
    }
    /// The hub's virtual clock. Moving it through [`HubFixture::advance_clock`]
    /// also persists the offset and expires due messages.
    pub fn clock(&self) -> &Arc<VirtualClock> {
        &self.state.clock
    }
    /// The hub's event journal: what cases assert on, and wait on with [`Journal::wait_for`].
    pub fn journal(&self) -> &Journal {
        &self.state.journal
    }
    /// The data directory this hub holds locked ([`HubConfig::data_dir`]).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.state.config.data_dir
    }

    /// Registers a device and issues its first certificate (ECDSA P-256).
    pub fn register_device(&self, device_id: &str) -> Result<DeviceCredentials, HubError> {
        validate_device_id(device_id)?;
        let now = self.state.now_ms();
        self.state.store().register_device(device_id, now)?;
        let validity =
            Validity::days_from(self.state.clock.now(), self.state.config.device_cert_days);
        let issued = self
            .state
            .issue_certificate(device_id, KeyAlgorithm::EcdsaP256, validity)?;
        self.state.journal.record(
            Some(device_id),
            None,
            Event::DeviceRegistered {
                serial: issued.serial.clone(),
            },
        );
        Ok(self.credentials(device_id, issued))
    }

    /// Issues another certificate for a registered device, with any key type
    /// and validity (tests use this for expired and not-yet-valid certificates).
    pub fn issue_certificate(
        &self,
        device_id: &str,
        algorithm: KeyAlgorithm,
        validity: Validity,
    ) -> Result<DeviceCredentials, HubError> {
        self.device(device_id)?;
        let issued = self
            .state
            .issue_certificate(device_id, algorithm, validity)?;
        Ok(self.credentials(device_id, issued))
    }

    fn credentials(&self, device_id: &str, issued: IssuedCert) -> DeviceCredentials {
        DeviceCredentials {
            device_id: device_id.to_owned(),
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem.unwrap_or_default(),
            serial: issued.serial,
            thumbprint: issued.thumbprint,
            ca_pem: self.ca_pem().to_owned(),
            hub_host: self.host_name().to_owned(),
        }
    }

    /// The device's registry record; [`HubError::UnknownDevice`] if it is not registered.
    pub fn device(&self, device_id: &str) -> Result<DeviceRecord, HubError> {
        self.state
            .store()
            .device(device_id)?
            .ok_or_else(|| HubError::UnknownDevice(device_id.to_owned()))
    }

    /// All registered devices, by id.
    pub fn devices(&self) -> Result<Vec<DeviceRecord>, HubError> {
        Ok(self.state.store().devices()?)
    }

    /// Every certificate issued to the device, in issue order, revoked ones
    /// included (empty for an unknown device).
    pub fn certificates(&self, device_id: &str) -> Result<Vec<CertRecord>, HubError> {
        Ok(self.state.store().certificates_of(device_id)?)
    }

    /// Enables or disables a device; disabling closes its live session.
    pub fn set_device_status(
        &self,
        device_id: &str,
        status: DeviceStatus,
    ) -> Result<DeviceRecord, HubError> {
        let record = self.state.store().set_device_status(device_id, status)?;
        let name = match status {
            DeviceStatus::Enabled => "enabled",
            DeviceStatus::Disabled => "disabled",
        };
        self.state.journal.record(
            Some(device_id),
            None,
            Event::DeviceStatusChanged {
                status: name.into(),
            },
        );
        if status == DeviceStatus::Disabled {
            let _ = self.state.send_to_session(
                device_id,
                SessionCommand::Close {
                    reason: CloseReason::DeviceDisabled,
                    detail: "device disabled".into(),
                    revoked_at: None,
                },
            );
        }
        Ok(record)
    }

    /// Deletes a device: its queue (feedback `rejected`), twin and certificates (revoked).
    pub fn delete_device(&self, device_id: &str) -> Result<(), HubError> {
        self.device(device_id)?;
        let serials: Vec<Serial> = self
            .certificates(device_id)?
            .into_iter()
            .map(|c| c.serial)
            .collect();
        let now = self.state.now_ms();
        let feedback = self.state.store().delete_device(device_id, now)?;
        for s in &serials {
            self.state.revoked.insert(s);
        }
        self.state.journal_feedback(&feedback);
        self.state
            .journal
            .record(Some(device_id), None, Event::DeviceDeleted {});
        let _ = self.state.send_to_session(
            device_id,
            SessionCommand::Close {
                reason: CloseReason::DeviceDeleted,
                detail: "device deleted".into(),
                revoked_at: None,
            },
        );
        Ok(())
    }

    /// Revokes a certificate: its live session closes at once, later handshakes fail.
    pub fn revoke(&self, serial: &str) -> Result<CertRecord, HubError> {
        let serial = Serial::parse(serial).map_err(|e| HubError::InvalidName {
            what: "certificate serial",
            value: e.text,
            why: e.why,
        })?;
        self.state.revoke(&serial)
    }

    /// Whether the device has a live (CONNECTed) session.
    pub fn is_connected(&self, device_id: &str) -> bool {
        self.state
            .sessions
            .lock()
            .expect("sessions lock")
            .contains_key(device_id)
    }

    /// Queues a cloud-to-device message (refused past depth 50 or TTL 48 h).
    pub fn send_c2d(
        &self,
        device_id: &str,
        message: NewMessage,
    ) -> Result<QueuedMessage, HubError> {
        let now = self.state.now_ms();
        let result = self.state.store().enqueue(device_id, message, now);
        match result {
            Ok(m) => {
                self.state.journal.record(
                    Some(device_id),
                    None,
                    Event::C2dEnqueued {
                        message_seq: m.seq,
                        message_id: m.message_id.clone(),
                        expires_ms: m.expires_ms,
                    },
                );
                let _ = self
                    .state
                    .send_to_session(device_id, SessionCommand::C2dAvailable);
                Ok(m)
            }
            Err(e) => {
                self.state.journal.record(
                    Some(device_id),
                    None,
                    Event::C2dRefused {
                        reason: e.to_string(),
                    },
                );
                Err(e.into())
            }
        }
    }

    /// The device's C2D messages still in its queue, in order (may include
    /// ones already past their expiry that no delivery or clock move has removed yet).
    pub fn pending_c2d(&self, device_id: &str) -> Result<Vec<QueuedMessage>, HubError> {
        Ok(self.state.store().pending(device_id)?)
    }

    /// C2D feedback records of one device (`Some`) or of all devices, oldest first.
    pub fn feedback(&self, device_id: Option<&str>) -> Result<Vec<Feedback>, HubError> {
        Ok(self.state.store().feedback(device_id)?)
    }

    /// The device's twin: desired and reported properties with their versions.
    pub fn twin(&self, device_id: &str) -> Result<Twin, HubError> {
        Ok(self.state.store().twin(device_id)?)
    }

    /// Patches desired properties and notifies the device if it is connected.
    pub fn patch_desired(
        &self,
        device_id: &str,
        patch: &serde_json::Value,
    ) -> Result<Twin, HubError> {
        let twin = self.state.store().patch_desired(device_id, patch)?;
        let held = self.hold_desired(device_id, twin.desired_version, patch);
        let notified = !held
            && self
                .state
                .send_to_session(
                    device_id,
                    SessionCommand::Desired {
                        version: twin.desired_version,
                        patch: patch.clone(),
                    },
                )
                .is_ok();
        self.state.journal.record(
            Some(device_id),
            None,
            Event::TwinDesired {
                version: twin.desired_version,
                notified,
            },
        );
        Ok(twin)
    }

    /// Calls a direct method. 404 at once when the device is offline (or not
    /// subscribed to methods), 504 when it does not answer within `timeout`.
    pub async fn invoke_method(
        &self,
        device_id: &str,
        name: &str,
        payload: &serde_json::Value,
        timeout: Duration,
    ) -> Result<MethodResponse, HubError> {
        self.device(device_id)?;
        let rid = format!("{:x}", self.state.next_id());
        let (tx, rx) = oneshot::channel();
        self.state
            .methods
            .lock()
            .expect("methods lock")
            .insert(rid.clone(), (device_id.to_owned(), tx));
        self.state.journal.record(
            Some(device_id),
            None,
            Event::MethodInvoked {
                name: name.into(),
                rid: rid.clone(),
            },
        );
        let cmd = SessionCommand::Method {
            name: name.into(),
            rid: rid.clone(),
            payload: payload.to_string().into_bytes(),
        };
        if self.state.send_to_session(device_id, cmd).is_err() {
            self.state.finish_method(None, &rid, 404, Bytes::new());
        }
        let response = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            _ => {
                self.state
                    .methods
                    .lock()
                    .expect("methods lock")
                    .remove(&rid);
                MethodResponse {
                    status: 504,
                    payload: serde_json::Value::Null,
                }
            }
        };
        self.state.journal.record(
            Some(device_id),
            None,
            Event::MethodResult {
                name: name.into(),
                rid,
                status: response.status,
            },
        );
        Ok(response)
    }

    /// Moves the virtual clock forward, persists the offset, and expires due messages.
    pub fn advance_clock(&self, by: Duration) -> Result<i64, HubError> {
        let offset = self.state.clock.advance(by);
        let now = self.state.now_ms();
        let feedback = {
            let mut store = self.state.store();
            store.set_meta(CLOCK_OFFSET_KEY, &offset.as_millis().to_string())?;
            store.expire_due(now)?
        };
        self.state.journal.record(
            None,
            None,
            Event::ClockAdvanced {
                by_ms: by.as_millis() as i64,
                now_ms: now,
            },
        );
        self.state.journal_feedback(&feedback);
        Ok(now)
    }

    /// Sends firmware downloads at most at `bytes_per_second` (`None`: as
    /// fast as the link goes) — a slow link in the hub alone, whatever the
    /// device, so a case can act while a download is under way.
    pub fn set_firmware_rate(&self, bytes_per_second: Option<u64>) {
        *self.state.firmware_rate.lock().expect("firmware rate lock") = bytes_per_second;
    }

    /// Makes the hub refuse (or again accept) EST re-enrolment of a device.
    /// While refused, its simplereenroll requests are answered 503.
    pub fn set_refuse_enrollment(&self, device_id: &str, refuse: bool) {
        let mut set = self.state.refuse_enrollment.lock().expect("enrolment lock");
        if refuse {
            set.insert(device_id.to_owned());
        } else {
            set.remove(device_id);
        }
    }

    /// Stores a firmware image served at `https://{hub}/firmware/{name}`.
    pub fn put_firmware(&self, name: &str, image: &[u8]) -> Result<(), HubError> {
        let ok = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !ok {
            return Err(HubError::InvalidName {
                what: "firmware name",
                value: name.into(),
                why: "use A-Z a-z 0-9 - . _, not starting with .",
            });
        }
        let path = self.data_dir().join("firmware").join(name);
        std::fs::write(&path, image)
            .map_err(|e| HubError::io(format!("writing {}", path.display()), e))
    }
}

#[path = "hub_config.rs"]
mod config;
pub use config::HubConfig;

#[path = "hub_data_dir.rs"]
mod data_dir;
use data_dir::{create_private_dir, make_private, private_key_log, DirLock};
