//! A run directory that several processes fill: `sacbench-suite` running
//! many cases, nextest running one case per process (`conformance` target),
//! or both one after the other.
//!
//! - each case writes `cases/<ID>/result.json` (atomically: a reader sees
//!   all of it or nothing);
//! - the first process writes `run.json`, the run's identity ([`RunMeta`]:
//!   commit, DUT, fault, rig); a later process whose identity differs stops
//!   before any case, naming the field (or, run by hand, replaces the old
//!   run: [`OtherRun`]), so one directory never mixes runs;
//! - every process ends by rebuilding `report.json`, `junit.xml`,
//!   `index.html` and `standards.csv` from all the results there, under a
//!   lock ([`lock`]; `report::assemble`).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{DutInfo, RigInfo, RunReport};

/// File name of the run's identity inside a run directory.
pub const RUN_JSON: &str = "run.json";

/// The lock the processes filling a run directory take to write its reports.
const LOCK: &str = ".run.lock";

/// What makes a run one run: results of different commits, DUTs, faults or
/// rigs never share a report. Written once, by the first process, as
/// `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunMeta {
    /// When the first process of the run started, RFC 3339 UTC.
    pub started_at: String,
    /// The commit of sacbench ([`commit`]); `None` when unknown.
    pub commit: Option<String>,
    /// The rig.
    pub rig: RigInfo,
    /// The device under test.
    pub dut: Option<DutInfo>,
    /// The fault switched on in the device under test, if any.
    pub fault: Option<String>,
}

impl RunMeta {
    /// The identity of a finished report (a shard's `report.json`).
    pub fn of_report(r: &RunReport) -> RunMeta {
        RunMeta {
            started_at: r.started_at.clone(),
            commit: r.commit.clone(),
            rig: r.rig.clone(),
            dut: r.dut.clone(),
            fault: r.fault.clone(),
        }
    }
}

/// A field in which two runs differ, with each one's value as people read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// `commit`, `DUT`, `fault` or `rig`.
    pub field: &'static str,
    /// The first run's value.
    pub left: String,
    /// The second run's value.
    pub right: String,
}

fn or_none(v: Option<&str>) -> String {
    v.map_or_else(|| "none".to_string(), str::to_owned)
}

fn dut_text(d: Option<&DutInfo>) -> String {
    match d {
        None => "none".into(),
        Some(d) => match &d.sha256 {
            Some(h) => format!("{} ({}, sha256 {})", d.name, d.file, &h[..h.len().min(12)]),
            None => format!("{} ({})", d.name, d.file),
        },
    }
}

/// The first field in which runs `a` and `b` differ (commit, DUT, fault,
/// rig kind), or `None` when their results may share a report. The DUT is
/// its name and, when both runs recorded it, its file's digest (not its
/// path: shards run in different checkouts); a commit nobody knows matches
/// only another unknown one.
pub fn mismatch(a: &RunMeta, b: &RunMeta) -> Option<Mismatch> {
    if a.commit != b.commit {
        return Some(Mismatch {
            field: "commit",
            left: a.commit.clone().unwrap_or_else(|| "unknown".into()),
            right: b.commit.clone().unwrap_or_else(|| "unknown".into()),
        });
    }
    let same_dut = match (&a.dut, &b.dut) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            x.name == y.name
                && match (&x.sha256, &y.sha256) {
                    (Some(h), Some(k)) => h == k,
                    _ => x.file == y.file,
                }
        }
        _ => false,
    };
    if !same_dut {
        return Some(Mismatch {
            field: "DUT",
            left: dut_text(a.dut.as_ref()),
            right: dut_text(b.dut.as_ref()),
        });
    }
    if a.fault != b.fault {
        return Some(Mismatch {
            field: "fault",
            left: or_none(a.fault.as_deref()),
            right: or_none(b.fault.as_deref()),
        });
    }
    if a.rig.kind != b.rig.kind {
        return Some(Mismatch {
            field: "rig",
            left: a.rig.kind.clone(),
            right: b.rig.kind.clone(),
        });
    }
    None
}

/// The commit the run is of: `SACBENCH_COMMIT` if set (CI may give its
/// own), else `git rev-parse HEAD` in this crate's source tree; `None` when
/// neither says.
pub fn commit() -> Option<String> {
    if let Some(c) = std::env::var("SACBENCH_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
    {
        return Some(c.trim().to_owned());
    }
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let c = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !c.is_empty()).then_some(c)
}

