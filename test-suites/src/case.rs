//! One running case: its rig (its own emulated topology, or the lab rig),
//! the device (with the run's fault, if any), a capture on the DUT's link,
//! and the evidence the verdict will cite.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hub_fixture::hub::DeviceCredentials;
use hub_fixture::journal::JournalEntry;
use mcuboot_image::{SignOptions, SigningKey};
use sacbench_capture::{Analysis, Capture, CaptureConfig};
use sacbench_rig::dut::{ContractPart, DutFile, EventName};
use sacbench_rig::emulated::{EmulatedRig, EmulatedRigConfig, GatewayRig, GatewayRigConfig};
use sacbench_rig::lab::LabRig;
use sacbench_rig::{Capability, LogLine, Node, Rig, RigError, RigNetwork};

use crate::case_hub::{provision_rig_with, CaseHub, HubOptions, HubSide};
use hub_fixture::clock::TimeScale;
use sacbench_provisioning::ClockScale;

/// Real wall-clock Unix ms.
fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
use crate::model::Evidence;
use crate::timeline_record::CaseClock;

/// Upper bound for any single wait of a case (a hung device fails the case,
/// it never hangs the run). Not a synchronisation point.
pub const GUARD: Duration = Duration::from_secs(60);

/// The emulated board's reconnect backoff base: a quarter of the reference
/// firmware's 1 s. The backoff criteria (CD-11, MT-12: growth and jitter)
/// do not depend on the base; the two cases then take seconds, not half a
/// minute of waiting.
pub const RECONNECT_BASE_MS: u64 = 250;

/// How many times as fast as real time the device's clock (and the case
/// hub's) runs in a time-scaled case: a device-minute is a real second. Not
/// more: the latency of a real connection attempt (a TLS handshake, some
/// milliseconds) is multiplied by it in device time, and a reconnect storm
/// (an attempt every 100 ms of device time) must still show as one.
pub const TIME_SCALE: u32 = 60;

/// How a case runs the device's clock ([`CaseDef::clock`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockNeed {
    /// Real time.
    Real,
    /// At `rate` (usually [`TIME_SCALE`]) when the DUT file declares
    /// `clock_scale`, real time otherwise (the case judges each as it can).
    ScaledIfOffered {
        /// How many times as fast as real time.
        rate: u32,
    },
    /// At [`TIME_SCALE`], the hub re-enrolling device certificates (EST)
    /// valid for `cert_lifetime_s` seconds of the scaled clock; not
    /// applicable to a device without `clock_scale`.
    Scaled {
        /// Validity of the device certificates the case's hub issues, s.
        cert_lifetime_s: u64,
    },
}

impl ClockNeed {
    /// Why a case with this clock cannot judge `dut`, if it cannot.
    pub fn not_applicable(&self, dut: &DutFile) -> Option<String> {
        match self {
            ClockNeed::Scaled { .. } if !dut.clock_scale => Some(format!(
                "the case runs the device's clock {TIME_SCALE}× fast (certificate lifetimes of a few device-minutes, renewal on the device's own clock), which needs a device that honours device.json's `clock`; {} does not declare it (its DUT file has no `clock_scale = true`)",
                dut.name
            )),
            _ => None,
        }
    }

    /// The scale this case runs `dut`'s clock at, if not real time.
    pub fn scale_for(&self, dut: &DutFile) -> Option<u32> {
        match self {
            ClockNeed::Real => None,
            ClockNeed::ScaledIfOffered { rate } => dut.clock_scale.then_some(*rate),
            ClockNeed::Scaled { .. } => dut.clock_scale.then_some(TIME_SCALE),
        }
    }
}

/// The device under test in every case.
pub const DEVICE_ID: &str = sacbench_rig::DEVICE_ID;

/// A failed expectation: what was expected, what was seen, where to look.
#[derive(Debug, Clone)]
pub struct Fail {
    /// What the case expected, in the report's words.
    pub expected: String,
    /// What the bench saw instead.
    pub seen: String,
    /// Where in the case's evidence to look (capture, journal, device log).
    pub look_at: String,
    /// The bench could not do its part (outcome `error`), rather than the
    /// device doing what the case forbids (`failed`).
    pub bench: bool,
}

