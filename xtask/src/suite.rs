//! `emulated`, `report` and `faults`: running the conformance suite binary
//! (`sacbench-suite`, a cargo-test-compatible harness) and reading its runs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use indicatif::{ProgressBar, ProgressStyle};

use crate::{cargo, run, Failure};

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// Builds the device and the suite; returns (suite, device) executables.
pub fn build(root: &Path) -> Result<(PathBuf, PathBuf), Failure> {
    build_with(root, &[])
}

/// The debug build `cargo xtask test` already made of every workspace
/// binary (a no-op build if it is there): what CI's fault matrix runs, so CI
/// builds everything once, not a second time optimised.
fn dev_build(root: &Path) -> Result<(PathBuf, PathBuf), Failure> {
    let mut b = cargo();
    b.args(["build", "--quiet", "--workspace", "--bins"]);
    run(root, b, "building the device and the suites (debug)")?;
    let debug = target_dir(root).join("debug");
    Ok((debug.join("sacbench-suite"), debug.join("device-native")))
}

fn build_with(root: &Path, features: &[&str]) -> Result<(PathBuf, PathBuf), Failure> {
    // Release: the suite's cases mostly wait, but the boards, the hub and
    // the scans do real work; optimised, the whole suite runs in well under
    // half the time (and so does the fault matrix, which runs it 30 times).
    let mut b = cargo();
    b.args([
        "build",
        "--quiet",
        "--release",
        "-p",
        "device-native",
        "-p",
        "sacbench-suites",
        // The GW cases: the gateway and the emulated legacy devices.
        "-p",
        "field-gateway",
        "-p",
        "modbus-leaf",
        "--bins",
    ]);
    for f in features {
        b.args(["--features", f]);
    }
    run(root, b, "building the device and the suites")?;
    let release = target_dir(root).join("release");
    Ok((
        release.join("sacbench-suite"),
        release.join("device-native"),
    ))
}

/// A run of the suite: each case's outcome, as its report says.
pub struct SuiteRun {
    /// case id → outcome in `report.json` ("passed", "failed", "error",
    /// "not_applicable", "ignored").
    pub results: BTreeMap<String, String>,
}

/// Each case's outcome from the run's `report.json` (the suite's own
/// account, with `error` told apart from `failed`).
fn outcomes(out: &Path) -> Result<BTreeMap<String, String>, Failure> {
    let path = out.join("report.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Failure::Setup(format!(
            "the suite wrote no report ({}): {e}",
            path.display()
        ))
    })?;
    let report: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Failure::Setup(format!("{}: {e}", path.display())))?;
    Ok(report["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c["id"].as_str()?.to_owned(),
                c["outcome"].as_str()?.to_owned(),
            ))
        })
        .collect())
}

/// The ids of the cases the suite lists (`--list`) for `filter` and `only`.
fn case_ids(suite: &Path, filter: &[String], only: Option<&str>) -> Result<Vec<String>, Failure> {
    let mut c = Command::new(suite);
    c.arg("--list").args(filter);
    if let Some(o) = only {
        c.env("SACBENCH_ONLY", o);
    }
    let out = c
        .output()
        .map_err(|e| Failure::Setup(format!("{}: {e}", suite.display())))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(case_id)
        .collect())
}

/// What one run of the suite is given.
#[derive(Default)]
pub struct SuiteArgs<'a> {
    pub filter: &'a [String],
    pub fault: Option<&'a str>,
    /// `SACBENCH_ONLY`: just these case ids.
    pub only: Option<&'a str>,
    /// Show a progress bar (not for the fault matrix's runs).
    pub show: bool,
    /// A lab rig file instead of the emulated rig.
    pub rig: Option<&'a Path>,
    /// The device under test's DUT file (default: the reference device's).
    pub dut: Option<&'a Path>,
    /// Keep the images of passing cases (`SACBENCH_KEEP_IMAGES`).
    pub keep_images: bool,
    /// Run the suite with this `PATH` instead of the inherited one.
    pub path: Option<&'a std::ffi::OsStr>,
}

