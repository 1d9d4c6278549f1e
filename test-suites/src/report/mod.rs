//! The reports of a run directory: `report.json` (the stable, documented
//! schema of `test-suites/REPORT.md`), `junit.xml` for CI systems and
//! `index.html`, one self-contained page for people.
//!
//! `report.json` is the source of truth: the JUnit, HTML and standards CSV
//! files are pure renderings of it, so [`regenerate`] can rebuild the page
//! and `standards.csv` of any old run (e.g. after the page's layout
//! improved) from its JSON alone, and the timelines its cases wrote beside
//! it (`artifacts.timeline`).

mod assemble;
mod html;
mod junit;
mod merge;
mod standards;
mod summary;
pub mod timeline;
pub mod timeline_build;
pub mod timeline_svg;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::model::{
    CaseKind, CaseResult, Evidence, EvidenceKind, Outcome, RunReport, Summary, SCHEMA,
};

pub use assemble::{assemble, catalogue_order, now_rfc3339, read_results};
pub use html::{render_html, render_html_with};
pub use junit::render_junit;
pub use merge::{merge, merge_dirs};
pub use standards::{render_standards_csv, NEEDS_REVIEW, STANDARDS_CSV};
pub use summary::summarise;

/// File name of the machine-readable report inside a run directory.
pub const REPORT_JSON: &str = "report.json";
/// File name of the JUnit XML rendering.
pub const JUNIT_XML: &str = "junit.xml";
/// File name of the HTML page.
pub const INDEX_HTML: &str = "index.html";

/// The schema family; the number after the slash is the major version,
/// bumped only by an incompatible change (fields are only ever added).
const SCHEMA_FAMILY: &str = "sacbench-report/";

/// Writes `report.json`, `junit.xml`, `index.html` and `standards.csv` into
/// `dir` (created if missing).
///
/// Refuses a report that contradicts itself (wrong schema string, a
/// `summary` that does not match its cases, two cases with one id): such a
/// report would mislead whoever reads it, and the mistake is the
/// producer's, so it is reported to the producer rather than written.
pub fn write_run(dir: &Path, report: &RunReport) -> Result<()> {
    validate(report)?;
    fs::create_dir_all(dir)
        .with_context(|| format!("creating the run directory {}", dir.display()))?;

    let mut json = serde_json::to_string_pretty(report).context("serialising report.json")?;
    json.push('\n');
    write_atomically(&dir.join(REPORT_JSON), json.as_bytes())?;
    write_atomically(&dir.join(JUNIT_XML), render_junit(report)?.as_bytes())?;
    let timelines = read_timelines(dir, report);
    write_atomically(
        &dir.join(INDEX_HTML),
        render_html_with(report, &timelines).as_bytes(),
    )?;
    write_atomically(
        &dir.join(STANDARDS_CSV),
        render_standards_csv(report)?.as_bytes(),
    )?;
    Ok(())
}

/// The timelines a case may have: its id to the timeline, or why it could
/// not be read.
pub type Timelines = BTreeMap<String, Result<timeline::Timeline, String>>;

/// Reads the `artifacts.timeline` files of `report`'s cases in run
/// directory `dir`; one that is missing or unreadable is kept as the reason
/// (the page says so rather than silently showing no timeline).
pub fn read_timelines(dir: &Path, report: &RunReport) -> Timelines {
    let mut out = Timelines::new();
    for case in &report.cases {
        let Some(rel) = &case.artifacts.timeline else {
            continue;
        };
        let path = dir.join(rel);
        let read = fs::read_to_string(&path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|text| {
                serde_json::from_str::<timeline::Timeline>(&text)
                    .map_err(|e| format!("{} is not a timeline: {e}", path.display()))
            });
        out.insert(case.id.clone(), read);
    }
    out
}

/// Reads `report.json` of a run directory.
///
/// The `schema` field is checked before the rest is decoded, so a report
/// of another major version gets an error saying so instead of a confusing
/// "missing field". Unknown fields are ignored: a newer minor revision of
/// schema 1 (fields added) stays readable by this build.
pub fn read_run(dir: &Path) -> Result<RunReport> {
    let path = dir.join(REPORT_JSON);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    let schema = value.get("schema").and_then(|s| s.as_str()).unwrap_or("");
    check_schema(schema).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_value(value)
        .with_context(|| format!("{} does not follow schema {SCHEMA}", path.display()))
}

/// Rebuilds `index.html` and `standards.csv` of a run directory from its
/// `report.json` and returns the page's path (what `cargo xtask report DIR`
/// does).
pub fn regenerate(dir: &Path) -> Result<PathBuf> {
    let report = read_run(dir)?;
    let path = dir.join(INDEX_HTML);
    let timelines = read_timelines(dir, &report);
    write_atomically(&path, render_html_with(&report, &timelines).as_bytes())?;
    write_atomically(
        &dir.join(STANDARDS_CSV),
        render_standards_csv(&report)?.as_bytes(),
    )?;
    Ok(path)
}

/// Counts the outcomes of `cases`: what [`RunReport::summary`] must hold.
pub fn tally(cases: &[CaseResult]) -> Summary {
    let mut s = Summary {
        total: cases.len(),
        ..Summary::default()
    };
    for case in cases {
        match case.outcome {
            Outcome::Passed => s.passed += 1,
            Outcome::Failed => s.failed += 1,
            Outcome::Error => s.error += 1,
            Outcome::NotApplicable => s.not_applicable += 1,
            Outcome::Ignored => s.ignored += 1,
        }
        match case.kind {
            CaseKind::Device => s.device.add(case.outcome),
            CaseKind::SelfTest => s.self_test.add(case.outcome),
        }
    }
    s
}