impl Fail {
    /// A failure of the device (outcome `failed`): `expected`, `seen`, where to look.
    pub fn new(
        expected: impl Into<String>,
        seen: impl Into<String>,
        look_at: impl Into<String>,
    ) -> Fail {
        Fail {
            expected: expected.into(),
            seen: seen.into(),
            look_at: look_at.into(),
            bench: false,
        }
    }

    /// The bench (or rig) could not do its part: an `error`, not the device's fault.
    pub fn bench(what: impl Into<String>) -> Fail {
        Fail {
            bench: true,
            ..Fail::new(
                "the bench to do its part of the case",
                what,
                "the bench's setup (the message names it)",
            )
        }
    }
}

/// Any other error a case meets (rig, hub, tools, files) is the bench's:
/// an `error` outcome, never the device's failure. What the device did
/// wrong is always a [`Fail::new`] naming what was expected of it.
impl<E: std::fmt::Display> From<E> for Fail {
    fn from(e: E) -> Fail {
        Fail {
            bench: true,
            ..Fail::new(
                "the case's rig to come up and run",
                format!("setup error: {e}"),
                "the case's device log and hub journal",
            )
        }
    }
}

/// The future a case body returns: what it saw when it passes, or why it failed.
pub type CaseResultFut<'a> = Pin<Box<dyn Future<Output = Result<String, Fail>> + 'a>>;
/// A case body: returns what it saw when it passes.
pub type CaseFn = for<'a> fn(&'a mut Case) -> CaseResultFut<'a>;

/// A case of the catalogue.
pub struct CaseDef {
    /// The case id from `docs/CASES.md`, e.g. `NI-01`; its prefix is the group.
    pub id: &'static str,
    /// The snake_case suffix of the test name, e.g. `tcp_scan`.
    pub slug: &'static str,
    /// One-line title, as the report shows it.
    pub title: &'static str,
    /// The pass criterion, as the report states it.
    pub expected: &'static str,
    /// Rig capabilities the case needs; without one the case is ignored,
    /// naming it.
    pub needs: &'static [Capability],
    /// What the case needs of the DUT; without it the case is `not_applicable`.
    pub dut: DutNeeds,
    /// A self-test of the fixture (the device's fault does not apply).
    pub self_test: bool,
    /// Faults this case always switches on (a device variant it needs).
    pub extra_faults: &'static [&'static str],
    /// Programs the case runs on the bench (checked before any case runs).
    pub tools: &'static [&'static str],
    /// Move the fixture hub's MQTT listener to this port: 8883, where the
    /// device dials, is then the case's (its own deliberately bad hub, or
    /// nothing at all).
    pub hub_mqtt_port: Option<u16>,
    /// How the case runs the device's clock (and its hub's).
    pub clock: ClockNeed,
    /// A long case (a full port scan, a slow link, many waits on the
    /// device's own timers): it starts before the others, so it does not
    /// start last and hold up the end of a run (the run then takes about
    /// its total work over the parallel cases, not that plus a long case).
    pub long: bool,
    /// The case body.
    pub run: CaseFn,
}

/// What a case needs of the device under test.
#[derive(Debug, Clone, Copy)]
pub struct DutNeeds {
    /// Parts of the device contract it exercises.
    pub implements: &'static [ContractPart],
    /// Console events (from the DUT file) it waits on.
    pub events: &'static [EventName],
    /// It boots firmware variants or cuts power at a flash write: only
    /// firmware on sacbench's native emulated board can be varied so.
    pub native_board: bool,
}

impl DutNeeds {
    /// Needs nothing of the device: the case applies to every DUT.
    pub const NONE: DutNeeds = DutNeeds {
        implements: &[],
        events: &[],
        native_board: false,
    };

    /// Why `dut` cannot be judged by a case with these needs, if it cannot.
    pub fn not_applicable(&self, dut: &DutFile) -> Option<String> {
        if let Some(p) = self.implements.iter().find(|p| !dut.implements(**p)) {
            return Some(format!(
                "{} does not implement `{p}` of the device contract (its DUT file's `implements`)",
                dut.name
            ));
        }
        if let Some(e) = self.events.iter().find(|e| dut.event(**e).is_none()) {
            return Some(format!(
                "the case waits on the device's `{e}` console event, which its DUT file does not declare ([events])"
            ));
        }
        let native = dut
            .emulated
            .as_ref()
            .is_some_and(|e| e.board == Some(sacbench_rig::dut::Board::SacbenchNative));
        if self.native_board && !native {
            return Some(format!(
                "the case boots firmware variants or cuts power at a flash write, which needs firmware on sacbench's native emulated board; {} is not (its DUT file has no `board = \"sacbench-native\"`)",
                dut.name
            ));
        }
        None
    }
}

