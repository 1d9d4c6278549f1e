//! Builds the run's `RunReport` from the per-case `result.json` files in its
//! run directory — this process's and those of every other process that ran
//! cases into it (nextest runs one case per process) — and writes the report
//! files.

use std::path::Path;

use anyhow::{Context, Result};

use crate::model::{CaseResult, RunReport, SCHEMA};
use crate::run_dir::{self, RunMeta};

/// Now, RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Where a case comes in a report: its place in the catalogue
/// (`cases::all()`), then cases the catalogue does not know, by id.
pub fn catalogue_order(id: &str) -> (usize, String) {
    let pos = crate::cases::all()
        .iter()
        .position(|d| d.id == id)
        .unwrap_or(usize::MAX);
    (pos, id.to_owned())
}

/// Every `cases/<ID>/result.json` under run directory `out`, in catalogue
/// order (a case that left none — it could not even start, or is still
/// running in another process — is absent).
pub fn read_results(out: &Path) -> Result<Vec<CaseResult>> {
    let mut cases: Vec<CaseResult> = Vec::new();
    let dir = out.join("cases");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(cases),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path()
            .join("result.json");
        if let Ok(bytes) = std::fs::read(&path) {
            cases.push(
                serde_json::from_slice(&bytes).with_context(|| format!("{}", path.display()))?,
            );
        }
    }
    cases.sort_by_cached_key(|c| catalogue_order(&c.id));
    Ok(cases)
}

/// Writes the report of run directory `out` from all its cases' results,
/// under the run's lock: the run is `meta` (its `run.json`), finished now;
/// interrupted if this process was (`interrupted`) or an earlier one said so.
pub fn assemble(out: &Path, meta: &RunMeta, interrupted: Option<&str>) -> Result<RunReport> {
    let _lock = run_dir::lock(out)?;
    let cases = read_results(out)?;
    let earlier = super::read_run(out).ok().and_then(|r| r.interrupted);
    let report = RunReport {
        schema: SCHEMA.into(),
        started_at: meta.started_at.clone(),
        finished_at: now_rfc3339(),
        rig: meta.rig.clone(),
        dut: meta.dut.clone(),
        interrupted: interrupted.map(str::to_owned).or(earlier),
        fault: meta.fault.clone(),
        commit: meta.commit.clone(),
        summary: super::tally(&cases),
        cases,
        documentation_review: crate::standards::documentation_review(),
    };
    super::write_run(out, &report)?;
    Ok(report)
}
