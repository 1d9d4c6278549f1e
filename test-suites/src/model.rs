//! The report's data model: what `report.json` holds (schema
//! `sacbench-report/2`, documented in `test-suites/REPORT.md`), and what
//! the JUnit and HTML writers render. Stable: fields are only ever added.

use serde::{Deserialize, Serialize};

/// The `schema` value this version of the model writes; fields are only added under it.
pub const SCHEMA: &str = "sacbench-report/2";

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunReport {
    /// The report format, [`SCHEMA`].
    pub schema: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// When the run finished, RFC 3339 UTC.
    pub finished_at: String,
    /// The rig the run used.
    pub rig: RigInfo,
    /// The device under test (its DUT file).
    #[serde(default)]
    pub dut: Option<DutInfo>,
    /// The fault switched on in the device under test, if any (fault runs).
    pub fault: Option<String>,
    /// The commit of sacbench the run is of (`SACBENCH_COMMIT`, or `git
    /// rev-parse HEAD` of its source tree); absent when unknown. Shards of
    /// one run share it (`cargo xtask report --merge` checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The signal that interrupted the run (`"SIGINT"`, `"SIGTERM"`), if one
    /// did: the cases that had not finished are `error`, those not started
    /// are absent.
    #[serde(default)]
    pub interrupted: Option<String>,
    /// Counts of `cases` by outcome; always consistent with them.
    pub summary: Summary,
    /// One entry per case, in run order; ids are unique.
    pub cases: Vec<CaseResult>,
    /// The requirements of the mapped standards this bench cannot test
    /// ("needs documentation review"), from `test-suites/standards/mapping.csv`;
    /// empty in reports written before the mapping existed.
    #[serde(default)]
    pub documentation_review: Vec<StandardRef>,
}

/// A requirement of a standard, as the standards mapping
/// (`test-suites/standards/mapping.csv`, see `docs/STANDARDS.md`) names it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StandardRef {
    /// `ETSI EN 303 645`, `ETSI TS 103 701`, `EN 18031-1` or `CRA`.
    pub standard: String,
    /// The requirement's id as the standard spells it: `5.5-1`, `5.5-1-2a`,
    /// `SCM-2`, `Annex I Part I (2)(e)`.
    pub requirement: String,
    /// A short paraphrase of the requirement.
    pub title: String,
    /// The document and clause the mapping line comes from.
    pub source: String,
    /// A limit of the evidence, or why the requirement needs documentation review.
    #[serde(default)]
    pub note: String,
}

/// The rig a run used.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RigInfo {
    /// `emulated` or `lab`.
    pub kind: String,
    /// The rig's name as the rig gives it (a lab rig's `name` in `rig.toml`).
    pub name: String,
}

/// The device under test, as its DUT file names it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DutInfo {
    /// The DUT file's `name`.
    pub name: String,
    /// The DUT file's path.
    pub file: String,
    /// The contract parts it implements.
    pub implements: Vec<String>,
    /// SHA-256 of the DUT file's bytes, hex: which device description the
    /// run used, wherever the file was (shards of one run share it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Counts by outcome of some cases.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tally {
    /// Cases counted: the sum of the five outcome counts.
    pub total: usize,
    /// Cases with outcome `passed`.
    pub passed: usize,
    /// Cases with outcome `failed`.
    pub failed: usize,
    /// Cases with outcome `error`.
    pub error: usize,
    /// Cases with outcome `not_applicable`.
    pub not_applicable: usize,
    /// Cases with outcome `ignored`.
    pub ignored: usize,
}

impl Tally {
    /// Counts one more case with `outcome`.
    pub fn add(&mut self, outcome: Outcome) {
        self.total += 1;
        match outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Error => self.error += 1,
            Outcome::NotApplicable => self.not_applicable += 1,
            Outcome::Ignored => self.ignored += 1,
        }
    }
}

/// Whose verdict a case gives.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    /// A verdict about the device under test.
    #[default]
    Device,
    /// A self-test of the fixture hub: passes whatever the device does.
    SelfTest,
}

/// Counts of a run's cases by outcome, over all of them and split by
/// [`CaseKind`]; `total = passed + failed + error + not_applicable + ignored`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Summary {
    /// Number of cases in the report.
    pub total: usize,
    /// Cases with outcome `passed`.
    pub passed: usize,
    /// Cases with outcome `failed`.
    pub failed: usize,
    /// The bench or rig could not do its part.
    #[serde(default)]
    pub error: usize,
    /// The case does not apply to this device.
    #[serde(default)]
    pub not_applicable: usize,
    /// Cases with outcome `ignored`: the rig lacked a capability the case needs.
    pub ignored: usize,
    /// The device's verdicts only (`kind: device`).
    #[serde(default)]
    pub device: Tally,
    /// The fixture's self-tests only (`kind: self_test`).
    #[serde(default)]
    pub self_test: Tally,
}

