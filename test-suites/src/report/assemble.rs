//! Builds the run's `RunReport` from the per-case `result.json` files the
//! runner wrote, and writes the report files.

use std::path::Path;

use anyhow::{Context, Result};

use crate::model::{CaseResult, DutInfo, RigInfo, RunReport, SCHEMA};

/// Now, RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Reads `cases/<id>/result.json` for each selected case id (a case that
/// left none — it could not even start — is absent) and writes the report.
pub fn assemble(
    out: &Path,
    ids: &[String],
    started_at: &str,
    fault: Option<&str>,
    rig: RigInfo,
    dut: Option<DutInfo>,
    interrupted: Option<&str>,
) -> Result<RunReport> {
    let mut cases: Vec<CaseResult> = Vec::new();
    for id in ids {
        let path = out.join("cases").join(id).join("result.json");
        if let Ok(bytes) = std::fs::read(&path) {
            cases.push(
                serde_json::from_slice(&bytes).with_context(|| format!("{}", path.display()))?,
            );
        }
    }
    let report = RunReport {
        schema: SCHEMA.into(),
        started_at: started_at.into(),
        finished_at: now_rfc3339(),
        rig,
        dut,
        interrupted: interrupted.map(str::to_owned),
        fault: fault.map(str::to_owned),
        summary: super::tally(&cases),
        cases,
        documentation_review: crate::standards::documentation_review(),
    };
    super::write_run(out, &report)?;
    Ok(report)
}
