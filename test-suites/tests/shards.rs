//! A run in two shards, each case in a process of its own as nextest runs
//! them (`--exact NAME`, all of a shard's processes at once, into one run
//! directory), merged (`cargo xtask report --merge`'s `SACBENCH_MERGE`),
//! gives the same verdicts as the same cases run unsharded; shards of
//! another fault are refused, by the merge and by a run directory nextest
//! fills (a run by hand replaces the other run instead).
//!
//! The cases are fast ones, under a fault that fails one of them (CD-19,
//! `apply-stale-twin`), so that a failed verdict crosses the merge too.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sacbench_suites::model::Outcome;
use sacbench_suites::report::read_run;

const SUITE: &str = env!("CARGO_BIN_EXE_sacbench-suite");
const FAULT: &str = "apply-stale-twin";
const SHARD_1: [&str; 2] = ["CD-05", "CD-19"];
const SHARD_2: [&str; 2] = ["CD-09", "GW-02"];
/// What nextest gives every process of one run.
const NEXTEST_RUN_ID: &str = "0b5e7f1c-5ac8-4e2c-9d3a-000000000016";

fn suite(out: &Path, fault: Option<&str>) -> Command {
    let mut c = Command::new(SUITE);
    c.env("SACBENCH_OUT", out)
        .env_remove("SACBENCH_DUT")
        .env_remove("SACBENCH_RIG")
        .env_remove("SACBENCH_ONLY")
        .env_remove("SACBENCH_MERGE")
        .env_remove("SACBENCH_SUMMARISE")
        // A run by hand unless a caller says it is nextest's.
        .env_remove("NEXTEST_RUN_ID");
    match fault {
        Some(f) => c.env("SACBENCH_FAULT", f),
        None => c.env_remove("SACBENCH_FAULT"),
    };
    c
}

/// The test name of case `id` (`cd::CD-05_queue_depth`), as `--list` gives it.
fn test_name(id: &str) -> String {
    let out = Command::new(SUITE).arg("--list").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .find(|n| n.contains(&format!("::{id}_")))
        .unwrap_or_else(|| panic!("{id} is not listed"))
        .to_owned()
}