/// The suite a case belongs to: its id up to the first `-` (`NI-01` → `NI`,
/// `OTA-10` → `OTA`). An id without a dash is its own group.
pub fn group_of(id: &str) -> &str {
    id.split_once('-').map_or(id, |(group, _)| group)
}

/// The groups of the conformance catalogue, in the order it lists them; the
/// reports present suites in this order, then any others as first met.
const CATALOGUE_ORDER: [&str; 6] = ["NI", "MT", "KR", "OTA", "CD", "GW"];

/// The groups present in `report`, in catalogue order, each with its
/// cases in run order.
pub(crate) fn groups(report: &RunReport) -> Vec<(&str, Vec<&CaseResult>)> {
    let mut groups: Vec<(&str, Vec<&CaseResult>)> = Vec::new();
    for case in &report.cases {
        let g = group_of(&case.id);
        match groups.iter_mut().find(|(name, _)| *name == g) {
            Some((_, cases)) => cases.push(case),
            None => groups.push((g, vec![case])),
        }
    }
    // Stable sort: unknown groups keep their first-met order after the known ones.
    groups.sort_by_key(|(g, _)| {
        CATALOGUE_ORDER
            .iter()
            .position(|known| known == g)
            .unwrap_or(CATALOGUE_ORDER.len())
    });
    groups
}

fn check_schema(schema: &str) -> Result<()> {
    let Some(major) = schema.strip_prefix(SCHEMA_FAMILY) else {
        bail!("not a sacbench report: schema is {schema:?}, expected {SCHEMA:?}");
    };
    let ours = SCHEMA.strip_prefix(SCHEMA_FAMILY).unwrap_or_default();
    // Version 2 only added outcomes and fields (absent in 1 = zero / null).
    if major != ours && major != "1" {
        bail!(
            "report schema {schema:?} is a different major version than this build reads \
             ({SCHEMA:?}); use the sacbench version that wrote it"
        );
    }
    Ok(())
}

fn validate(report: &RunReport) -> Result<()> {
    if report.schema != SCHEMA {
        bail!(
            "report.schema is {:?}; this build writes {SCHEMA:?}",
            report.schema
        );
    }
    let counted = tally(&report.cases);
    if report.summary != counted {
        bail!(
            "report.summary {:?} does not match its cases, which count {:?}; \
             build it with report::tally(&cases)",
            report.summary,
            counted
        );
    }
    let mut seen = HashSet::new();
    for case in &report.cases {
        if !seen.insert(case.id.as_str()) {
            bail!(
                "case id {} appears twice in the report; ids must be unique",
                case.id
            );
        }
    }
    Ok(())
}

/// Writes through a temporary file and a rename, so that a reader (a
/// browser, a CI artifact upload, `cargo xtask report` racing a run) never
/// sees half a file and an interrupted write leaves the old one intact.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("report");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// The references of a piece of evidence as people read them: `frame 12`,
/// `frames 12, 15`, `journal seqs 3, 4`; `None` when it has none.
pub(crate) fn refs_text(evidence: &Evidence) -> Option<String> {
    if evidence.refs.is_empty() {
        return None;
    }
    let (one, many) = match evidence.kind {
        EvidenceKind::Frames => ("frame", "frames"),
        EvidenceKind::Journal => ("journal seq", "journal seqs"),
        _ => ("ref", "refs"),
    };
    let label = if evidence.refs.len() == 1 { one } else { many };
    let numbers: Vec<String> = evidence.refs.iter().map(u64::to_string).collect();
    Some(format!("{label} {}", numbers.join(", ")))
}

/// Where a kind of evidence comes from, as the reports name it.
pub(crate) fn kind_label(kind: EvidenceKind) -> &'static str {
    match kind {
        EvidenceKind::Frames => "capture",
        EvidenceKind::Journal => "hub journal",
        EvidenceKind::Log => "device log",
        EvidenceKind::Scan => "scan",
        EvidenceKind::Note => "note",
    }
}

/// Formats a duration for people: `850 ms`, `12.3 s`, `4 min 05 s`.
pub(crate) fn human_duration(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        let s = ms / 1000;
        format!("{} min {:02} s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_the_id_prefix() {
        assert_eq!(group_of("NI-01"), "NI");
        assert_eq!(group_of("OTA-10"), "OTA");
        assert_eq!(group_of("SELFTEST"), "SELFTEST");
    }

    #[test]
    fn refs_read_naturally() {
        assert_eq!(
            refs_text(&Evidence::frames("x", [12])).as_deref(),
            Some("frame 12")
        );
        assert_eq!(
            refs_text(&Evidence::frames("x", [12, 15])).as_deref(),
            Some("frames 12, 15")
        );
        assert_eq!(
            refs_text(&Evidence::journal("x", [3, 4])).as_deref(),
            Some("journal seqs 3, 4")
        );
        assert_eq!(refs_text(&Evidence::note("x")), None);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(850), "850 ms");
        assert_eq!(human_duration(12_345), "12.3 s");
        assert_eq!(human_duration(245_000), "4 min 05 s");
    }

    #[test]
    fn schema_versions_are_checked() {
        assert!(check_schema(SCHEMA).is_ok());
        assert!(
            check_schema("sacbench-report/1").is_ok(),
            "version 1 stays readable"
        );
        let other = check_schema("sacbench-report/3").unwrap_err().to_string();
        assert!(other.contains("different major version"), "{other}");
        let foreign = check_schema("").unwrap_err().to_string();
        assert!(foreign.contains("not a sacbench report"), "{foreign}");
    }
}