impl CaseDef {
    /// The case's group in lower case, from its id: `ni` for `NI-01`.
    pub fn group(&self) -> String {
        self.id.split('-').next().unwrap_or("").to_ascii_lowercase()
    }

    /// A case of the field gateway (GW): the gateway is the DUT.
    pub fn is_gateway(&self) -> bool {
        self.id.starts_with("GW-")
    }

    /// The test name: `ni::NI-01_tcp_scan`.
    pub fn name(&self) -> String {
        format!("{}::{}_{}", self.group(), self.id, self.slug)
    }
}

/// Options of the whole run (from the environment; see `main.rs`).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The device under test (`--dut`; the reference device's by default).
    pub dut: Arc<DutFile>,
    /// Where sacbench's own executables are (`device-native`, `gateway`,
    /// `modbus-leaf`): the DUT file's `{sacbench_bin}`.
    pub sacbench_bin: PathBuf,
    /// The run directory (`SACBENCH_OUT`): each case writes under
    /// `cases/<id>/`, the reports at its top.
    pub out: PathBuf,
    /// The run's fault switch (`SACBENCH_FAULT`), if any: switched on in
    /// the device for device cases, in the gateway for GW cases, never in
    /// self-tests.
    pub fault: Option<String>,
    /// Run on this lab rig (`rig.toml`) instead of emulated topologies.
    pub rig_file: Option<PathBuf>,
    /// The lab rig as checked, on its labgrid place when it names one
    /// (the place's console, power and link); each case opens it anew.
    pub lab_config: Option<sacbench_rig::lab::RigConfig>,
    /// Keep the flash and firmware images of passing cases (`--keep-images`);
    /// by default only a failed case keeps them (captures, journals and logs
    /// are always kept).
    pub keep_images: bool,
}

static NEXT_TOPOLOGY: AtomicU8 = AtomicU8::new(1);

/// A case in progress.
pub struct Case {
    /// The DUT's second board, if the case added one
    /// ([`Case::add_second_board`]); dropped first, with the rig.
    pub(crate) second: Option<crate::case_board::BoardB>,
    /// The id of the case being run ([`CaseDef::id`]).
    pub def_id: &'static str,
    /// The rig; dropped before the hub (fields drop in order), so the
    /// device is off before its hub goes.
    pub rig: Box<dyn Rig>,
    /// The case's fixture hub.
    pub hub: CaseHub,
    /// The identities the hub issued for the DUT, one per
    /// [`Rig::device_ids`] (the gateway's leaves).
    pub identities: Vec<DeviceCredentials>,
    /// The case network's addresses.
    pub net: RigNetwork,
    /// What the DUT was provisioned with, one record per identity.
    pub records: Vec<sacbench_provisioning::Provisioning>,
    /// The case's directory, `<out>/cases/<id>/`, emptied at start: its
    /// capture, hub journal, device log and rig directory.
    pub dir: PathBuf,
    /// The device under test.
    pub dut: Arc<DutFile>,
    /// Where sacbench's own executables are.
    pub sacbench_bin: PathBuf,
    capture: Option<Capture>,
    analysis: Option<Analysis>,
    /// What the verdict cites, in the order the case noted it.
    pub evidence: Vec<Evidence>,
    /// Every device line read so far (a lock: cases wait on the console and
    /// the hub at once, through shared references).
    log: std::sync::Mutex<Vec<LogLine>>,
    /// The timeline's clock and the rig actions recorded on it.
    pub(crate) clock: CaseClock,
    /// The time scale the device's clock and the hub's run at, if not real time.
    pub time_scale: Option<hub_fixture::clock::TimeScale>,
}

/// Signs `payload` as version `major.minor.0` with `counter`.
pub fn sign(payload: &[u8], major: u8, minor: u8, counter: u32, key: &SigningKey) -> Vec<u8> {
    let opts = SignOptions::versioned(major, minor, counter);
    mcuboot_image::sign(payload, key, &opts).expect("payload fits")
}

