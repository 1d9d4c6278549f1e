//! The suites' command line, shared by the `sacbench-suite` binary and the
//! `conformance` test target (`cargo nextest run --profile conformance`):
//! a cargo-test-compatible harness (libtest-mimic: filters, `--list`,
//! `--exact`, `--ignored`, `--format json`), test names like
//! `ni::NI-01_tcp_scan`.
//!
//! Options the libtest command line has no room for come from the
//! environment (`cargo xtask emulated` sets them):
//! - `SACBENCH_OUT`: the run directory. Default: for `sacbench-suite`, a new
//!   temporary one (kept, no report written); for the `conformance` target,
//!   `target/sacbench/conformance/<NEXTEST_RUN_ID>` (one per nextest run);
//! - `SACBENCH_DUT`: the device under test's DUT file (default: the
//!   reference device's, `firmware/device-native/dut.toml`);
//! - `SACBENCH_FAULT`: a fault switched on in the device under test (one
//!   its DUT file offers, or one of the reference gateway's);
//! - `SACBENCH_BIN`: where sacbench's own executables are (`device-native`,
//!   `gateway`, `modbus-leaf`; the DUT file's `{sacbench_bin}`; default: the
//!   directory of this binary or its parent);
//! - `SACBENCH_KEEP_IMAGES=1`: keep the flash and firmware images of
//!   passing cases too (`--keep-images`);
//! - `SACBENCH_RIG`: run on the lab rig this `rig.toml` describes, one case
//!   at a time (`cargo xtask bench --rig` sets it);
//! - `SACBENCH_COMMIT`: the commit the run is of (default: `git rev-parse
//!   HEAD` of the source tree), recorded in `run.json` and `report.json`.
//!
//! A run directory may be filled by several processes, one after the other
//! or at once (nextest runs one case per process): each case writes
//! `cases/<ID>/result.json`, the first process writes `run.json` (commit,
//! DUT, fault, rig) and the others must match it (under nextest; by hand a
//! run of another one replaces the old run), and every process ends by
//! rebuilding the reports from all the results there ([`crate::run_dir`]).
//!
//! For the emulated rig the process first enters the rig's sandbox
//! (namespaces), while it is single-threaded. A lab run stays in the host's
//! namespaces: its hub listens on the bench NIC.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};
use sacbench_rig::emulated::sandbox;

use crate::case::RunOptions;
use crate::model::Outcome;
use crate::{cases, run_dir, runner};

/// Which executable runs the harness: it decides where a run goes by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `sacbench-suite`: the whole selection in one process (8 cases at a
    /// time); with no `SACBENCH_OUT`, a temporary directory and no report.
    Suite,
    /// The `conformance` test target under nextest (one case per process):
    /// with no `SACBENCH_OUT`, `target/sacbench/conformance/<NEXTEST_RUN_ID>`,
    /// which every process of the run shares.
    Conformance,
}

/// Emulated cases run at once unless `--test-threads` says otherwise.
const PARALLEL_CASES: usize = 8;

/// Where sacbench's own executables are: `SACBENCH_BIN`, or the directory
/// holding `device-native` next to this binary.
fn sacbench_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("SACBENCH_BIN") {
        return Ok(p.into());
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/debug/sacbench-suite, or target/debug/deps/<test binary>.
    for dir in me.ancestors().skip(1).take(2) {
        if dir.join("device-native").is_file() {
            return Ok(dir.to_path_buf());
        }
    }
    Err(format!(
        "device-native not found next to {} (build it: cargo build -p device-native, or set SACBENCH_BIN)",
        me.display()
    ))
}

fn exit_usage(e: impl std::fmt::Display) -> ! {
    eprintln!("sacbench-suite: {e}");
    // A labgrid place acquired before the problem was found goes back first.
    if let Err(e) = crate::labgrid_hold::release() {
        eprintln!("sacbench-suite: {e}");
    }
    std::process::exit(2);
}

/// Runs the DUT file's `[emulated] build` (if any) once, before any case and
/// outside the rig's namespaces (a build may fetch what it needs), in the
/// DUT file's folder, its output on stderr; a failure stops the run (exit
/// 2), naming it. The wrappers and flags of a cargo that started this suite
/// (a test run, xtask's linted build) are not the DUT's: left out.
fn build_dut(dut: &sacbench_rig::dut::DutFile, sacbench_bin: &std::path::Path) {
    let Some(argv) = dut.build_argv(sacbench_bin) else {
        return;
    };
    eprintln!(
        "sacbench-suite: building the DUT ([emulated] build of {}): {}",
        dut.file.display(),
        argv.join(" ")
    );
    let status = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(dut.dir())
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => exit_usage(format!(
            "{}: [emulated] build {:?} failed ({s})",
            dut.file.display(),
            argv
        )),
        Err(e) => exit_usage(format!(
            "{}: [emulated] build {:?} could not run: {e}",
            dut.file.display(),
            argv
        )),
    }
}

