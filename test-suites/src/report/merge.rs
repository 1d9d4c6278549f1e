//! `cargo xtask report --merge OUT DIR…`: one run directory from the run
//! directories of shards of one run (CI machines each running a part of the
//! cases, `cargo nextest run --partition hash:K/N`).
//!
//! The merged `report.json` holds every shard's cases (a case in two shards
//! is an error: which verdict would be the run's?), in catalogue order;
//! `junit.xml`, `index.html` and `standards.csv` are rendered from it, and
//! each case's evidence directory (`cases/<ID>/`) is copied beside it, so
//! the artifacts' relative paths hold. Shards of different commits, DUTs,
//! faults or rigs are refused with one error naming both shards and the
//! field: their verdicts are not one run's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::model::RunReport;
use crate::run_dir::{self, RunMeta};

/// Merges the reports of shards (each labelled, e.g. by its directory, for
/// the errors) into one. Pure: files are [`merge_dirs`]'s.
pub fn merge(shards: &[(String, RunReport)]) -> Result<RunReport> {
    let Some((first_label, first)) = shards.first() else {
        bail!("no shard to merge: name at least one run directory");
    };
    let identity = RunMeta::of_report(first);
    for (label, shard) in &shards[1..] {
        if let Some(m) = run_dir::mismatch(&identity, &RunMeta::of_report(shard)) {
            bail!(
                "shards {first_label} and {label} differ in {}: {first_label} ran {} {}, \
                 {label} ran {} {}; only shards of one commit, DUT, fault and rig merge \
                 into one report",
                m.field,
                m.field,
                m.left,
                m.field,
                m.right
            );
        }
    }
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    let mut cases = Vec::new();
    for (label, shard) in shards {
        for case in &shard.cases {
            if let Some(other) = owner.insert(&case.id, label) {
                bail!(
                    "case {} is in two shards, {other} and {label}: a case runs in one \
                     shard only (merge the shards of one partitioned run, each once)",
                    case.id
                );
            }
            cases.push(case.clone());
        }
    }
    cases.sort_by_cached_key(|c| super::assemble::catalogue_order(&c.id));
    let reports = shards.iter().map(|(_, r)| r);
    // RFC 3339 UTC times of one format order as strings.
    let started_at = reports
        .clone()
        .map(|r| r.started_at.clone())
        .min()
        .unwrap_or_default();
    let finished_at = reports
        .clone()
        .map(|r| r.finished_at.clone())
        .max()
        .unwrap_or_default();
    let interrupted = reports.clone().find_map(|r| r.interrupted.clone());
    Ok(RunReport {
        schema: crate::model::SCHEMA.into(),
        started_at,
        finished_at,
        rig: first.rig.clone(),
        dut: first.dut.clone(),
        fault: first.fault.clone(),
        commit: first.commit.clone(),
        interrupted,
        summary: super::tally(&cases),
        cases,
        documentation_review: first.documentation_review.clone(),
    })
}

/// Merges the shard run directories `dirs` into the new run directory `out`
/// (missing or empty): `report.json` ([`merge`]), its renderings, each
/// case's `cases/<ID>/` (hard links where the file system allows, copies
/// elsewhere) and `run.json`, so more shards can still be run into `out`.
pub fn merge_dirs(out: &Path, dirs: &[PathBuf]) -> Result<RunReport> {
    if dirs.is_empty() {
        bail!("no shard to merge: name at least one run directory");
    }
    if out.exists()
        && std::fs::read_dir(out)
            .with_context(|| format!("reading {}", out.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} exists and is not empty; name a new directory to merge into",
            out.display()
        );
    }
    let mut shards = Vec::new();
    for dir in dirs {
        let report = super::read_run(dir)
            .with_context(|| format!("shard {} has no report", dir.display()))?;
        shards.push((dir.display().to_string(), report));
    }
    let merged = merge(&shards)?;
    for (dir, (_, report)) in dirs.iter().zip(&shards) {
        for case in &report.cases {
            let from = dir.join("cases").join(&case.id);
            if from.is_dir() {
                copy_tree(&from, &out.join("cases").join(&case.id))?;
            }
        }
    }
    let meta = RunMeta {
        started_at: merged.started_at.clone(),
        ..RunMeta::of_report(&merged)
    };
    let mut text = serde_json::to_string_pretty(&meta).context("serialising run.json")?;
    text.push('\n');
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    run_dir::write_atomically(&out.join(run_dir::RUN_JSON), text.as_bytes())?;
    super::write_run(out, &merged)?;
    Ok(merged)
}

/// Copies directory `from` to `to` (created), file by file: a hard link
/// when both are on one file system, a copy otherwise; symbolic links as
/// links.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry.with_context(|| format!("reading {}", from.display()))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry
            .file_type()
            .with_context(|| format!("{}", src.display()))?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&src).with_context(|| format!("{}", src.display()))?;
            std::os::unix::fs::symlink(target, &dst)
                .with_context(|| format!("linking {}", dst.display()))?;
        } else if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