/// Runs the suite with a progress bar (or quietly, for the fault matrix).
pub fn run_suite(
    suite: &Path,
    device: &Path,
    out: &Path,
    a: &SuiteArgs<'_>,
) -> Result<SuiteRun, Failure> {
    let SuiteArgs {
        filter,
        fault,
        only,
        show,
        rig,
        dut,
        keep_images,
        path,
    } = *a;
    let total = case_ids(suite, filter, only)?.len() as u64;
    let bar = if show {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    let mut cmd = Command::new(suite);
    // Machine-readable progress; the verdicts come from report.json.
    cmd.args(filter)
        .args(["--format", "json"])
        .env("SACBENCH_OUT", out)
        .env("SACBENCH_BIN", device.parent().unwrap_or(Path::new(".")))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match fault {
        Some(f) => cmd.env("SACBENCH_FAULT", f),
        None => cmd.env_remove("SACBENCH_FAULT"),
    };
    if let Some(o) = only {
        cmd.env("SACBENCH_ONLY", o);
    }
    match rig {
        Some(r) => cmd.env("SACBENCH_RIG", r),
        None => cmd.env_remove("SACBENCH_RIG"),
    };
    match dut {
        Some(d) => cmd.env("SACBENCH_DUT", d),
        None => cmd.env_remove("SACBENCH_DUT"),
    };
    if let Some(path) = path {
        cmd.env("PATH", path);
    }
    if keep_images {
        cmd.env("SACBENCH_KEEP_IMAGES", "1");
    } else {
        cmd.env_remove("SACBENCH_KEEP_IMAGES");
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::Setup(format!("{}: {e}", suite.display())))?;
    let stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    for line in BufReader::new(child.stdout.take().expect("piped"))
        .lines()
        .map_while(Result::ok)
    {
        // libtest's JSON events: {"type": "test", "name": …, "event": "ok" | "failed" | "ignored"}.
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let (Some(name), Some(verdict)) = (event["name"].as_str(), event["event"].as_str()) else {
            continue;
        };
        if event["type"] != "test" || verdict == "started" {
            continue;
        }
        bar.inc(1);
        bar.set_message(format!("{}: {verdict}", case_id(name)));
        if verdict != "ok" {
            bar.println(format!("{verdict:>7} {}", case_id(name)));
        }
    }
    let status = child
        .wait()
        .map_err(|e| Failure::Setup(format!("waiting for the suite: {e}")))?;
    bar.finish_and_clear();
    let errors = errors.join().unwrap_or_default();
    if status.code() == Some(2) && !out.join("report.json").exists() {
        return Err(Failure::Setup(errors.join("\n")));
    }
    Ok(SuiteRun {
        results: outcomes(out)?,
    })
}

/// `cargo xtask emulated [--dut DUT.toml] [FILTER] [--fault NAME] [--out DIR]`.
pub fn emulated(
    root: &Path,
    dut: Option<&Path>,
    filter: &[String],
    fault: Option<&str>,
    out: Option<PathBuf>,
    keep_images: bool,
) -> Result<(), Failure> {
    let dut = dut.map(absolute_file).transpose()?;
    let out = prepare_out(root, out, "emulated-last")?;
    let (suite, device) = build(root)?;
    run_suite(
        &suite,
        &device,
        &out,
        &SuiteArgs {
            filter,
            fault,
            show: true,
            dut: dut.as_deref(),
            keep_images,
            ..SuiteArgs::default()
        },
    )?;
    summarise(&suite, &out)
}

/// `path` made absolute; a missing file is a usage error naming the flag.
fn absolute_file(path: &Path) -> Result<PathBuf, Failure> {
    if !path.is_file() {
        return Err(Failure::Setup(format!(
            "--dut {}: no such file",
            path.display()
        )));
    }
    std::path::absolute(path).map_err(|e| Failure::Setup(format!("--dut {}: {e}", path.display())))
}

/// `cargo xtask bench --rig rig.toml [FILTER] [--out DIR]`: the same cases on
/// a lab rig, one at a time. The rig file is checked before anything is
/// built; a rig with a `[probe]` builds the suite with probe-rs.
pub fn bench(
    root: &Path,
    rig: &Path,
    dut: Option<&Path>,
    filter: &[String],
    out: Option<PathBuf>,
    keep_images: bool,
) -> Result<(), Failure> {
    let dut = dut.map(absolute_file).transpose()?;
    let rig = std::path::absolute(rig)
        .map_err(|e| Failure::Setup(format!("--rig {}: {e}", rig.display())))?;
    let text = std::fs::read_to_string(&rig)
        .map_err(|e| Failure::Setup(format!("--rig {}: cannot read: {e}", rig.display())))?;
    // The full check (every field, with lines) is the suite's, before any case runs.
    let has_probe = text
        .parse::<toml::Table>()
        .map(|t| t.contains_key("probe"))
        .unwrap_or(false);
    let out = prepare_out(root, out, "bench-last")?;
    let features: &[&str] = if has_probe {
        &["sacbench-suites/probe-rs"]
    } else {
        &[]
    };
    let (suite, device) = build_with(root, features)?;
    run_suite(
        &suite,
        &device,
        &out,
        &SuiteArgs {
            filter,
            show: true,
            rig: Some(&rig),
            dut: dut.as_deref(),
            keep_images,
            ..SuiteArgs::default()
        },
    )?;
    summarise(&suite, &out)
}

fn prepare_out(root: &Path, out: Option<PathBuf>, last: &str) -> Result<PathBuf, Failure> {
    match out {
        Some(dir)
            if dir.exists()
                && dir
                    .read_dir()
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(true) =>
        {
            Err(Failure::Setup(format!(
                "--out {}: directory exists and is not empty; name a new one",
                dir.display()
            )))
        }
        Some(dir) => Ok(dir),
        None => {
            let dir = target_dir(root).join("sacbench").join(last);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| Failure::Setup(format!("clearing {}: {e}", dir.display())))?;
            }
            Ok(dir)
        }
    }
}