/// SHA-256 of a file's bytes, hex; `None` if it cannot be read.
pub fn file_sha256(path: &Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|b| hex::encode(Sha256::digest(b)))
}

/// The run directory of the `conformance` test target when `SACBENCH_OUT`
/// is not set: `<target dir>/sacbench/conformance/<NEXTEST_RUN_ID>`, which
/// all the processes of one nextest run share (`run-<pid>` outside
/// nextest). The target directory is the one the test binary was built in
/// (`<target>/<profile>/deps/conformance-<hash>`).
pub fn nextest_default() -> PathBuf {
    let target = std::env::current_exe()
        .ok()
        .and_then(|me| me.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(std::env::temp_dir);
    let run = std::env::var("NEXTEST_RUN_ID")
        .ok()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| format!("run-{}", std::process::id()));
    target.join("sacbench").join("conformance").join(run)
}

/// What [`join`] does when the directory holds another run (another
/// commit, DUT, fault or rig).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherRun {
    /// Stop: other processes may be filling it (nextest's, a shard's).
    Refuse,
    /// Remove that run (its `run.json`, reports and `cases/`) and start this
    /// one: a run by hand into a directory used before, as `sacbench-suite`
    /// always did.
    Replace,
}

/// Makes `out` this run's directory: writes `run.json` with `mine` if no
/// process did yet, else checks that the run there is the same run and
/// returns its identity (its first start). Atomic: of processes starting at
/// once, exactly one writes `run.json` and the others read all of it. A
/// directory of another run is refused or replaced (`other`); a replaced
/// run's difference is returned, for the user to be told.
pub fn join(out: &Path, mine: RunMeta, other: OtherRun) -> Result<(RunMeta, Option<Mismatch>)> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("creating the run directory {}", out.display()))?;
    let path = out.join(RUN_JSON);
    if let Some(theirs) = claim(&path, &mine)? {
        let Some(m) = mismatch(&theirs, &mine) else {
            return Ok((theirs, None));
        };
        if other == OtherRun::Refuse {
            bail!(
                "the run directory {} holds a run of {} {}, this one is of {} {}: one run \
                 directory holds one commit, DUT, fault and rig; give this run another \
                 SACBENCH_OUT",
                out.display(),
                m.field,
                m.left,
                m.field,
                m.right
            );
        }
        let _lock = lock(out)?;
        for file in [
            "report.json",
            "junit.xml",
            "index.html",
            "standards.csv",
            RUN_JSON,
        ] {
            let _ = std::fs::remove_file(out.join(file));
        }
        let cases = out.join("cases");
        if cases.exists() {
            std::fs::remove_dir_all(&cases)
                .with_context(|| format!("removing the other run's {}", cases.display()))?;
        }
        if let Some(again) = claim(&path, &mine)? {
            bail!(
                "{}: another run took the directory meanwhile ({:?})",
                out.display(),
                again.commit
            );
        }
        return Ok((mine, Some(m)));
    }
    Ok((mine, None))
}

/// Writes `run.json` at `path` with `mine` if it is not there (`None`), else
/// reads the one there (`Some`).
fn claim(path: &Path, mine: &RunMeta) -> Result<Option<RunMeta>> {
    let mut text = serde_json::to_string_pretty(mine).context("serialising run.json")?;
    text.push('\n');
    // Written whole under a random name, then linked in only if no process
    // did first: the first process wins whole. (Not a name made of the
    // process id: every sandboxed run is PID 2 of its own PID namespace.)
    let tmp = temp_with(path, text.as_bytes())?;
    match tmp.persist_noclobber(path) {
        Ok(_) => return Ok(None),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.error).with_context(|| format!("writing {}", path.display())),
    }
    let theirs: RunMeta = serde_json::from_slice(
        &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("{} is not a run's identity", path.display()))?;
    Ok(Some(theirs))
}

/// A temporary file beside `path` (a random name, removed if dropped) holding `bytes`.
fn temp_with(path: &Path, bytes: &[u8]) -> Result<tempfile::NamedTempFile> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    Ok(tmp)
}

/// Takes the run directory's lock (blocking) until the returned guard drops:
/// the processes of a run rebuild its reports one at a time.
pub fn lock(out: &Path) -> Result<Flock<File>> {
    let path = out.join(LOCK);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("locking {}: {e}", path.display()))
}

