//! The whole device as one sans-IO machine: [`Device`] owns the MQTT
//! [`Session`] of the current connection, the [`Rotation`] and [`Ota`]
//! machines and the reconnect [`Backoff`], routes between them, parses the
//! twin and makes every security decision — OTA image verification
//! (SHA-256, size, MCUboot signature, anti-rollback: [`ota_verify`]),
//! rotation triggers, command de-duplication, which key a rotation uses.
//! A shell (the emulated board's tokio process, or a Cortex-M firmware on
//! smoltcp and an embedded TLS stack) only does IO.
//!
//! # Driving it (as quinn-proto is driven)
//! * Time is passed in: every input carries `now_ms`, the device's wall
//!   clock in Unix ms (rotation compares it with the twin's `rotateAfter`).
//! * Inputs: [`Device::handle`] with an [`Event`] (transport up/down, bytes
//!   received, answers to the actions below), and [`Device::handle_timeout`]
//!   once [`Device::poll_timeout`] is reached.
//! * Outputs: after every input, drain [`Device::poll_action`] and carry the
//!   [`Action`]s out **in order**, one at a time: a persist action must be
//!   durable before the next action (a PUBACK, a connection with a new
//!   credential) leaves. An action that asks a question (`Connect`,
//!   `GenerateKey`, `BuildCsr`, `ReadSecondary`, ...) is answered with the
//!   matching [`Event`], immediately or later.
//! * Entropy for the reconnect jitter comes from the RNG the shell hands
//!   over at power-on.
//!
//! # What stays in the shell
//! Sockets and TLS (including the TLS stack's fault switches, which are
//! properties of that stack: cipher suites, SNI, certificate checks),
//! HTTPS, flash, key generation and CSR encoding (crypto services), and the
//! network faults that open listeners. Everything the device *decides* is
//! here.

mod machines;
pub mod ota_verify;
mod route;
pub mod twin;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_commands;
#[cfg(test)]
mod tests_ota;
#[cfg(test)]
mod tests_renewal;
#[cfg(test)]
mod tests_twin;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rand_core::Rng;

use crate::backoff::{Backoff, BackoffConfig};
use crate::faults::FaultSet;
use crate::image::TrustedKey;
use crate::keystore::{Certificate, Credential, Keystore, KeystoreError, PrivateKey, Write};
use crate::ota::{BootInfo as OtaBootInfo, Ota, OtaConfig, OtaRecord};
use crate::rotation::Rotation;
use crate::session::{AppliedIds, Session, SessionConfig};
use ota_verify::VerifyRequest;

/// What the device is configured with (provisioning and build).
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// Device id = MQTT client id = certificate CN.
    pub device_id: String,
    /// The hub's host name (SNI, MQTT user name).
    pub hub_host: String,
    /// The deliberate defects switched on (all off in a product).
    pub faults: FaultSet,
    /// Heartbeat telemetry period until the twin sets another, ms.
    pub telemetry_interval_ms: u64,
    /// Reconnect policy.
    pub backoff: BackoffConfig,
    /// OTA timing.
    pub ota: OtaConfig,
    /// The keys OTA images must be signed with (the bootloader's own).
    pub image_keys: Vec<TrustedKey>,
    /// Keys the device knows for something else (its TLS trust anchor's):
    /// never firmware signers (only the `any-known-signer` fault uses them).
    pub other_keys: Vec<TrustedKey>,
    /// This board's identity: an image naming another board in its
    /// protected board TLV is refused.
    pub board: String,
    /// The largest MQTT packet the device takes (a larger one ends the
    /// session); [`crate::session::MAX_PACKET_SIZE`] unless memory is tight.
    pub max_packet_size: usize,
}

/// What the bootloader tells the running image at power-on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootState {
    /// Version of the running image (`1.4.0`, or `1.4.0+2` with a build number).
    pub version: String,
    /// Security counter of the running image.
    pub security_counter: u32,
    /// The running image is on a test boot (not confirmed yet).
    pub test_boot: bool,
    /// The bootloader reverted an unconfirmed image at this reset.
    pub reverted: bool,
    /// Power-ons since the board was powered (1 = cold boot).
    pub boot_count: u64,
}