/// Prints a run's summary; the run's verdict: `Ok` if every case passed
/// (or did not apply), `Failed` if one failed, `Setup` (exit 2) if none
/// failed but the bench could not run one.
fn summarise(suite: &Path, dir: &Path) -> Result<(), Failure> {
    let status = Command::new(suite)
        .env("SACBENCH_SUMMARISE", dir)
        .status()
        .map_err(|e| Failure::Setup(format!("{}: {e}", suite.display())))?;
    summary_verdict(status, dir)
}

/// The verdict of a run the suite binary summarised (its exit status).
fn summary_verdict(status: std::process::ExitStatus, dir: &Path) -> Result<(), Failure> {
    let page = dir.join("index.html");
    match status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(Failure::Failed(format!(
            "cases failed; see {}",
            page.display()
        ))),
        Some(2) => Err(Failure::Setup(format!(
            "the bench could not run some cases (error outcomes, nothing failed); see {}",
            page.display()
        ))),
        _ => Err(Failure::Setup(format!(
            "{}: no report written (see the error above)",
            dir.display()
        ))),
    }
}

/// `cargo xtask report DIR` and `cargo xtask report --merge OUT DIR…`: the
/// suite binary reads and writes the reports (xtask stays small). The
/// workspace's debug build, as `cargo xtask faults --dev` makes it:
/// rendering needs no optimisation, and after `cargo xtask test` or a
/// shard's build it is there already (building the suite alone would
/// resolve other features and relink it each time).
pub fn report(root: &Path, merge: Option<&Path>, dirs: &[PathBuf]) -> Result<(), Failure> {
    let usage = report_usage(merge, dirs)?;
    let mut b = cargo();
    b.args([
        "build",
        "--quiet",
        "-p",
        "sacbench-suites",
        "--bin",
        "sacbench-suite",
    ]);
    run(root, b, "building the suite's report writer (debug)")?;
    let suite = target_dir(root).join("debug").join("sacbench-suite");
    match usage {
        ReportUsage::Summarise(dir) => summarise(&suite, dir),
        ReportUsage::Merge(out) => {
            let status = Command::new(&suite)
                .env("SACBENCH_MERGE", out)
                .args(dirs)
                .status()
                .map_err(|e| Failure::Setup(format!("{}: {e}", suite.display())))?;
            summary_verdict(status, out)
        }
    }
}

/// What `cargo xtask report` was asked.
#[derive(Debug, PartialEq)]
enum ReportUsage<'a> {
    /// Summarise the one run directory.
    Summarise(&'a Path),
    /// Merge the shards into this new run directory, then summarise it.
    Merge(&'a Path),
}

fn report_usage<'a>(
    merge: Option<&'a Path>,
    dirs: &'a [PathBuf],
) -> Result<ReportUsage<'a>, Failure> {
    match (merge, dirs) {
        (None, [dir]) => Ok(ReportUsage::Summarise(dir)),
        (None, _) => Err(Failure::Setup(
            "report: one run directory (or --merge OUT DIR… to merge shards)".into(),
        )),
        (Some(out), dirs) if dirs.iter().any(|d| d == out) => Err(Failure::Setup(format!(
            "report --merge {}: the merged run goes to a new directory, not one of the shards",
            out.display()
        ))),
        (Some(out), _) => Ok(ReportUsage::Merge(out)),
    }
}

/// The fault catalogue, from the device and the gateway themselves: (name, case ids).
fn catalogue(device: &Path) -> Result<Vec<(String, Vec<String>)>, Failure> {
    let mut all = Vec::new();
    for exe in [device.to_path_buf(), device.with_file_name("gateway")] {
        let out = Command::new(&exe)
            .arg("--list-faults")
            .output()
            .map_err(|e| Failure::Setup(format!("{}: {e}", exe.display())))?;
        all.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| {
                    let mut f = l.split_whitespace();
                    Some((
                        f.next()?.to_string(),
                        f.next()?.split(',').map(str::to_owned).collect(),
                    ))
                }),
        );
    }
    Ok(all)
}