impl Case {
    /// Builds the case's rig and starts the capture; the device is flashed
    /// with its image v1.0.0 (where the DUT file says how) but not powered.
    pub async fn start(
        def: &CaseDef,
        opts: &RunOptions,
        extra_faults: &[&str],
        hub_mqtt_port: Option<u16>,
    ) -> Result<Case, Fail> {
        let mut clock = CaseClock::start();
        let dir = opts.out.join("cases").join(def.id);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut faults: Vec<String> = extra_faults.iter().map(|f| f.to_string()).collect();
        // The run's fault goes to what it is a fault of: the gateway's to the
        // GW cases, the device's to the others.
        if let (false, Some(f)) = (def.self_test, &opts.fault) {
            if is_gateway_fault(f) == def.is_gateway() {
                faults.push(f.clone());
            }
        }
        let rig_dir = dir.join("rig");
        let image = rig_dir.join("v1.img");
        let rig: Box<dyn Rig> = match &opts.rig_file {
            None if def.is_gateway() => Box::new(
                GatewayRig::start(GatewayRigConfig {
                    id: NEXT_TOPOLOGY.fetch_add(1, Ordering::SeqCst),
                    dir: rig_dir.clone(),
                    bin_dir: opts.sacbench_bin.clone(),
                    faults: faults.clone(),
                })
                .await
                .map_err(bench)?,
            ),
            Some(rig_file) => Box::new(
                match &opts.lab_config {
                    Some(c) => LabRig::from_config(c.clone()),
                    None => LabRig::open(rig_file),
                }
                .map_err(bench)?,
            ),
            None => Box::new(
                EmulatedRig::start(EmulatedRigConfig {
                    id: NEXT_TOPOLOGY.fetch_add(1, Ordering::SeqCst),
                    dir: rig_dir.clone(),
                    dut: opts.dut.clone(),
                    sacbench_bin: opts.sacbench_bin.clone(),
                    device_id: DEVICE_ID.into(),
                    faults: faults.clone(),
                })
                .await
                .map_err(bench)?,
            ),
        };
        let mut rig = clock.wrap(rig);
        let signing_key = match opts.rig_file {
            None => sacbench_rig::image_public_key(&opts.dut).map_err(bench)?,
            Some(_) => None,
        };
        // A time-scaled case: the device's clock and the hub's run in step
        // from now, so both judge certificate validity by the same time.
        let time_scale = def.clock.scale_for(&opts.dut).map(|rate| TimeScale {
            origin_ms: now_unix_ms(),
            rate,
        });
        let hub_options = HubOptions {
            mqtt_port: hub_mqtt_port,
            time_scale,
            est_cert_lifetime: match def.clock {
                ClockNeed::Scaled { cert_lifetime_s } if time_scale.is_some() => {
                    Some(Duration::from_secs(cert_lifetime_s))
                }
                _ => None,
            },
        };
        let HubSide {
            hub,
            identities,
            net,
            records,
        } = provision_rig_with(rig.as_mut(), &rig_dir, hub_options, |record| {
            record.device.faults = faults.clone();
            record.device.clock = time_scale.map(|t| ClockScale {
                scale: t.rate,
                origin_ms: t.origin_ms,
            });
            if opts.rig_file.is_none() {
                if time_scale.is_none() {
                    // The emulated board runs at the bench's time scale (a
                    // time-scaled one keeps its own policy, on its fast clock).
                    record.device.reconnect_base_ms = Some(RECONNECT_BASE_MS);
                }
                record.image_signing_key_pem = signing_key.clone();
            }
        })
        .await
        .map_err(bench)?;
        clock.anchor_journal(hub.journal().mono_us());
        if let Some(configured) = rig.configured_image() {
            // Every lab case starts from the rig file's image (an earlier
            // case may have updated the firmware).
            std::fs::copy(&configured.path, &image)?;
            rig.flash(&image).await.map_err(bench)?;
        } else if rig.capabilities().has(Capability::Flash) {
            // A DUT whose file says how to flash it starts from its own
            // image, v1.0.0, signed with its key.
            if let Some(img) = &opts.dut.image {
                let path = img.payload_path(&opts.sacbench_bin);
                let payload = std::fs::read(&path)
                    .map_err(|e| bench(format!("image.payload {}: {e}", path.display())))?;
                let key = dut_signing_key(&opts.dut)?;
                std::fs::write(&image, sign(&payload, 1, 0, 1, &key))?;
                rig.flash(&image).await.map_err(bench)?;
            }
        }
        let target = rig.capture_target().map_err(bench)?;
        let mut cc = CaptureConfig::new(target.interface, dir.join("capture.pcapng"));
        cc.netns = target.netns;
        let capture = Capture::start(cc).map_err(bench)?;
        Ok(Case {
            second: None,
            def_id: def.id,
            rig,
            hub,
            identities,
            net,
            records,
            dir,
            dut: opts.dut.clone(),
            sacbench_bin: opts.sacbench_bin.clone(),
            capture: Some(capture),
            analysis: None,
            evidence: Vec::new(),
            log: Default::default(),
            clock,
            time_scale,
        })
    }

