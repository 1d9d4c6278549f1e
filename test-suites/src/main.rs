//! `sacbench-suite`: the conformance suites as a cargo-test-compatible
//! harness (libtest-mimic: filters, `--list`, `--exact`, `--ignored`,
//! `--format json`), test names like `ni::NI-01_tcp_scan`.
//!
//! Options the libtest command line has no room for come from the
//! environment (`cargo xtask emulated` sets them):
//! - `SACBENCH_OUT`: the run directory (default: a new temporary one, kept);
//! - `SACBENCH_FAULT`: a fault switched on in the reference device;
//! - `SACBENCH_DEVICE_EXE`: the `device-native` executable (default: the
//!   one built next to this binary);
//! - `SACBENCH_RIG`: run on the lab rig this `rig.toml` describes, one case
//!   at a time (`cargo xtask bench --rig` sets it).
//!
//! For the emulated rig the process first enters the rig's sandbox
//! (namespaces), while it is single-threaded. A lab run stays in the host's
//! namespaces: its hub listens on the bench NIC.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use libtest_mimic::{Arguments, Failed, Trial};
use sacbench_rig::emulated::sandbox::{self, Sandbox};
use sacbench_suites::case::RunOptions;
use sacbench_suites::model::Outcome;
use sacbench_suites::{cases, runner};

/// Emulated cases run at once unless `--test-threads` says otherwise.
const PARALLEL_CASES: usize = 8;

fn device_exe() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("SACBENCH_DEVICE_EXE") {
        return Ok(p.into());
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/debug/sacbench-suite, or target/debug/deps/<test binary>.
    for dir in me.ancestors().skip(1).take(2) {
        let p = dir.join("device-native");
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(format!(
        "device-native not found next to {} (build it: cargo build -p device-native, or set SACBENCH_DEVICE_EXE)",
        me.display()
    ))
}

fn main() {
    // `cargo xtask report DIR`: summarise a finished run and regenerate its page.
    if let Some(dir) = std::env::var_os("SACBENCH_SUMMARISE") {
        let dir = PathBuf::from(dir);
        match sacbench_suites::report::read_run(&dir).and_then(|r| {
            sacbench_suites::report::regenerate_html(&dir)?;
            Ok(r)
        }) {
            Ok(r) => {
                print!("{}", sacbench_suites::report::summarise(&r));
                println!("report: {}", dir.join("index.html").display());
                std::process::exit(if r.summary.failed > 0 { 1 } else { 0 });
            }
            Err(e) => {
                eprintln!("sacbench-suite: {}: {e:#}", dir.display());
                std::process::exit(2);
            }
        }
    }
    let mut args = Arguments::from_args();
    let rig_file = std::env::var_os("SACBENCH_RIG").map(PathBuf::from);
    if rig_file.is_none() && args.test_threads.is_none() {
        // Emulated cases spend their time waiting (on the device's backoff,
        // the hub, timers), not computing: libtest's default of one case
        // per CPU left a 2-core machine idle most of the run.
        args.test_threads = Some(PARALLEL_CASES);
    }
    if let Some(f) = &rig_file {
        // One DUT: one case at a time. A bad rig file stops the run before any case.
        args.test_threads = Some(1);
        if let Err(e) = sacbench_rig::lab::RigConfig::load(f) {
            eprintln!("sacbench-suite: {e}");
            std::process::exit(2);
        }
    }
    // Listing needs no rig; a lab run uses the host's.
    if !args.list && rig_file.is_none() {
        match sandbox::enter() {
            Ok(Sandbox::Finished(status)) => std::process::exit(sandbox::exit_code(status)),
            Ok(Sandbox::Inside) => {}
            Err(e) => {
                eprintln!("sacbench-suite: {e}");
                std::process::exit(2);
            }
        }
    }
    let out = match std::env::var_os("SACBENCH_OUT") {
        Some(p) => PathBuf::from(p),
        None => std::env::temp_dir().join(format!("sacbench-run-{}", std::process::id())),
    };
    // The emulated board (and BoardProcess cases) need the reference firmware.
    let device = if args.list || rig_file.is_some() {
        Ok(PathBuf::new())
    } else {
        device_exe()
    };
    let device = match device {
        Ok(d) => d,
        Err(e) => {
            eprintln!("sacbench-suite: {e}");
            std::process::exit(2);
        }
    };
    let opts = RunOptions {
        device_exe: device,
        out,
        fault: std::env::var("SACBENCH_FAULT").ok(),
        rig_file,
    };
    let started = sacbench_suites::report::now_rfc3339();
    let selected: Vec<String> = cases::all()
        .into_iter()
        .filter(|d| selected_by(&args, &d.name()))
        .map(|d| d.id.to_string())
        .collect();
    // `SACBENCH_ONLY=NI-01,MT-03`: just these cases (the fault matrix's runs).
    let only: Option<Vec<String>> = std::env::var("SACBENCH_ONLY")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let wanted = |id: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == id));
    let selected: Vec<String> = selected.into_iter().filter(|id| wanted(id)).collect();
    let trials = cases::all()
        .into_iter()
        .filter(|def| wanted(def.id))
        .map(|def| {
            let opts = opts.clone();
            Trial::test(def.name(), move || {
                let r = runner::run_case(def, &opts);
                match r.outcome {
                    Outcome::Passed => Ok(()),
                    Outcome::Ignored => Ok(()),
                    Outcome::Failed => Err(Failed::from(format!(
                        "{}: expected {}; saw {}; look at {}",
                        r.id, r.expected, r.seen, r.look_at
                    ))),
                }
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if !args.list && std::env::var_os("SACBENCH_OUT").is_some() {
        if let Err(e) =
            sacbench_suites::report::assemble(&opts.out, &selected, &started, opts.fault.as_deref())
        {
            eprintln!("sacbench-suite: writing the report: {e:#}");
            std::process::exit(2);
        }
        println!("report: {}", opts.out.join("index.html").display());
    }
    conclusion.exit();
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