/// An applied command whose report the hub has not acknowledged yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppliedReport {
    /// Application number on this device.
    pub seq: u64,
    /// The command's `$.mid`.
    pub mid: String,
    /// The command's payload, as (lossy) UTF-8.
    pub payload: String,
}

/// The persisted command state (stored as [`crate::store::encode_commands`] writes it).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommandLog {
    /// Applied command ids, as [`AppliedIds::encode`] writes them.
    pub applied: Vec<u8>,
    /// The next application's `seq`.
    pub next_seq: u64,
    /// Applications whose report was not acknowledged (at most 32, oldest first).
    pub unreported: Vec<AppliedReport>,
    /// A session has subscribed to commands since provisioning (what the
    /// `no-resubscribe` fault wrongly relies on).
    #[serde(default)]
    pub subscribed_once: bool,
}

/// The credential the factory provisioned, stored if the keystore is empty.
#[derive(Debug, Clone)]
pub struct FactoryCredential {
    /// Its private key.
    pub key: PrivateKey,
    /// Its certificate, DER.
    pub cert_der: Vec<u8>,
    /// The certificate's notAfter, Unix ms (the shell parses it).
    pub not_after_ms: u64,
    /// The certificate's notBefore, Unix ms (the shell parses it).
    pub not_before_ms: u64,
}

/// What the device read from flash at power-on.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The decoded keystore region.
    pub keystore: Keystore,
    /// The OTA record (`None`: none, or torn).
    pub ota: Option<OtaRecord>,
    /// The command state (default when none).
    pub commands: CommandLog,
}