/// A case's verdict, as `report.json` spells it (snake_case).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The device did what the case requires.
    Passed,
    /// The device did what the case forbids, with evidence.
    Failed,
    /// The bench or the rig could not do its part (a tool, a namespace, the
    /// hub, a relay): says what to fix; nothing is said of the device.
    Error,
    /// The case does not apply to this device (a contract part it does not
    /// implement, an event its DUT file does not declare), with the reason.
    NotApplicable,
    /// The rig lacks a capability the case needs, with the reason.
    Ignored,
}

/// One case's verdict and the evidence it rests on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CaseResult {
    /// Stable id from docs/CASES.md, e.g. `NI-01`.
    pub id: String,
    /// `device` (a verdict about the DUT) or `self_test` (the fixture's).
    #[serde(default)]
    pub kind: CaseKind,
    /// Test name, e.g. `ni::NI-01_tcp_scan`.
    pub name: String,
    /// One-line title of the case.
    pub title: String,
    /// The verdict.
    pub outcome: Outcome,
    /// Wall-clock time of the case, set-up included, in milliseconds.
    pub duration_ms: u64,
    /// What the case expected.
    pub expected: String,
    /// What it saw (for a failure: what went wrong).
    pub seen: String,
    /// Where to look first.
    pub look_at: String,
    /// The facts the verdict rests on; may be empty.
    pub evidence: Vec<Evidence>,
    /// Files of this case, relative to the report directory.
    pub artifacts: Artifacts,
    /// The requirements this case gives evidence for (none for self-tests);
    /// empty in reports written before the standards mapping existed.
    #[serde(default)]
    pub standards: Vec<StandardRef>,
}

/// A case's files, each relative to the report directory; `None` when the
/// case produced no such file (e.g. an ignored case).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Artifacts {
    /// pcapng with the TLS key log embedded.
    pub capture: Option<String>,
    /// Hub journal, JSON lines.
    pub journal: Option<String>,
    /// Device console and RTT lines.
    pub device_log: Option<String>,
    /// The case's timeline (`timeline.json`: hub, network, rig and device
    /// events on one axis), what the page draws.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<String>,
}

/// Where a fact came from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EvidenceKind {
    /// Frames of the case's capture (numbers as tshark numbers them).
    Frames,
    /// Entries of the hub journal (by `seq`).
    Journal,
    /// Lines of the device log.
    Log,
    /// A scan's result.
    Scan,
    /// The case's own remark (a setting, something it observed directly).
    Note,
}

/// One fact a verdict rests on: its source, in words, and the numbers it cites.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Evidence {
    /// Where the fact came from; gives `refs` their meaning.
    pub kind: EvidenceKind,
    /// The fact, in words.
    pub text: String,
    /// Frame numbers or journal sequence numbers this rests on.
    #[serde(default)]
    pub refs: Vec<u64>,
}

impl Evidence {
    /// A fact from the capture, citing its frame numbers (tshark's, from 1).
    pub fn frames(text: impl Into<String>, frames: impl IntoIterator<Item = u64>) -> Self {
        Evidence {
            kind: EvidenceKind::Frames,
            text: text.into(),
            refs: frames.into_iter().collect(),
        }
    }
    /// A fact from the hub journal, citing entries by `seq`.
    pub fn journal(text: impl Into<String>, seqs: impl IntoIterator<Item = u64>) -> Self {
        Evidence {
            kind: EvidenceKind::Journal,
            text: text.into(),
            refs: seqs.into_iter().collect(),
        }
    }
    /// A fact from the device log; the text quotes the line.
    pub fn log(text: impl Into<String>) -> Self {
        Evidence {
            kind: EvidenceKind::Log,
            text: text.into(),
            refs: Vec::new(),
        }
    }
    /// A port scan's or probe's result.
    pub fn scan(text: impl Into<String>) -> Self {
        Evidence {
            kind: EvidenceKind::Scan,
            text: text.into(),
            refs: Vec::new(),
        }
    }
    /// A remark of the case itself.
    pub fn note(text: impl Into<String>) -> Self {
        Evidence {
            kind: EvidenceKind::Note,
            text: text.into(),
            refs: Vec::new(),
        }
    }
}