/// One shard as nextest runs it: one process per case, all at once.
fn run_shard(out: &Path, ids: &[&str], fault: Option<&str>) -> Vec<Output> {
    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            suite(out, fault)
                .env("NEXTEST_RUN_ID", NEXTEST_RUN_ID)
                .args(["--exact", &test_name(id), "--nocapture"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

fn verdicts(dir: &Path) -> Vec<(String, Outcome)> {
    read_run(dir)
        .unwrap()
        .cases
        .into_iter()
        .map(|c| (c.id, c.outcome))
        .collect()
}

fn merge(out: &Path, shards: &[&Path]) -> Output {
    Command::new(SUITE)
        .env("SACBENCH_MERGE", out)
        .env_remove("SACBENCH_SUMMARISE")
        .args(shards)
        .output()
        .unwrap()
}

#[test]
fn two_shards_merge_into_the_verdicts_of_one_run() {
    let d = tempfile::tempdir().unwrap();
    let (whole, s1, s2, merged) = (
        d.path().join("whole"),
        d.path().join("shard-1"),
        d.path().join("shard-2"),
        d.path().join("merged"),
    );
    let all: Vec<&str> = SHARD_1.iter().chain(&SHARD_2).copied().collect();
    let o = suite(&whole, Some(FAULT))
        .env("SACBENCH_ONLY", all.join(","))
        .output()
        .unwrap();
    assert!(
        whole.join("report.json").is_file(),
        "the unsharded run wrote no report: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for (dir, ids) in [(&s1, &SHARD_1), (&s2, &SHARD_2)] {
        for o in run_shard(dir, ids, Some(FAULT)) {
            assert!(
                matches!(o.status.code(), Some(0) | Some(101)),
                "a shard's process did not run its case: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        // Every process rebuilt the shard's report: it has all the shard's cases.
        let ids_seen: Vec<String> = verdicts(dir).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids_seen, ids.map(String::from), "{}", dir.display());
    }

    let o = merge(&merged, &[&s1, &s2]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a case failed, so the merged run did: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The merge says which of the catalogue's cases no shard holds.
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        said.contains(&format!(
            "4 of the catalogue's {} cases merged; in no shard: NI-01,",
            sacbench_suites::cases::all().len()
        )),
        "{said}"
    );
    let want = verdicts(&whole);
    assert_eq!(want.len(), 4);
    assert!(
        want.contains(&("CD-19".into(), Outcome::Failed)),
        "{FAULT} fails CD-19: {want:?}"
    );
    assert_eq!(
        verdicts(&merged),
        want,
        "the same verdicts in the same order"
    );

    let report = read_run(&merged).unwrap();
    let shard = read_run(&s1).unwrap();
    assert_eq!(report.fault.as_deref(), Some(FAULT));
    assert_eq!(report.commit, shard.commit);
    assert!(report.commit.is_some(), "the commit is recorded");
    assert_eq!(report.dut, shard.dut);
    // Each case's evidence came along, at the paths the report gives.
    for case in &report.cases {
        for file in [&case.artifacts.journal, &case.artifacts.device_log]
            .into_iter()
            .flatten()
        {
            assert!(merged.join(file).is_file(), "{}: {file}", case.id);
        }
        assert!(merged
            .join("cases")
            .join(&case.id)
            .join("result.json")
            .is_file());
    }
    let junit = std::fs::read_to_string(merged.join("junit.xml")).unwrap();
    for case in &report.cases {
        assert!(junit.contains(&case.name), "{} in junit.xml", case.name);
    }
    assert_eq!(junit.matches("<failure").count(), 1, "{junit}");
    assert!(merged.join("index.html").is_file() && merged.join("standards.csv").is_file());
}

#[test]
fn shards_of_another_fault_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let (good, faulty) = (d.path().join("good"), d.path().join("faulty"));
    for o in run_shard(&good, &["GW-02"], None) {
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    for o in run_shard(&faulty, &["CD-05"], Some(FAULT)) {
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // The merge: one error naming both shards and the field, nothing written.
    let out: PathBuf = d.path().join("merged");
    let o = merge(&out, &[&good, &faulty]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!(
            "differ in fault: {} ran fault none, {} ran fault {FAULT}",
            good.display(),
            faulty.display()
        )),
        "{err}"
    );
    assert!(!out.join("report.json").exists());
    // A run directory under nextest: a process of another fault stops
    // before its case.
    let o = suite(&good, Some(FAULT))
        .env("NEXTEST_RUN_ID", NEXTEST_RUN_ID)
        .args(["--exact", &test_name("CD-05")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("another SACBENCH_OUT"), "{err}");
    assert!(
        !good.join("cases").join("CD-05").exists(),
        "the case did not run"
    );
    assert_eq!(verdicts(&good), [("GW-02".to_string(), Outcome::Passed)]);
    // By hand, a run of another fault replaces the run there, saying so.
    let o = suite(&good, Some(FAULT))
        .args(["--exact", &test_name("CD-05")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("held a run of fault none"), "{err}");
    assert_eq!(verdicts(&good), [("CD-05".to_string(), Outcome::Passed)]);
    assert_eq!(read_run(&good).unwrap().fault.as_deref(), Some(FAULT));
}

/// nextest runs each case in the package's directory: a relative run
/// directory would land there, so it is refused with one line.
#[test]
fn a_relative_run_directory_under_nextest_is_refused() {
    let rel = Path::new("shards-test-relative-run");
    let o = suite(rel, None)
        .env("NEXTEST_RUN_ID", NEXTEST_RUN_ID)
        .args(["--exact", &test_name("GW-02")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("give an absolute one"), "{err}");
    assert!(!rel.exists(), "nothing written");
}
