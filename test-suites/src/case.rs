//! One running case: its rig (its own emulated topology, or the lab rig),
//! the device (with the run's fault, if any), a capture on the DUT's link,
//! and the evidence the verdict will cite.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hub_fixture::hub::HubFixture;
use hub_fixture::journal::JournalEntry;
use mcuboot_image::{ImageVersion, SignOptions, SigningKey};
use sacbench_capture::{Analysis, Capture, CaptureConfig};
use sacbench_rig::dut::{ContractPart, DutFile, EventName};
use sacbench_rig::emulated::{EmulatedRig, EmulatedRigConfig, GatewayRig, GatewayRigConfig};
use sacbench_rig::{Capability, LogLine, LogSource, Rig};

use crate::case_rig::{CaseRig, LabCase};
use crate::model::Evidence;

/// Upper bound for any single wait of a case (a hung device fails the case,
/// it never hangs the run). Not a synchronisation point.
pub const GUARD: Duration = Duration::from_secs(60);

/// The emulated board's reconnect backoff base: a quarter of the reference
/// firmware's 1 s. The backoff criteria (CD-11, MT-12: growth and jitter)
/// do not depend on the base; the two cases then take seconds, not half a
/// minute of waiting.
pub const RECONNECT_BASE_MS: u64 = 250;

/// The device under test in every case.
pub const DEVICE_ID: &str = "dut-1";

/// A failed expectation: what was expected, what was seen, where to look.
#[derive(Debug, Clone)]
pub struct Fail {
    pub expected: String,
    pub seen: String,
    pub look_at: String,
    /// The bench could not do its part (outcome `error`), rather than the
    /// device doing what the case forbids (`failed`).
    pub bench: bool,
}

impl Fail {
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

/// Setup errors (rig, hub, tools) are failures too, pointing at the setup.
impl<E: std::fmt::Display> From<E> for Fail {
    fn from(e: E) -> Fail {
        Fail::new(
            "the case's rig to come up and run",
            format!("setup error: {e}"),
            "the case's device log and hub journal",
        )
    }
}

pub type CaseResultFut<'a> = Pin<Box<dyn Future<Output = Result<String, Fail>> + 'a>>;
/// A case body: returns what it saw when it passes.
pub type CaseFn = for<'a> fn(&'a mut Case) -> CaseResultFut<'a>;

/// A case of the catalogue.
pub struct CaseDef {
    pub id: &'static str,
    pub slug: &'static str,
    pub title: &'static str,
    /// The pass criterion, as the report states it.
    pub expected: &'static str,
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
    pub out: PathBuf,
    pub fault: Option<String>,
    /// Run on this lab rig (`rig.toml`) instead of emulated topologies.
    pub rig_file: Option<PathBuf>,
    /// Keep the flash and firmware images of passing cases (`--keep-images`);
    /// by default only a failed case keeps them (captures, journals and logs
    /// are always kept).
    pub keep_images: bool,
}

static NEXT_TOPOLOGY: AtomicU8 = AtomicU8::new(1);

/// A case in progress.
pub struct Case {
    pub def_id: &'static str,
    pub rig: CaseRig,
    pub dir: PathBuf,
    /// The device under test.
    pub dut: Arc<DutFile>,
    /// Where sacbench's own executables are.
    pub sacbench_bin: PathBuf,
    capture: Option<Capture>,
    analysis: Option<Analysis>,
    pub evidence: Vec<Evidence>,
    /// Every device line read so far (a lock: cases wait on the console and
    /// the hub at once, through shared references).
    log: std::sync::Mutex<Vec<LogLine>>,
}

