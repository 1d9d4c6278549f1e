//! `sacbench-suite`: the conformance suites as a cargo-test-compatible
//! harness (libtest-mimic: filters, `--list`, `--exact`, `--ignored`,
//! `--format json`), test names like `ni::NI-01_tcp_scan`.
//!
//! Options the libtest command line has no room for come from the
//! environment (`cargo xtask emulated` sets them):
//! - `SACBENCH_OUT`: the run directory (default: a new temporary one, kept);
//! - `SACBENCH_FAULT`: a fault switched on in the reference device;
//! - `SACBENCH_DEVICE_EXE`: the `device-native` executable (default: the
//!   one built next to this binary).
//!
//! The process first enters the emulated rig's sandbox (namespaces), while
//! it is single-threaded.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use libtest_mimic::{Arguments, Failed, Trial};
use sacbench_rig::emulated::sandbox::{self, Sandbox};
use sacbench_suites::case::RunOptions;
use sacbench_suites::model::Outcome;
use sacbench_suites::{cases, runner};

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
    let args = Arguments::from_args();
    // Listing needs no rig.
    if !args.list {
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
    let device = if args.list {
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
    };
    let trials = cases::all()
        .into_iter()
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
    libtest_mimic::run(&args, trials).exit();
}