/// Suite runs of the fault matrix at once: each is a process with its own
/// sandbox and cases that mostly wait, so they share the machine well.
const MATRIX_PARALLEL: usize = 6;

/// One run of the matrix: the reference device (`None`) or a fault, and the
/// cases it must fail.
struct MatrixJob {
    fault: Option<String>,
    cases: Vec<String>,
}

/// `cargo xtask faults`: the good device passes everything; each fault
/// fails every case the catalogue names for it. The runs go side by side.
/// Prints the matrix.
pub fn faults(root: &Path, dev: bool) -> Result<(), Failure> {
    let (suite, device) = if dev { dev_build(root)? } else { build(root)? };
    let started = std::time::Instant::now();
    let base = target_dir(root).join("sacbench").join("faults");
    let _ = std::fs::remove_dir_all(&base);
    let implemented = case_ids(&suite, &[], None)?;
    let catalogue = catalogue(&device)?;
    let mut misses = Vec::new();
    let mut jobs = vec![MatrixJob {
        fault: None,
        cases: implemented.clone(),
    }];
    for (fault, cases) in &catalogue {
        let present: Vec<String> = cases
            .iter()
            .filter(|c| implemented.contains(c))
            .cloned()
            .collect();
        for case in cases.iter().filter(|c| !implemented.contains(c)) {
            misses.push(format!("{case} (for {fault}) is not implemented"));
        }
        if !present.is_empty() {
            jobs.push(MatrixJob {
                fault: Some(fault.clone()),
                cases: present,
            });
        }
    }
    // The reference run proves the emulated suite needs nothing on PATH but
    // a shell and the Rust toolchain (no `ip`, `socat`, `tshark` …).
    let bare_path = bare_path(&base)?;
    let bar = ProgressBar::new(jobs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} runs {msg}").expect("template"),
    );
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<(usize, Result<SuiteRun, Failure>)>> = Default::default();
    std::thread::scope(|s| {
        for _ in 0..MATRIX_PARALLEL {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(job) = jobs.get(i) else { return };
                let name = job.fault.clone().unwrap_or_else(|| "none".into());
                let only = job.cases.join(",");
                let r = run_suite(
                    &suite,
                    &device,
                    &base.join(&name),
                    &SuiteArgs {
                        fault: job.fault.as_deref(),
                        only: job.fault.as_ref().map(|_| only.as_str()),
                        path: job.fault.is_none().then_some(bare_path.as_os_str()),
                        ..SuiteArgs::default()
                    },
                );
                bar.set_message(name);
                bar.inc(1);
                results.lock().expect("results").push((i, r));
            });
        }
    });
    bar.finish_and_clear();
    let mut results = results.into_inner().expect("results");
    results.sort_by_key(|(i, _)| *i);
    let mut rows = Vec::new();
    let mut good = 0;
    for (i, r) in results {
        let job = &jobs[i];
        let r = r?;
        let verdict = |case: &str| r.results.get(case).cloned();
        let Some(fault) = &job.fault else {
            for case in &job.cases {
                match verdict(case).as_deref() {
                    Some("passed") => good += 1,
                    _ => misses.push(format!("the reference device fails {case}")),
                }
            }
            continue;
        };
        let mut cells = Vec::new();
        for case in &job.cases {
            // Caught only by a device failure: a bench `error` says nothing.
            let cell = match verdict(case).as_deref() {
                Some("failed") => "caught",
                _ => {
                    misses.push(format!("{fault} does not fail {case}"));
                    "MISSED"
                }
            };
            cells.push(format!("{case}:{cell}"));
        }
        // A caught fault's run is evidence no one needs; a missed one's
        // stays for reading.
        if cells.iter().all(|c| c.ends_with(":caught")) {
            let _ = std::fs::remove_dir_all(base.join(fault));
        }
        rows.push(format!("{fault:<20} {}", cells.join("  ")));
    }
    println!("fault matrix (fault × the cases that must catch it):");
    for r in &rows {
        println!("  {r}");
    }
    println!(
        "reference device: {} cases, {good} passed with PATH={}; {} runs, {MATRIX_PARALLEL} at a time, in {:.0} s",
        implemented.len(),
        bare_path.to_string_lossy(),
        jobs.len(),
        started.elapsed().as_secs_f64()
    );
    if misses.is_empty() {
        println!("complete: every fault is caught by every case named for it");
        Ok(())
    } else {
        for m in &misses {
            println!("MISS  {m}");
        }
        Err(Failure::Failed(format!(
            "{} misses in the fault matrix",
            misses.len()
        )))
    }
}