/// Signs `payload` as version `major.minor.0` with `counter`.
pub fn sign(payload: &[u8], major: u8, minor: u8, counter: u32, key: &SigningKey) -> Vec<u8> {
    let opts = SignOptions {
        version: ImageVersion {
            major,
            minor,
            revision: 0,
            build_num: 0,
        },
        security_counter: Some(counter),
        header_size: 0x200,
        ..SignOptions::default()
    };
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
        let image = dir.join("rig").join("v1.img");
        let rig = match &opts.rig_file {
            None if def.is_gateway() => {
                let config = GatewayRigConfig {
                    id: NEXT_TOPOLOGY.fetch_add(1, Ordering::SeqCst),
                    dir: dir.join("rig"),
                    bin_dir: opts.sacbench_bin.clone(),
                    faults,
                };
                CaseRig::Gateway(Box::new(GatewayRig::start(config).await.map_err(bench)?))
            }
            Some(rig_file) => {
                let lab = LabCase::start(
                    rig_file,
                    &dir.join("rig"),
                    DEVICE_ID,
                    &faults,
                    hub_mqtt_port,
                )
                .await
                .map_err(bench)?;
                // Every case starts from the rig file's image (an earlier case
                // may have updated the firmware).
                let mut rig = CaseRig::Lab(Box::new(lab));
                if let Some(path) = lab_image(&rig) {
                    std::fs::copy(&path, &image)?;
                    rig.flash(&image).await.map_err(bench)?;
                }
                rig
            }
            None => {
                let config = EmulatedRigConfig {
                    id: NEXT_TOPOLOGY.fetch_add(1, Ordering::SeqCst),
                    dir: dir.join("rig"),
                    dut: opts.dut.clone(),
                    sacbench_bin: opts.sacbench_bin.clone(),
                    device_id: DEVICE_ID.into(),
                    faults,
                    hub_mqtt_port,
                    reconnect_base_ms: Some(RECONNECT_BASE_MS),
                };
                let mut rig =
                    CaseRig::Emulated(Box::new(EmulatedRig::start(config).await.map_err(bench)?));
                // A DUT whose file says how to flash it starts from its own
                // image, v1.0.0, signed with its key.
                if rig.capabilities().has(Capability::Flash) {
                    if let Some(img) = &opts.dut.image {
                        let path = img.payload_path(&opts.sacbench_bin);
                        let payload = std::fs::read(&path)
                            .map_err(|e| bench(format!("image.payload {}: {e}", path.display())))?;
                        let key = dut_signing_key(&opts.dut)?;
                        std::fs::write(&image, sign(&payload, 1, 0, 1, &key))?;
                        rig.flash(&image).await.map_err(bench)?;
                    }
                }
                rig
            }
        };
        let target = rig.capture_target().map_err(bench)?;
        let mut cc = CaptureConfig::new(target.interface, dir.join("capture.pcapng"));
        cc.netns = target.netns;
        let capture = Capture::start(cc).map_err(bench)?;
        Ok(Case {
            def_id: def.id,
            rig,
            dir,
            dut: opts.dut.clone(),
            sacbench_bin: opts.sacbench_bin.clone(),
            capture: Some(capture),
            analysis: None,
            evidence: Vec::new(),
            log: Default::default(),
        })
    }

    pub fn hub(&self) -> &HubFixture {
        self.rig.hub()
    }

    /// The DUT firmware's payload that OTA cases sign new versions of: the
    /// DUT file's `image.payload` (emulated), or the payload of the rig
    /// file's image.
    pub fn firmware_payload(&self) -> Result<Vec<u8>, Fail> {
        match &self.rig {
            CaseRig::Emulated(_) | CaseRig::Gateway(_) => {
                let img = self.dut.image.as_ref().ok_or_else(|| {
                    Fail::bench(format!("{} has no [image]", self.dut.file.display()))
                })?;
                let path = img.payload_path(&self.sacbench_bin);
                std::fs::read(&path)
                    .map_err(|e| Fail::bench(format!("image.payload {}: {e}", path.display())))
            }
            CaseRig::Lab(_) => {
                let path = lab_image(&self.rig).ok_or("the rig file has no [image]")?;
                let bytes = std::fs::read(&path)?;
                let image = mcuboot_image::parse(&bytes).map_err(|e| {
                    format!("{}: not an MCUboot-signed image: {e:?}", path.display())
                })?;
                Ok(image.payload().to_vec())
            }
        }
    }

    /// The key OTA images are signed with: the DUT file's `image.signing_key`
    /// (emulated), or `image.signing_key` of the rig file.
    pub fn signing_key(&self) -> Result<SigningKey, Fail> {
        match &self.rig {
            CaseRig::Emulated(_) | CaseRig::Gateway(_) => dut_signing_key(&self.dut),
            CaseRig::Lab(l) => {
                let path = l
                    .rig
                    .config()
                    .image
                    .as_ref()
                    .and_then(|i| i.signing_key.clone())
                    .ok_or("the rig file has no image.signing_key")?;
                let pem = std::fs::read_to_string(&path)?;
                Ok(SigningKey::from_pkcs8_pem(&pem)
                    .map_err(|e| format!("{}: {e:?}", path.display()))?)
            }
        }
    }

    /// Waits for a console line matching `pred`: on the emulated board any
    /// line since power-on, on a lab rig any line the case has read or reads
    /// within `guard`. `None` if there is none.
    pub async fn wait_console(
        &self,
        guard: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        match &self.rig {
            CaseRig::Emulated(r) => return r.wait_console(guard, pred).await,
            CaseRig::Gateway(g) => return g.wait_console(guard, pred).await,
            CaseRig::Lab(_) => {}
        }
        let deadline = tokio::time::Instant::now() + guard;
        let mut checked = 0;
        loop {
            {
                let mut log = self.log.lock().expect("log lock");
                log.extend(self.rig.take_lab_logs());
                if let Some(hit) = log[checked..]
                    .iter()
                    .find(|l| l.source == LogSource::Console && pred(&l.text))
                {
                    return Some(hit.text.clone());
                }
                checked = log.len();
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || !self.rig.wait_for_lab_logs(left).await {
                return None;
            }
        }
    }

    /// Waits for a journal entry after `after`; failing, says what was awaited.
    pub async fn journal(
        &self,
        after: u64,
        what: &str,
        pred: impl FnMut(&JournalEntry) -> bool,
    ) -> Result<JournalEntry, Fail> {
        self.hub()
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
        let mark = self.hub().journal().len();
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
        Ok(self.analysis.as_ref().expect("analysed"))
    }

    /// The case's rig directory: hub data, key log, images, provisioning.
    pub fn rig_dir(&self) -> PathBuf {
        self.dir.join("rig")
    }

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
            .hub()
            .journal()
            .entries()
            .iter()
            .filter_map(|e| serde_json::to_string(e).ok())
            .map(|l| l + "\n")
            .collect();
        let _ = std::fs::write(self.dir.join("journal.jsonl"), journal);
        let text: String = self
            .logs()
            .await
            .iter()
            .map(|l| format!("{:?}\t{}\n", l.source, l.text))
            .collect();
        let _ = std::fs::write(self.dir.join("device.log"), text);
        let _ = self.rig.power(false).await;
        let _ = self.analysis();
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

/// The image a lab rig's file names (`image.path`), if any.
fn lab_image(rig: &CaseRig) -> Option<PathBuf> {
    match rig {
        CaseRig::Lab(l) => l.rig.configured_image().map(Path::to_path_buf),
        CaseRig::Emulated(_) | CaseRig::Gateway(_) => None,
    }
}