    /// The identity the DUT was provisioned with for this case (for the
    /// gateway: its first leaf's).
    pub fn credentials(&self) -> &DeviceCredentials {
        &self.identities[0]
    }

    /// Runs `f` on a thread in the rig's namespace of `node`.
    pub fn in_ns<T: Send + 'static>(
        &self,
        node: Node,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, RigError> {
        sacbench_rig::in_netns(self.rig.netns(node), f)
    }

    /// The DUT firmware's payload that OTA cases sign new versions of: the
    /// payload of the rig file's image, or the DUT file's `image.payload`.
    pub fn firmware_payload(&self) -> Result<Vec<u8>, Fail> {
        if let Some(configured) = self.rig.configured_image() {
            let path = configured.path;
            let bytes = std::fs::read(&path)?;
            let image = mcuboot_image::parse(&bytes)
                .map_err(|e| format!("{}: not an MCUboot-signed image: {e:?}", path.display()))?;
            return Ok(image.payload().to_vec());
        }
        let img =
            self.dut.image.as_ref().ok_or_else(|| {
                Fail::bench(format!("{} has no [image]", self.dut.file.display()))
            })?;
        let path = img.payload_path(&self.sacbench_bin);
        std::fs::read(&path)
            .map_err(|e| Fail::bench(format!("image.payload {}: {e}", path.display())))
    }

    /// The key OTA images are signed with: `image.signing_key` of the rig
    /// file, or the DUT file's.
    pub fn signing_key(&self) -> Result<SigningKey, Fail> {
        let Some(configured) = self.rig.configured_image() else {
            return dut_signing_key(&self.dut);
        };
        let path = configured
            .signing_key
            .ok_or("the rig file has no image.signing_key")?;
        let pem = std::fs::read_to_string(&path)?;
        Ok(SigningKey::from_pkcs8_pem(&pem).map_err(|e| format!("{}: {e:?}", path.display()))?)
    }

    /// Waits for a console line matching `pred` (any line since the rig came
    /// up); `None` within `guard`.
    pub async fn wait_console(
        &self,
        guard: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        sacbench_rig::wait_console(self.rig.as_ref(), guard, pred).await
    }

    /// Waits for a journal entry after `after`; failing, says what was awaited.
    pub async fn journal(
        &self,
        after: u64,
        what: &str,
        pred: impl FnMut(&JournalEntry) -> bool,
    ) -> Result<JournalEntry, Fail> {
        self.hub
            .journal()
            .wait_for(after, GUARD, pred)
            .await
            .ok_or_else(|| {
                Fail::new(
                    what.to_string(),
                    format!("no such hub journal entry within {GUARD:?}"),
                    "journal.jsonl of the case",
                )
            })
    }

    /// Powers the device on and waits for its first hub session.
    pub async fn boot(&mut self) -> Result<JournalEntry, Fail> {
        let mark = self.hub.journal().len();
        self.rig.power(true).await?;
        self.journal(mark, "the device to connect to the hub", |e| {
            matches!(e.event, hub_fixture::journal::Event::Connected { .. })
        })
        .await
    }

    /// Waits (after journal entry `after`) until the device's session does
    /// application work the hub sees: its reported properties if it
    /// implements the twin, else its first subscription or telemetry.
    pub async fn session_active(&self, after: u64) -> Result<JournalEntry, Fail> {
        use hub_fixture::journal::Event;
        if self.dut.implements(ContractPart::Twin) {
            self.journal(after, "the device to report its properties", |e| {
                matches!(e.event, Event::TwinReported { .. })
            })
            .await
        } else {
            self.journal(after, "the device to subscribe or send telemetry", |e| {
                matches!(e.event, Event::Subscribed { .. } | Event::Telemetry { .. })
            })
            .await
        }
    }