/// A `PATH` of only a shell (`sh`, linked into `base/bare-path`) and the
/// Rust toolchain's directory (where cargo is).
fn bare_path(base: &Path) -> Result<std::ffi::OsString, Failure> {
    let shell_dir = base.join("bare-path");
    std::fs::create_dir_all(&shell_dir)
        .map_err(|e| Failure::Setup(format!("{}: {e}", shell_dir.display())))?;
    let sh = shell_dir.join("sh");
    let _ = std::fs::remove_file(&sh);
    std::os::unix::fs::symlink("/bin/sh", &sh)
        .map_err(|e| Failure::Setup(format!("{}: {e}", sh.display())))?;
    let cargo = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .ok_or_else(|| Failure::Setup("CARGO is not set: run this through `cargo xtask`".into()))?;
    let toolchain = cargo.parent().unwrap_or(Path::new("/")).to_path_buf();
    std::env::join_paths([shell_dir, toolchain])
        .map_err(|e| Failure::Setup(format!("the bare PATH: {e}")))
}

/// `ni::NI-01_tcp_scan` → `NI-01`.
fn case_id(name: &str) -> String {
    let tail = name.rsplit("::").next().unwrap_or(name);
    tail.split('_').next().unwrap_or(tail).to_string()
}

/// `cargo xtask soak N [--dut DUT.toml] [FILTER]`: the suite N times in a
/// row; lists every case that did not pass even once, with the runs it
/// failed in (whose run directories are kept; clean runs are deleted).
pub fn soak(root: &Path, runs: u32, dut: Option<&Path>, filter: &[String]) -> Result<(), Failure> {
    if runs == 0 {
        return Err(Failure::Setup("soak: N must be at least 1".into()));
    }
    let dut = dut.map(absolute_file).transpose()?;
    let (suite, device) = build(root)?;
    let base = target_dir(root).join("sacbench").join("soak");
    let _ = std::fs::remove_dir_all(&base);
    let mut bad: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut walls = Vec::new();
    let mut cases = 0;
    for i in 1..=runs {
        let out = base.join(format!("run-{i:03}"));
        let started = std::time::Instant::now();
        let r = run_suite(
            &suite,
            &device,
            &out,
            &SuiteArgs {
                filter,
                dut: dut.as_deref(),
                ..SuiteArgs::default()
            },
        )?;
        let wall = started.elapsed();
        walls.push(wall.as_secs_f64());
        cases = r.results.len();
        let failed: Vec<String> = r
            .results
            .iter()
            .filter(|(_, v)| !matches!(v.as_str(), "passed" | "not_applicable" | "ignored"))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &failed {
            bad.entry(id.clone()).or_default().push(i);
        }
        if failed.is_empty() {
            let _ = std::fs::remove_dir_all(&out);
            eprintln!("soak run {i}/{runs}: {cases} cases passed ({wall:.1?})");
        } else {
            eprintln!(
                "soak run {i}/{runs}: FAILED {} ({wall:.1?}); kept {}",
                failed.join(", "),
                out.display()
            );
        }
    }
    walls.sort_by(f64::total_cmp);
    let median = walls[walls.len() / 2];
    println!(
        "soak: {runs} runs of {cases} cases; wall time median {median:.1} s, max {:.1} s",
        walls.last().copied().unwrap_or(0.0)
    );
    if bad.is_empty() {
        println!("soak: every case passed every run");
        return Ok(());
    }
    for (id, failed_in) in &bad {
        println!(
            "soak: {id} failed {} of {runs} runs (runs {failed_in:?}; {})",
            failed_in.len(),
            base.display()
        );
    }
    Err(Failure::Failed(format!(
        "{} case(s) failed at least once",
        bad.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_summarises_one_run_or_merges_into_a_new_directory() {
        let one = [PathBuf::from("run")];
        assert_eq!(
            report_usage(None, &one).ok(),
            Some(ReportUsage::Summarise(Path::new("run")))
        );
        let two = [PathBuf::from("a"), PathBuf::from("b")];
        assert!(report_usage(None, &two).is_err(), "two runs need --merge");
        assert_eq!(
            report_usage(Some(Path::new("out")), &two).ok(),
            Some(ReportUsage::Merge(Path::new("out")))
        );
        assert!(
            report_usage(Some(Path::new("a")), &two).is_err(),
            "not into a shard"
        );
    }
}