/// Runs the harness with this process's arguments and environment; never returns.
pub fn main(target: Target) -> ! {
    // Re-executed by the emulated rig to run a tool in one of its network
    // namespaces: become that tool, before anything else reads the arguments.
    sandbox::exec_if_asked();
    // `cargo xtask report --merge OUT DIR…`: one run directory from shards.
    if let Some(out) = std::env::var_os("SACBENCH_MERGE") {
        let out = PathBuf::from(out);
        let shards: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
        match crate::report::merge_dirs(&out, &shards) {
            Ok(merged) => {
                // A case whose process died before writing its result (or a
                // shard not given) is in no shard: say which, the report cannot.
                let missing: Vec<&str> = cases::all()
                    .iter()
                    .map(|d| d.id)
                    .filter(|id| !merged.cases.iter().any(|c| c.id == *id))
                    .collect();
                if !missing.is_empty() {
                    eprintln!(
                        "sacbench-suite: {} of the catalogue's {} cases merged; in no shard: {}",
                        merged.cases.len(),
                        cases::all().len(),
                        missing.join(", ")
                    );
                }
            }
            Err(e) => {
                // 3, not 2: 2 means the run had bench errors.
                eprintln!("sacbench-suite: merging into {}: {e:#}", out.display());
                std::process::exit(3);
            }
        }
        summarise_and_exit(&out);
    }
    // `cargo xtask report DIR`: summarise a finished run and regenerate its page.
    if let Some(dir) = std::env::var_os("SACBENCH_SUMMARISE") {
        summarise_and_exit(&PathBuf::from(dir));
    }
    let mut args = Arguments::from_args();
    let rig_file = std::env::var_os("SACBENCH_RIG").map(PathBuf::from);
    // The device under test: a bad DUT file or a fault it does not offer
    // stops the run before any case, with one line.
    let dut_file = std::env::var_os("SACBENCH_DUT")
        .map(PathBuf::from)
        .unwrap_or_else(crate::case::reference_dut_file);
    let dut = match sacbench_rig::dut::DutFile::load(&dut_file) {
        Ok(d) => Arc::new(d),
        Err(e) => exit_usage(e),
    };
    let fault = std::env::var("SACBENCH_FAULT")
        .ok()
        .filter(|f| !f.is_empty());
    if let Some(f) = &fault {
        if !crate::case::is_gateway_fault(f) {
            if let Err(e) = dut.check_fault(f) {
                exit_usage(e);
            }
        }
    }
    // `SACBENCH_ONLY=NI-01,MT-03`: just these cases (the fault matrix's runs).
    let only: Option<Vec<String>> = std::env::var("SACBENCH_ONLY")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let wanted = |id: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == id));
    let selected_defs: Vec<_> = cases::all()
        .into_iter()
        .filter(|d| selected_by(&args, &d.name()) && wanted(d.id))
        .collect();
    if selected_defs.is_empty() && !args.list {
        exit_usage(format!(
            "no case matches the filter {:?}{} (`cargo xtask emulated` with no filter runs all; `sacbench-suite --list` lists them)",
            args.filter.as_deref().unwrap_or(""),
            only.as_ref().map_or(String::new(), |o| format!(" and SACBENCH_ONLY={}", o.join(",")))
        ));
    }
    // The programs the selected cases run: all there, or one line naming
    // the packages, before any case (and before the sandbox).
    if !args.list {
        let needs = crate::preflight::needed(&selected_defs, &dut, fault.as_deref());
        let path = std::env::var_os("PATH").unwrap_or_default();
        if let Some(line) = crate::preflight::check(&needs, &path) {
            exit_usage(line);
        }
    }
    if rig_file.is_none() && args.test_threads.is_none() {
        // Emulated cases spend their time waiting (on the device's backoff,
        // the hub, timers), not computing: libtest's default of one case
        // per CPU left a 2-core machine idle most of the run.
        args.test_threads = Some(PARALLEL_CASES);
    }
    let mut lab_config = None;
    if let Some(f) = &rig_file {
        // One DUT: one case at a time. A bad rig file stops the run before any case.
        args.test_threads = Some(1);
        let mut config = sacbench_rig::lab::RigConfig::load(f).unwrap_or_else(|e| exit_usage(e));
        if !args.list && config.labgrid.is_some() {
            // A labgrid place: reserved and acquired for the whole run (a
            // signal while waiting gives up), released before every exit.
            crate::interrupt::install();
            config = crate::labgrid_hold::acquire(&config).unwrap_or_else(|e| exit_usage(e));
            if let Some(sig) = crate::interrupt::interrupted() {
                exit_usage(format!(
                    "interrupted by {sig} while acquiring the labgrid place"
                ));
            }
        }
        if !args.list {
            // The hardware it names is there (serial port, relay, hub address).
            if let Err(e) = sacbench_rig::lab::preflight::preflight(&config) {
                exit_usage(crate::labgrid_hold::blame(&config, e));
            }
            // And the rig opens as a whole (the debug probe too).
            if let Err(e) = sacbench_rig::lab::LabRig::from_config(config.clone()) {
                exit_usage(e);
            }
            // A rig that can run none of the selected device cases proves
            // nothing about the device (the self-tests pass without one).
            let caps = config.capabilities();
            let defs: Vec<_> = selected_defs
                .iter()
                .filter(|d| !d.self_test && d.dut.not_applicable(&dut).is_none())
                .collect();
            let runnable = defs.iter().any(|d| caps.require(d.needs).is_ok());
            if !defs.is_empty() && !runnable {
                let missing = defs
                    .iter()
                    .find_map(|d| caps.require(d.needs).err())
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                exit_usage(format!(
                    "{}: the rig can run none of the selected device cases ({missing}); add what they need to the rig file",
                    f.display()
                ));
            }
        }
        lab_config = Some(config);
    }
    // Where the run goes, and whether its reports are written there.
    let (out, writes_report) = match (std::env::var_os("SACBENCH_OUT"), target) {
        (Some(p), _) if PathBuf::from(&p).is_relative() && under_nextest() => exit_usage(format!(
            "SACBENCH_OUT={} is a relative path, and nextest runs each case in the package's \
             directory (test-suites/), not where it was started: give an absolute one \
             (SACBENCH_OUT=$PWD/{})",
            p.to_string_lossy(),
            p.to_string_lossy()
        )),
        (Some(p), _) => (PathBuf::from(p), true),
        (None, Target::Conformance) => {
            let out = run_dir::nextest_default();
            // The sandboxed run re-executes this program: it must find the
            // same directory, not one named after its own (namespaced) pid.
            std::env::set_var("SACBENCH_OUT", &out);
            (out, true)
        }
        (None, Target::Suite) => (
            std::env::temp_dir().join(format!("sacbench-run-{}", std::process::id())),
            false,
        ),
    };
    // sacbench's own executables: the reference board and gateway, the
    // emulated legacy devices (a DUT file names them with {sacbench_bin}).
    let bin = if args.list || rig_file.is_some() {
        Ok(PathBuf::new())
    } else {
        sacbench_bin()
    };
    let sacbench_bin = bin.unwrap_or_else(|e| exit_usage(e));
    if !args.list && rig_file.is_none() {
        build_dut(&dut, &sacbench_bin);
    }
    let rig_info = match &rig_file {
        None => crate::model::RigInfo {
            kind: "emulated".into(),
            name: "emulated rig (one topology per case)".into(),
        },
        Some(f) => crate::model::RigInfo {
            kind: "lab".into(),
            name: match crate::labgrid_hold::describe() {
                Some(place) => format!("{} ({place})", f.display()),
                None => f.display().to_string(),
            },
        },
    };
    let dut_info = crate::model::DutInfo {
        name: dut.name.clone(),
        file: dut.file.display().to_string(),
        implements: dut.implements.iter().map(|p| p.to_string()).collect(),
        sha256: run_dir::file_sha256(&dut.file),
    };
    // The run directory's identity: this process's commit, DUT, fault and
    // rig, or the ones already there, which must be the same (a directory
    // holds one run, however many processes fill it).
    let meta = if args.list || !writes_report {
        None
    } else {
        let mine = run_dir::RunMeta {
            started_at: crate::report::now_rfc3339(),
            commit: run_dir::commit(),
            rig: rig_info,
            dut: Some(dut_info),
            fault: fault.clone(),
        };
        // Under nextest other processes fill the directory too: another
        // run there is a mistake. By hand, a new run replaces an old one.
        let other = if target == Target::Conformance || under_nextest() {
            run_dir::OtherRun::Refuse
        } else {
            run_dir::OtherRun::Replace
        };
        let (meta, replaced) =
            run_dir::join(&out, mine, other).unwrap_or_else(|e| exit_usage(format!("{e:#}")));
        if let Some(m) = replaced {
            eprintln!(
                "sacbench-suite: {} held a run of {} {}; this run of {} {} replaces it",
                out.display(),
                m.field,
                m.left,
                m.field,
                m.right
            );
        }
        Some(meta)
    };
    // Listing needs no rig; a lab run uses the host's.
    if !args.list && rig_file.is_none() {
        sandbox::enter_or_exit("sacbench-suite: ");
    }
    crate::interrupt::install();
    let opts = RunOptions {
        dut,
        sacbench_bin,
        out,
        fault,
        rig_file,
        lab_config,
        keep_images: std::env::var_os("SACBENCH_KEEP_IMAGES").is_some_and(|v| v == "1"),
    };
    let mut defs: Vec<_> = cases::all()
        .into_iter()
        .filter(|def| wanted(def.id))
        .collect();
    if !args.list {
        // Long cases start first; `--list` and the report keep catalogue order.
        defs = cases::in_run_order(defs);
    }
    let trials = defs
        .into_iter()
        .map(|def| {
            let opts = opts.clone();
            Trial::test(def.name(), move || {
                // Interrupted: no new case starts.
                if crate::interrupt::interrupted().is_some() {
                    return Ok(());
                }
                let r = runner::run_case(def, &opts);
                match r.outcome {
                    Outcome::Passed | Outcome::Ignored | Outcome::NotApplicable => Ok(()),
                    Outcome::Failed => Err(Failed::from(format!(
                        "{}: expected {}; saw {}; look at {}",
                        r.id, r.expected, r.seen, r.look_at
                    ))),
                    Outcome::Error => {
                        Err(Failed::from(format!("{}: bench error: {}", r.id, r.seen)))
                    }
                }
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    // The labgrid place goes back before the run ends, whatever its outcome;
    // a release that failed is a bench error (exit 2) unless a case failed.
    let released = crate::labgrid_hold::release();
    if let Err(e) = &released {
        eprintln!("sacbench-suite: {e}");
    }
    if let Some(meta) = &meta {
        // Every result in the directory, this process's and the others'.
        if let Err(e) = crate::report::assemble(&opts.out, meta, crate::interrupt::interrupted()) {
            eprintln!("sacbench-suite: writing the report: {e:#}");
            std::process::exit(2);
        }
        println!("report: {}", opts.out.join("index.html").display());
    }
    if let Some(sig) = crate::interrupt::interrupted() {
        eprintln!("sacbench-suite: interrupted by {sig}; the report holds what ran");
        std::process::exit(130);
    }
    if released.is_err() && !conclusion.has_failed() {
        std::process::exit(2);
    }
    conclusion.exit();
}

/// Whether nextest started this process (it gives each the run's id).
fn under_nextest() -> bool {
    std::env::var_os("NEXTEST_RUN_ID").is_some()
}

/// Prints the summary of run directory `dir` after regenerating its page;
/// exits 1 if a case failed, 2 if none failed but one was a bench error, 3
/// if `dir` holds no readable report, 0 otherwise.
fn summarise_and_exit(dir: &Path) -> ! {
    match crate::report::read_run(dir).and_then(|r| {
        crate::report::regenerate(dir)?;
        Ok(r)
    }) {
        Ok(r) => {
            print!("{}", crate::report::summarise(&r));
            println!("report: {}", dir.join("index.html").display());
            std::process::exit(if r.summary.failed > 0 {
                1
            } else if r.summary.error > 0 {
                2
            } else {
                0
            });
        }
        Err(e) => {
            // 3, not 2: 2 means the run had bench errors.
            eprintln!("sacbench-suite: {}: {e:#}", dir.display());
            std::process::exit(3);
        }
    }
}

/// Whether libtest's filter/skip options select `name` (as libtest-mimic decides).
fn selected_by(args: &Arguments, name: &str) -> bool {
    let matches = |pat: &str| {
        if args.exact {
            name == pat
        } else {
            name.contains(pat)
        }
    };
    let filtered = match &args.filter {
        Some(f) => matches(f),
        None => true,
    };
    filtered && !args.skip.iter().any(|s| matches(s))
}
