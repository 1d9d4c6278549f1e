//! Tests of the shard merge: pure over report models, then over run
//! directories.

use super::*;
use crate::model::{Artifacts, CaseKind, CaseResult, DutInfo, Outcome, RigInfo, SCHEMA};

fn case(id: &str, outcome: Outcome) -> CaseResult {
    CaseResult {
        id: id.into(),
        kind: CaseKind::Device,
        name: format!("x::{id}_case"),
        title: format!("{id} title"),
        outcome,
        duration_ms: 1_000,
        expected: "it holds".into(),
        seen: "it held".into(),
        look_at: String::new(),
        evidence: Vec::new(),
        artifacts: Artifacts {
            device_log: Some(format!("cases/{id}/device.log")),
            ..Artifacts::default()
        },
        standards: crate::standards::for_case(id),
    }
}

fn shard(started: &str, finished: &str, cases: Vec<CaseResult>) -> RunReport {
    RunReport {
        schema: SCHEMA.into(),
        started_at: started.into(),
        finished_at: finished.into(),
        rig: RigInfo {
            kind: "emulated".into(),
            name: "emulated rig".into(),
        },
        dut: Some(DutInfo {
            name: "reference".into(),
            file: "/a/dut.toml".into(),
            implements: vec!["core".into()],
            sha256: Some("ab".repeat(32)),
        }),
        fault: None,
        commit: Some("c0ffee".into()),
        interrupted: None,
        summary: crate::report::tally(&cases),
        cases,
        documentation_review: Vec::new(),
    }
}

fn two_shards() -> Vec<(String, RunReport)> {
    vec![
        (
            "shard-1".into(),
            shard(
                "2026-01-01T10:00:05Z",
                "2026-01-01T10:03:00Z",
                vec![
                    case("MT-01", Outcome::Passed),
                    case("KR-01", Outcome::Failed),
                ],
            ),
        ),
        (
            "shard-2".into(),
            shard(
                "2026-01-01T10:00:00Z",
                "2026-01-01T10:02:00Z",
                vec![
                    case("NI-01", Outcome::Passed),
                    case("OTA-01", Outcome::NotApplicable),
                ],
            ),
        ),
    ]
}

#[test]
fn the_merge_holds_every_case_in_catalogue_order_with_the_run_span() {
    let merged = merge(&two_shards()).unwrap();
    let ids: Vec<&str> = merged.cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["NI-01", "MT-01", "KR-01", "OTA-01"]);
    assert_eq!(merged.summary, crate::report::tally(&merged.cases));
    assert_eq!((merged.summary.passed, merged.summary.failed), (2, 1));
    assert_eq!(merged.summary.not_applicable, 1);
    assert_eq!(merged.started_at, "2026-01-01T10:00:00Z");
    assert_eq!(merged.finished_at, "2026-01-01T10:03:00Z");
    assert_eq!(merged.commit.as_deref(), Some("c0ffee"));
    // The verdicts are the shards', untouched.
    let kr = merged.cases.iter().find(|c| c.id == "KR-01").unwrap();
    assert_eq!(kr, &case("KR-01", Outcome::Failed));
}

#[test]
fn a_case_in_two_shards_is_refused_naming_both() {
    let mut shards = two_shards();
    shards[1].1.cases.push(case("KR-01", Outcome::Passed));
    let err = merge(&shards).unwrap_err().to_string();
    assert!(
        err.contains("case KR-01 is in two shards, shard-1 and shard-2"),
        "{err}"
    );
}

#[test]
fn shards_of_different_commits_duts_or_faults_are_refused_with_one_error() {
    let refused = |change: &dyn Fn(&mut RunReport)| {
        let mut shards = two_shards();
        change(&mut shards[1].1);
        merge(&shards).unwrap_err().to_string()
    };
    let e = refused(&|r| r.commit = Some("deadbeef".into()));
    assert!(
        e.starts_with("shards shard-1 and shard-2 differ in commit: shard-1 ran commit c0ffee, shard-2 ran commit deadbeef"),
        "{e}"
    );
    let e = refused(&|r| r.dut.as_mut().unwrap().sha256 = Some("cd".repeat(32)));
    assert!(e.contains("differ in DUT"), "{e}");
    let e = refused(&|r| r.dut.as_mut().unwrap().name = "other".into());
    assert!(e.contains("differ in DUT") && e.contains("other"), "{e}");
    let e = refused(&|r| r.fault = Some("no-tls".into()));
    assert!(
        e.contains("differ in fault: shard-1 ran fault none, shard-2 ran fault no-tls"),
        "{e}"
    );
    // The same DUT file in another checkout is the same DUT.
    let mut shards = two_shards();
    shards[1].1.dut.as_mut().unwrap().file = "/b/dut.toml".into();
    assert!(merge(&shards).is_ok());
}

#[test]
fn nothing_to_merge_is_an_error() {
    assert!(merge(&[]).is_err());
}

/// Writes `report` as a shard's run directory, each case with a device log.
fn write_shard(dir: &Path, report: &RunReport) {
    for c in &report.cases {
        let d = dir.join("cases").join(&c.id);
        std::fs::create_dir_all(d.join("rig")).unwrap();
        std::fs::write(d.join("device.log"), format!("{} log\n", c.id)).unwrap();
        std::fs::write(d.join("rig").join("tls-keys.log"), "keys").unwrap();
    }
    crate::report::write_run(dir, report).unwrap();
}

#[test]
fn merged_directories_keep_every_case_evidence_and_every_rendering() {
    let d = tempfile::tempdir().unwrap();
    let shards = two_shards();
    let dirs: Vec<PathBuf> = (1..=2).map(|i| d.path().join(format!("s{i}"))).collect();
    for (dir, (_, r)) in dirs.iter().zip(&shards) {
        write_shard(dir, r);
    }
    let out = d.path().join("merged");
    let merged = merge_dirs(&out, &dirs).unwrap();
    assert_eq!(crate::report::read_run(&out).unwrap(), merged);
    for c in &merged.cases {
        let log = out.join(c.artifacts.device_log.as_ref().unwrap());
        assert_eq!(
            std::fs::read_to_string(log).unwrap(),
            format!("{} log\n", c.id)
        );
        assert!(out
            .join("cases")
            .join(&c.id)
            .join("rig/tls-keys.log")
            .is_file());
    }
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    for c in &merged.cases {
        assert!(junit.contains(&c.name), "{} in junit.xml", c.name);
    }
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(page.contains("KR-01") && page.contains("NI-01"));
    assert!(page.contains("c0ffee"), "the page names the commit");
    assert!(out.join("standards.csv").is_file());
    // The merged directory is a run directory of the same run.
    let meta: RunMeta =
        serde_json::from_slice(&std::fs::read(out.join(run_dir::RUN_JSON)).unwrap()).unwrap();
    assert_eq!(run_dir::mismatch(&meta, &RunMeta::of_report(&merged)), None);
    // Merging into it again is refused: it is not empty.
    let again = merge_dirs(&out, &dirs).unwrap_err().to_string();
    assert!(again.contains("not empty"), "{again}");
}

#[test]
fn a_shard_without_a_report_is_named() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("nothing-here");
    let err = format!(
        "{:#}",
        merge_dirs(&d.path().join("out"), std::slice::from_ref(&missing)).unwrap_err()
    );
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(!d.path().join("out").exists(), "nothing written");
}