/// Writes `bytes` to `path` through a temporary file of a random name and a
/// rename: a reader in another process sees the old file or the new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    temp_with(path, bytes)?
        .persist(path)
        .map(|_| ())
        .map_err(|e| e.error)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(commit: &str, dut: &str, sha: &str, fault: Option<&str>) -> RunMeta {
        RunMeta {
            started_at: "2026-01-01T00:00:00Z".into(),
            commit: Some(commit.into()),
            rig: RigInfo {
                kind: "emulated".into(),
                name: "x".into(),
            },
            dut: Some(DutInfo {
                name: dut.into(),
                file: format!("/checkout-{commit}/{dut}.toml"),
                implements: vec![],
                sha256: Some(sha.into()),
            }),
            fault: fault.map(str::to_owned),
        }
    }

    #[test]
    fn runs_differ_by_commit_dut_and_fault_not_by_checkout_path() {
        let a = meta("c1", "ref", "aa", None);
        let mut moved = a.clone();
        moved.dut.as_mut().unwrap().file = "/elsewhere/ref.toml".into();
        moved.started_at = "2026-01-02T00:00:00Z".into();
        assert_eq!(mismatch(&a, &moved), None);
        let m = mismatch(&a, &meta("c2", "ref", "aa", None)).unwrap();
        assert_eq!(
            (m.field, m.left.as_str(), m.right.as_str()),
            ("commit", "c1", "c2")
        );
        assert_eq!(
            mismatch(&a, &meta("c1", "ref", "bb", None)).unwrap().field,
            "DUT"
        );
        assert_eq!(
            mismatch(&a, &meta("c1", "other", "aa", None))
                .unwrap()
                .field,
            "DUT"
        );
        let f = mismatch(&a, &meta("c1", "ref", "aa", Some("no-tls"))).unwrap();
        assert_eq!(
            (f.field, f.left.as_str(), f.right.as_str()),
            ("fault", "none", "no-tls")
        );
    }

    #[test]
    fn the_first_process_writes_the_identity_and_a_different_run_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("run");
        let first = meta("c1", "ref", "aa", None);
        assert_eq!(
            join(&out, first.clone(), OtherRun::Refuse).unwrap(),
            (first.clone(), None)
        );
        let mut later = first.clone();
        later.started_at = "2026-01-03T00:00:00Z".into();
        assert_eq!(
            join(&out, later, OtherRun::Refuse).unwrap(),
            (first.clone(), None),
            "the first start is kept"
        );
        let err = join(
            &out,
            meta("c1", "ref", "aa", Some("no-tls")),
            OtherRun::Refuse,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("fault none") && err.contains("fault no-tls"),
            "{err}"
        );
        assert!(err.contains("another SACBENCH_OUT"), "{err}");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(RUN_JSON)]);
    }

    #[test]
    fn a_run_by_hand_replaces_another_run_and_keeps_adding_to_its_own() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("run");
        let first = meta("c1", "ref", "aa", None);
        join(&out, first.clone(), OtherRun::Replace).unwrap();
        let case = out.join("cases").join("NI-01");
        std::fs::create_dir_all(&case).unwrap();
        std::fs::write(case.join("result.json"), "{}").unwrap();
        std::fs::write(out.join("report.json"), "{}").unwrap();
        // The same run: its results stay.
        assert_eq!(
            join(&out, first.clone(), OtherRun::Replace).unwrap(),
            (first, None)
        );
        assert!(case.join("result.json").is_file());
        // Another commit: the old run goes, the new one is the directory's.
        let next = meta("c2", "ref", "aa", None);
        let (now, replaced) = join(&out, next.clone(), OtherRun::Replace).unwrap();
        assert_eq!(now, next);
        assert_eq!(replaced.unwrap().field, "commit");
        assert!(!out.join("cases").exists() && !out.join("report.json").exists());
        assert_eq!(
            join(&out, next.clone(), OtherRun::Refuse).unwrap(),
            (next, None),
            "run.json is the new run's"
        );
    }

    #[test]
    fn processes_starting_at_once_agree_on_one_identity() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("run");
        let joined: Vec<RunMeta> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let out = &out;
                    s.spawn(move || {
                        let mut m = meta("c1", "ref", "aa", None);
                        m.started_at = format!("2026-01-01T00:00:0{i}Z");
                        join(out, m, OtherRun::Refuse).unwrap().0
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(joined.iter().all(|m| m == &joined[0]), "{joined:?}");
    }
}