    /// Waits for a hub session of an already powered device.
    pub async fn boot_wait(&self) -> Result<JournalEntry, Fail> {
        self.journal(0, "the device to connect to the hub", |e| {
            matches!(e.event, hub_fixture::journal::Event::Connected { .. })
        })
        .await
    }

    /// Stops the capture (embedding the hub's TLS key log) and analyses it.
    pub fn analysis(&mut self) -> Result<&Analysis, Fail> {
        if let Some(capture) = self.capture.take() {
            let key_log = std::fs::read(self.rig_dir().join("tls-keys.log")).unwrap_or_default();
            capture.stop(Some(&key_log))?;
            self.analysis = Some(sacbench_capture::analyze_file(
                self.dir.join("capture.pcapng"),
            )?);
        }
        // A capture that failed to stop or to read is gone: say so again.
        self.analysis.as_ref().ok_or_else(|| {
            Fail::bench("the case's capture could not be stopped or analysed (see its first error)")
        })
    }

    /// The case's rig directory: hub data, key log, images, provisioning.
    pub fn rig_dir(&self) -> PathBuf {
        self.dir.join("rig")
    }

    /// Adds `e` to the evidence the verdict cites.
    pub fn note(&mut self, e: Evidence) {
        self.evidence.push(e);
    }

    /// Device log lines (console and RTT) since power-on, all of them.
    pub async fn logs(&mut self) -> Vec<LogLine> {
        let new = self.rig.logs().await.unwrap_or_default();
        let mut log = self.log.lock().expect("log lock");
        log.extend(new);
        log.clone()
    }

    /// Writes the hub journal and the device log next to the capture.
    pub async fn save_artifacts(&mut self) {
        // Every entry of the case, so `seq` numbers in the verdict are all there.
        let journal: String = self
            .hub
            .journal()
            .entries()
            .iter()
            .filter_map(|e| serde_json::to_string(e).ok())
            .map(|l| l + "\n")
            .collect();
        // The hub's own file when there is one: it holds the journal of
        // every run of the hub in the case (a restart starts a new one).
        let file = self.hub.data_dir().join("journal.jsonl");
        if std::fs::copy(&file, self.dir.join("journal.jsonl")).is_err() {
            let _ = std::fs::write(self.dir.join("journal.jsonl"), journal);
        }
        let lines = self.logs().await;
        let text: String = lines
            .iter()
            .map(|l| format!("{:?}\t{}\n", l.source, l.text))
            .collect();
        let _ = std::fs::write(self.dir.join("device.log"), text);
        self.save_second_board().await;
        let _ = self.rig.power(false).await;
        let _ = self.analysis();
        crate::timeline_record::write_timeline(self, &lines);
    }
}

/// A hub journal event as the journal writes it (JSON), for verdict texts:
/// what `jq` shows in `journal.jsonl`, not Rust's Debug form.
pub fn event_text(e: &hub_fixture::journal::Event) -> String {
    serde_json::to_string(e).unwrap_or_else(|_| e.kind())
}

/// A rig or setup error: the bench's, never the device's.
fn bench(e: impl std::fmt::Display) -> Fail {
    Fail::bench(format!("setup error: {e}"))
}

/// The DUT file's image-signing key.
pub fn dut_signing_key(dut: &DutFile) -> Result<SigningKey, Fail> {
    let img = dut
        .image
        .as_ref()
        .ok_or_else(|| Fail::bench(format!("{} has no [image]", dut.file.display())))?;
    img.signing_key().map_err(Fail::bench)
}

/// The reference device's DUT file, the default `--dut`.
pub fn reference_dut_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../firmware/device-native/dut.toml")
}

/// Whether `name` is a fault switch of the reference gateway (not of the device).
pub fn is_gateway_fault(name: &str) -> bool {
    field_gateway::FAULTS.iter().any(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::Fail;

    #[test]
    fn an_error_met_with_question_mark_is_the_benchs_not_the_devices() {
        fn rig_step() -> Result<(), Fail> {
            Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "address in use",
            ))?;
            Ok(())
        }
        let f = rig_step().unwrap_err();
        assert!(f.bench, "an `error` outcome, not `failed`");
        assert!(f.seen.contains("address in use"), "{}", f.seen);
        assert!(!Fail::new("x", "y", "z").bench);
    }
}