/// Inputs to [`Device::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// The transport [`Action::Connect`] asked for (TCP, TLS) is up.
    TransportUp,
    /// [`Action::Connect`] failed, or the transport broke or was closed by
    /// the hub; `reason` is logged.
    TransportDown {
        /// What went wrong, for the log.
        reason: &'a str,
    },
    /// Bytes received on the transport, in any split.
    Received(&'a [u8]),
    /// Answer to [`Action::GenerateKey`].
    KeyGenerated(PrivateKey),
    /// [`Action::GenerateKey`] failed.
    KeyGenerationFailed {
        /// Why.
        reason: String,
    },
    /// Answer to [`Action::BuildCsr`]: the PKCS#10 DER, or why it failed.
    CsrBuilt(Result<Vec<u8>, String>),
    /// The hub issued a certificate (the leaf of the EST reply).
    Enrolled {
        /// The certificate, DER.
        cert_der: Vec<u8>,
        /// Its notAfter, Unix ms.
        not_after_ms: u64,
        /// Its notBefore, Unix ms.
        not_before_ms: u64,
    },
    /// The hub refused the re-enrolment with an HTTP error status.
    EnrollRefused {
        /// The HTTP status.
        status: u16,
        /// The body or reason phrase.
        reason: String,
    },
    /// The re-enrolment failed in transport (no answer from the hub).
    EnrollFailed {
        /// Why.
        reason: String,
    },
    /// Bytes of the image being downloaded, from `offset` of the image.
    DownloadChunk {
        /// Offset of `data` in the image.
        offset: u64,
        /// The bytes.
        data: &'a [u8],
    },
    /// The download ended: all bytes sent (`Ok`), or cut short.
    DownloadEnded(Result<(), &'a str>),
    /// Answer to [`Action::ReadSecondary`]: the slot's first `len` bytes (on
    /// a board, a slice of memory-mapped flash).
    SecondaryRead(&'a [u8]),
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open TCP and TLS to the hub presenting [`Device::credential`];
    /// answer [`Event::TransportUp`] or [`Event::TransportDown`].
    Connect,
    /// Write these bytes (one MQTT packet) to the transport.
    Send(Vec<u8>),
    /// Close the transport (after the sends before it).
    CloseTransport,
    /// Apply these keystore writes, in order, durably.
    PersistKeystore(Vec<Write>),
    /// Store the command state durably.
    PersistCommands(CommandLog),
    /// Store this encoded [`OtaRecord`] durably (read it back with
    /// [`OtaRecord::decode`]).
    PersistOta(Vec<u8>),
    /// Generate an ECDSA P-256 key pair for keystore `slot`; answer
    /// [`Event::KeyGenerated`] or [`Event::KeyGenerationFailed`].
    GenerateKey {
        /// The keystore slot it is for.
        slot: u8,
    },
    /// Build a PKCS#10 CSR with subject `CN=common_name` signed with `key`;
    /// with `include_private_key` (fault `leak-key-in-csr`) the key's PKCS#8
    /// DER goes in as an extension. Answer [`Event::CsrBuilt`].
    BuildCsr {
        /// The key to certify.
        key: PrivateKey,
        /// The subject's CN (the device id).
        common_name: String,
        /// Fault `leak-key-in-csr`.
        include_private_key: bool,
    },
    /// POST the CSR to the hub's `/.well-known/est/simplereenroll` over
    /// mTLS with [`Device::credential`]; answer [`Event::Enrolled`],
    /// [`Event::EnrollRefused`] or [`Event::EnrollFailed`].
    PostSimpleReenroll {
        /// The CSR, DER.
        csr_der: Vec<u8>,
    },
    /// Download `path` from the hub (the provisioned host only), from byte
    /// `offset` (`Range`); feed [`Event::DownloadChunk`]s, then
    /// [`Event::DownloadEnded`]. Replaces any download in progress.
    StartDownload {
        /// The URL's path.
        path: String,
        /// First byte wanted.
        offset: u64,
        /// Fault `ota-over-http`: plain HTTP on port 80 instead of HTTPS.
        cleartext: bool,
    },
    /// Stop the download in progress, if any.
    AbortDownload,
    /// Erase the secondary slot.
    EraseSecondary,
    /// Write `data` at `offset` of the secondary slot.
    WriteSecondary {
        /// Offset in the slot.
        offset: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Read the first `len` bytes of the secondary slot; answer
    /// [`Event::SecondaryRead`].
    ReadSecondary {
        /// How many bytes.
        len: u32,
    },
    /// Mark the secondary image for a test boot at the next reset.
    MarkTestBoot,
    /// Confirm the running image (MCUboot `image_ok`).
    ConfirmImage,
    /// Reset the device. Nothing follows; the machine accepts no more input.
    Reset,
    /// One console/RTT log line (the shell adds its prefix).
    Log(String),
}

/// The connection to the hub.
#[derive(Debug)]
enum Link {
    /// No connection; the next attempt is due at `reconnect_at`.
    Offline { reconnect_at: u64 },
    /// [`Action::Connect`] is being carried out.
    Connecting,
    /// Transport up, MQTT session running.
    Up {
        /// Boxed: a session is large, the other states are a word.
        session: Box<Session>,
        next_heartbeat: u64,
    },
}

/// How many reconnect base delays the device waits for a CONNACK before it
/// gives the attempt up: 5 s with the default 1 s base, and as fast as the
/// rest of the reconnect policy when a bench scales the base down.
pub const CONNACK_TIMEOUT_BASES: u64 = 5;

/// The CONNACK timeout for a reconnect policy (see [`CONNACK_TIMEOUT_BASES`]).
pub fn connack_timeout_ms(backoff: &BackoffConfig) -> u64 {
    backoff.base_ms.saturating_mul(CONNACK_TIMEOUT_BASES)
}

/// Most applications kept unreported (the oldest is dropped first).
pub const MAX_UNREPORTED: usize = 32;

/// The device. See the module docs.
#[derive(Debug)]
pub struct Device<R> {
    config: DeviceConfig,
    boot: BootState,
    rng: R,
    rotation: Rotation,
    ota: Ota,
    backoff: Backoff,
    commands: CommandLog,
    applied: AppliedIds,
    telemetry_interval_ms: u64,
    /// Telemetry packet id → seq of the applied-command report it carries.
    report_pids: Vec<(u16, u64)>,
    link: Link,
    /// Connections that reached a session since power-on.
    sessions: u64,
    /// The desired `$version` last applied (a GET's or a patch's); older
    /// or equal ones are stale and ignored.
    desired_version: Option<i64>,
    /// Rotation asked for a reconnect with the new credential.
    reconnect_now: bool,
    /// A reset was asked for (method `reboot`, OTA).
    exit: bool,
    /// [`Action::Reset`] was emitted: the machine is finished.
    dead: bool,
    /// A download was (re)started and no byte of it has arrived yet.
    awaiting_first_chunk: bool,
    /// The checks OTA asked for, waiting for [`Event::SecondaryRead`].
    verify: Option<VerifyRequest>,
    /// The keystore slot a [`Action::GenerateKey`] is for.
    generating_for: Option<u8>,
    out: VecDeque<Action>,
}

impl<R: Rng> Device<R> {
    /// Powers on: recovers the rotation and OTA machines from what was
    /// stored, stores the factory credential into an empty keystore, and
    /// plans the first connection (due at once).
    pub fn power_on(
        config: DeviceConfig,
        boot: BootState,
        stored: Stored,
        factory: Option<FactoryCredential>,
        rng: R,
        now_ms: u64,
    ) -> Device<R> {
        let faults = config.faults;
        let mut out = VecDeque::new();
        let names: Vec<&str> = faults.iter().map(|f| f.name()).collect();
        out.push_back(Action::Log(format!(
            "{} version {} boot #{} (test_boot={}, faults={names:?})",
            config.device_id, boot.version, boot.boot_count, boot.test_boot
        )));
        let mut keystore = stored.keystore;
        if let (true, Some(f)) = (keystore.is_empty(), factory) {
            match store_factory(&mut keystore, f, now_ms) {
                Ok(writes) => {
                    out.push_back(Action::PersistKeystore(writes));
                    out.push_back(Action::Log(
                        "factory provisioning stored the credential".into(),
                    ));
                }
                Err(e) => out.push_back(Action::Log(format!(
                    "factory provisioning failed: keystore: {e:?}"
                ))),
            }
        }
        let (rotation, rot_actions) = Rotation::power_on(keystore, faults);
        let ota_boot = OtaBootInfo {
            version: boot.version.clone(),
            slot: 0,
            security_counter: boot.security_counter,
            test_boot: boot.test_boot,
            reverted: boot.reverted,
        };
        let (ota, ota_actions) = Ota::power_on(ota_boot, stored.ota, config.ota, faults, now_ms);
        let applied = AppliedIds::decode(&stored.commands.applied).unwrap_or_default();
        let mut device = Device {
            telemetry_interval_ms: config.telemetry_interval_ms.max(1),
            backoff: Backoff::new(config.backoff, faults),
            config,
            boot,
            rng,
            rotation,
            ota,
            commands: stored.commands,
            applied,
            report_pids: Vec::new(),
            link: Link::Offline {
                reconnect_at: now_ms,
            },
            sessions: 0,
            desired_version: None,
            reconnect_now: false,
            exit: false,
            dead: false,
            awaiting_first_chunk: false,
            verify: None,
            generating_for: None,
            out,
        };
        device.rotation_actions(rot_actions, now_ms);
        device.ota_actions(ota_actions);
        device.settle(now_ms);
        device
    }

    /// The next action to carry out, oldest first.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.out.pop_front()
    }

    /// When [`Device::handle_timeout`] is next needed (Unix ms), if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.dead {
            return None;
        }
        let link = match &self.link {
            Link::Offline { reconnect_at } => Some(*reconnect_at),
            Link::Connecting => None,
            Link::Up {
                session,
                next_heartbeat,
            } => Some(
                session
                    .next_deadline()
                    .map_or(*next_heartbeat, |d| d.min(*next_heartbeat)),
            ),
        };
        [
            link,
            self.rotation.next_deadline(),
            self.ota.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The credential to present on every TLS connection (MQTT, EST,
    /// download); `None`: the device cannot authenticate.
    pub fn credential(&self) -> Option<&Credential> {
        self.rotation.credential()
    }

    /// True once [`Action::Reset`] was emitted.
    pub fn is_finished(&self) -> bool {
        self.dead
    }

    /// The rotation machine (its keystore, its state).
    pub fn rotation(&self) -> &Rotation {
        &self.rotation
    }

    /// The OTA machine.
    pub fn ota(&self) -> &Ota {
        &self.ota
    }

    /// The command state as last planned.
    pub fn commands(&self) -> &CommandLog {
        &self.commands
    }

    /// The heartbeat period in force, ms.
    pub fn telemetry_interval_ms(&self) -> u64 {
        self.telemetry_interval_ms
    }

    /// Feeds one event.
    pub fn handle(&mut self, now_ms: u64, event: Event<'_>) {
        if self.dead {
            return;
        }
        match event {
            Event::TransportUp => self.transport_up(now_ms),
            Event::TransportDown { reason } => self.transport_down(reason, now_ms),
            Event::Received(bytes) => {
                if let Some(s) = self.session_mut() {
                    s.receive(now_ms, bytes);
                }
            }
            other => self.answer(other, now_ms),
        }
        self.settle(now_ms);
    }

    /// Runs what is due at `now_ms`: the session's keep-alive and timeouts,
    /// the heartbeat, the rotation and OTA timers, the next connection
    /// attempt.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self.dead {
            return;
        }
        if let Link::Up {
            session,
            next_heartbeat,
        } = &mut self.link
        {
            session.poll(now_ms);
            if *next_heartbeat <= now_ms {
                // A beat missed while not ready (subscribing) is skipped, not owed.
                *next_heartbeat = now_ms + self.telemetry_interval_ms;
                if session.is_ready() {
                    let body = format!(
                        r#"{{"uptimeMs":{now_ms},"version":"{}"}}"#,
                        self.boot.version
                    );
                    let _ = session.send_telemetry(body.as_bytes(), &[("kind", "heartbeat")]);
                }
            }
        }
        self.tick(now_ms);
        if let Link::Offline { reconnect_at } = self.link {
            if reconnect_at <= now_ms && !self.exit {
                self.connect(now_ms);
            }
        }
        self.settle(now_ms);
    }

    fn connect(&mut self, now_ms: u64) {
        if self.rotation.credential().is_none() {
            // Nothing to authenticate with: count it as a failed attempt.
            self.log(String::from(
                "connection failed: no credential in the keystore",
            ));
            self.connection_ended(now_ms);
            return;
        }
        self.link = Link::Connecting;
        self.out.push_back(Action::Connect);
    }

    fn transport_up(&mut self, now_ms: u64) {
        if !matches!(self.link, Link::Connecting) {
            return;
        }
        let mut config =
            SessionConfig::new(self.config.device_id.clone(), self.config.hub_host.clone());
        config.connack_timeout_ms = connack_timeout_ms(&self.config.backoff);
        config.max_packet_size = self.config.max_packet_size;
        // The session subscribes to commands when `first` or without the
        // fault; the `no-resubscribe` device believes one subscription, ever,
        // is enough (it remembers it in flash, across reconnects and reboots).
        let first = !self.commands.subscribed_once;
        match Session::new(config, self.config.faults, first, self.applied.clone()) {
            Ok(mut session) => {
                session.set_reconnect(self.sessions > 0);
                self.sessions += 1;
                let _ = session.connect(now_ms);
                self.link = Link::Up {
                    session: Box::new(session),
                    next_heartbeat: now_ms + self.telemetry_interval_ms,
                };
            }
            Err(e) => {
                self.log(format!("connection failed: session: {e}"));
                self.out.push_back(Action::CloseTransport);
                self.connection_ended(now_ms);
            }
        }
    }

    fn transport_down(&mut self, reason: &str, now_ms: u64) {
        if matches!(self.link, Link::Offline { .. }) {
            return;
        }
        // What was queued for the dead transport cannot be sent any more;
        // persist actions and the rest stay.
        self.out
            .retain(|a| !matches!(a, Action::Send(_) | Action::CloseTransport));
        if let Link::Up { session, .. } = &mut self.link {
            // Ids applied while the transport died are still persisted.
            let applied = session.applied().clone();
            for a in session.take_actions() {
                if let crate::session::Action::PersistApplied(bytes) = a {
                    self.persist_applied(bytes, applied.clone());
                }
            }
        }
        self.log(format!("connection failed: {reason}"));
        self.connection_ended(now_ms);
    }

    /// The connection is over (failed, broken or closed): back off, tell the
    /// machines, plan the next attempt.
    fn connection_ended(&mut self, now_ms: u64) {
        self.link = Link::Offline {
            reconnect_at: u64::MAX,
        };
        self.backoff.session_ended(now_ms);
        let a = self
            .rotation
            .handle(crate::rotation::RotationEvent::SessionLost, now_ms);
        self.rotation_actions(a, now_ms);
        let a = self.ota.handle(crate::ota::OtaEvent::SessionLost, now_ms);
        self.ota_actions(a);
        if self.exit {
            return;
        }
        let delay = if core::mem::take(&mut self.reconnect_now) {
            0
        } else {
            self.backoff.next_delay_ms(self.rng.next_u32())
        };
        self.log(format!("reconnecting in {delay} ms"));
        self.link = Link::Offline {
            reconnect_at: now_ms.saturating_add(delay),
        };
    }

    /// After every input: carry the session's actions into the output,
    /// close the session when a reset or a reconnect is due, emit the reset.
    fn settle(&mut self, now_ms: u64) {
        loop {
            self.drain_session(now_ms);
            let wants_close = self.exit || self.reconnect_now;
            match &mut self.link {
                Link::Up { session, .. } if wants_close => {
                    // Politely: DISCONNECT, then the session reports its close.
                    if session.disconnect().is_err() {
                        break;
                    }
                }
                Link::Offline { reconnect_at } if self.reconnect_now && !self.exit => {
                    // The new credential is committed: use it at once.
                    self.reconnect_now = false;
                    *reconnect_at = now_ms;
                    break;
                }
                _ => break,
            }
        }
        if self.exit && !self.dead && !matches!(self.link, Link::Up { .. }) {
            self.dead = true;
            self.out.push_back(Action::Reset);
        }
    }

    /// Carries the session's actions out, in order, until it has none.
    fn drain_session(&mut self, now_ms: u64) {
        loop {
            let Some(session) = self.session_mut() else {
                return;
            };
            let actions = session.take_actions();
            if actions.is_empty() {
                return;
            }
            for action in actions {
                match action {
                    crate::session::Action::Send(bytes) => self.out.push_back(Action::Send(bytes)),
                    crate::session::Action::PersistApplied(bytes) => {
                        if let Some(s) = self.session_mut() {
                            let applied = s.applied().clone();
                            self.persist_applied(bytes, applied);
                        }
                    }
                    crate::session::Action::Event(event) => self.route(event, now_ms),
                    crate::session::Action::Close(reason) => self.session_closed(reason, now_ms),
                }
            }
        }
    }

    fn session_closed(&mut self, reason: crate::session::CloseReason, now_ms: u64) {
        self.log(format!("session closed: {reason}"));
        let link = core::mem::replace(&mut self.link, Link::Connecting);
        if let Link::Up { mut session, .. } = link {
            let applied = session.applied().clone();
            self.applied = applied.clone();
            // What the session still asks after its close: persisting ids.
            for a in session.take_actions() {
                if let crate::session::Action::PersistApplied(bytes) = a {
                    self.persist_applied(bytes, applied.clone());
                }
            }
        }
        self.out.push_back(Action::CloseTransport);
        self.connection_ended(now_ms);
    }

    fn persist_applied(&mut self, bytes: Vec<u8>, applied: AppliedIds) {
        self.commands.applied = bytes;
        self.applied = applied;
        self.out
            .push_back(Action::PersistCommands(self.commands.clone()));
    }

    fn session_mut(&mut self) -> Option<&mut Session> {
        match &mut self.link {
            Link::Up { session, .. } => Some(session),
            _ => None,
        }
    }

    fn log(&mut self, line: String) {
        self.out.push_back(Action::Log(line));
    }
}

/// The keystore writes that make the factory credential the first one.
fn store_factory(
    keystore: &mut Keystore,
    f: FactoryCredential,
    now_ms: u64,
) -> Result<Vec<Write>, KeystoreError> {
    let mut writes = keystore.store_pending_key(f.key)?;
    writes.extend(keystore.store_pending_cert(
        Certificate::new(f.cert_der, f.not_after_ms, now_ms).valid_from(f.not_before_ms),
    )?);
    writes.extend(keystore.commit_pending()?);
    Ok(writes)
}
