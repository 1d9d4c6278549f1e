//! `cargo xtask <command>`: the one entry point of sacbench.
//!
//! Commands run cargo and the built tools as child processes; no shell scripts.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

mod peers;
mod suite;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "sacbench tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run the conformance suites on the emulated rig and write a report.
    Emulated {
        /// The device under test's DUT file (default: the reference
        /// device's, firmware/device-native/dut.toml; see docs/DUT.md).
        #[arg(long)]
        dut: Option<PathBuf>,
        /// Run only cases whose name contains this (libtest filter).
        filter: Option<String>,
        /// Switch this fault on in the device under test (one its DUT file offers).
        #[arg(long)]
        fault: Option<String>,
        /// The run directory (default: target/sacbench/emulated-last, replaced).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Keep the flash and firmware images of passing cases too.
        #[arg(long)]
        keep_images: bool,
    },
    /// Run the conformance suites on a lab rig (one DUT, one case at a time).
    Bench {
        /// The rig file (see README: "Writing a rig file").
        #[arg(long)]
        rig: PathBuf,
        /// The device under test's DUT file (default: the reference device's).
        #[arg(long)]
        dut: Option<PathBuf>,
        /// Run only cases whose name contains this (libtest filter).
        filter: Option<String>,
        /// The run directory (default: target/sacbench/bench-last, replaced).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Keep the flash and firmware images of passing cases too.
        #[arg(long)]
        keep_images: bool,
    },
    /// Benchmarks against real peers (mosquitto, tshark): prints the table and
    /// writes it to target/sacbench/perf/results.md.
    Perf {
        /// Small loads and 3 runs: checks the harness, not the figures.
        #[arg(long)]
        quick: bool,
    },
    /// Summarise a run in the terminal and regenerate its index.html and
    /// standards.csv; with --merge, first merge shards' run directories into
    /// one (docs/SCALING.md).
    Report {
        /// Merge the run directories DIR… (shards of one run: one commit,
        /// DUT, fault and rig; each case in one shard) into the new run
        /// directory OUT: report.json, junit.xml, index.html, standards.csv
        /// and every case's evidence.
        #[arg(long, value_name = "OUT")]
        merge: Option<PathBuf>,
        /// The run directory; with --merge, the shards' run directories.
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
    },
    /// The fault matrix: each fault must fail the cases named for it.
    Faults {
        /// Run the debug build (`cargo xtask test`'s) instead of building an
        /// optimised one: what CI does, building everything once.
        #[arg(long)]
        dev: bool,
    },
    /// Run the suite N times in a row and list every case that failed even once.
    Soak {
        /// How many runs.
        runs: u32,
        /// Run only cases whose name contains this (libtest filter).
        filter: Option<String>,
        /// The device under test's DUT file (default: the reference device's).
        #[arg(long)]
        dut: Option<PathBuf>,
    },
    /// Flash a lab rig's DUT (debug probe, built with probe-rs) and boot it.
    Flash {
        #[arg(long)]
        rig: PathBuf,
        #[arg(long)]
        image: Option<PathBuf>,
    },
    /// Run the test suite (cargo-nextest), passing extra arguments through.
    Test {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Check that the device crates build without std (part of `ci`).
    NoStd,
    /// What CI runs: fmt, the no_std check, clippy -D warnings (on everything as it is built for the tests; on the probe-rs backend in the background), tests, the fault matrix, cargo deny.
    Ci,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    let result = match cli.command {
        Task::Emulated {
            dut,
            filter,
            fault,
            out,
            keep_images,
        } => {
            let filter: Vec<String> = filter.into_iter().collect();
            suite::emulated(
                &root,
                dut.as_deref(),
                &filter,
                fault.as_deref(),
                out,
                keep_images,
            )
        }
        Task::Bench {
            rig,
            dut,
            filter,
            out,
            keep_images,
        } => {
            let filter: Vec<String> = filter.into_iter().collect();
            suite::bench(&root, &rig, dut.as_deref(), &filter, out, keep_images)
        }
        Task::Perf { quick } => perf(&root, quick),
        Task::Report { merge, dirs } => suite::report(&root, merge.as_deref(), &dirs),
        Task::Faults { dev } => suite::faults(&root, dev),
        Task::Soak { runs, filter, dut } => {
            let filter: Vec<String> = filter.into_iter().collect();
            suite::soak(&root, runs, dut.as_deref(), &filter)
        }
        Task::Flash { rig, image } => {
            let mut cmd = cargo();
            cmd.args([
                "run",
                "--quiet",
                "-p",
                "sacbench-rig",
                "--features",
                "probe-rs",
                "--bin",
                "sacbench-rig",
                "--",
                "flash",
                "--rig",
            ])
            .arg(&rig);
            if let Some(i) = image {
                cmd.arg("--image").arg(i);
            }
            run(&root, cmd, "flashing the lab rig")
        }
        Task::Test { args } => peers::ensure(&root).and_then(|_| test(&root, &args)),
        Task::NoStd => no_std_check(&root),
        Task::Ci => ci(&root),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Setup(msg)) => {
            eprintln!("xtask: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(msg)) => {
            eprintln!("xtask: {msg}");
            ExitCode::from(1)
        }
    }
}

/// `cargo xtask perf`: release builds of the hub and the harness, the debug
/// suite (as `cargo xtask emulated` runs it), then the harness.
fn perf(root: &Path, quick: bool) -> Result<(), Failure> {
    for (program, package) in [("mosquitto", "mosquitto"), ("tshark", "tshark")] {
        if !on_path(program) {
            return Err(Failure::Setup(format!(
                "{program} is needed for the benchmarks: apt-get install -y {package}"
            )));
        }
    }
    let mut b = cargo();
    b.args([
        "build",
        "--quiet",
        "--release",
        "-p",
        "hub-fixture",
        "-p",
        "sacbench-perf",
        "--bins",
    ]);
    run(root, b, "building the hub and the harness (release)")?;
    let (suite, _) = suite::build(root)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let dir = target.join("sacbench").join("perf");
    let mut cmd = Command::new(target.join("release").join("sacbench-perf"));
    cmd.arg("--hub-exe")
        .arg(target.join("release").join("hub-fixture"))
        .arg("--suite-exe")
        .arg(&suite)
        .arg("--work")
        .arg(dir.join("work"))
        .arg("--out")
        .arg(dir.join("results.md"));
    if quick {
        cmd.arg("--quick");
    }
    run(root, cmd, "the benchmarks")?;
    // The fault matrix, complete, timed (the build done above): its figure
    // joins the table.
    let started = std::time::Instant::now();
    suite::faults(root, false)?;
    let secs = started.elapsed().as_secs_f64();
    let row = format!(
        "| fault matrix, complete (every fault caught by every case named for it) | {secs:.0} s | — | — | ≤ 90 s | {} |\n",
        if secs <= 90.0 { "yes" } else { "**no**" }
    );
    print!("{row}");
    let results = dir.join("results.md");
    let mut text = std::fs::read_to_string(&results).unwrap_or_default();
    text.push_str(&row);
    std::fs::write(&results, text)
        .map_err(|e| Failure::Setup(format!("{}: {e}", results.display())))
}

/// Exit 1: something ran and failed. Exit 2: usage or setup.
pub(crate) enum Failure {
    Failed(String),
    Setup(String),
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Environment every later cargo build of this run gets (set once by
/// [`lint_while_building`]).
static BUILD_ENV: std::sync::OnceLock<Vec<(&'static str, String)>> = std::sync::OnceLock::new();

pub(crate) fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (k, v) in BUILD_ENV.get().into_iter().flatten() {
        c.env(k, v);
    }
    c
}

pub(crate) fn run(root: &Path, mut cmd: Command, what: &str) -> Result<(), Failure> {
    cmd.current_dir(root);
    eprintln!("xtask: {what}");
    let started = std::time::Instant::now();
    let status = cmd
        .status()
        .map_err(|e| Failure::Setup(format!("{what}: cannot start: {e}")))?;
    // Where CI's minutes go, step by step.
    eprintln!("xtask: {what}: {:.0} s", started.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(Failure::Failed(format!("{what} failed ({status})")))
    }
}

pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// The device crates must build without `std`. No thumbv7em target can be
/// installed here, so this checks what can be checked on the host: the
/// crates are `#![no_std]`, and with default features no dependency of theirs
/// has its `std` feature enabled.
fn no_std_check(root: &Path) -> Result<(), Failure> {
    for krate in NO_STD_CRATES {
        let lib = root.join(krate.1).join("src/lib.rs");
        let text = std::fs::read_to_string(&lib)
            .map_err(|e| Failure::Setup(format!("{}: {e}", lib.display())))?;
        // `#![no_std]` or `#![cfg_attr(not(feature = "std"), no_std)]`.
        if !text
            .lines()
            .any(|l| l.trim().starts_with("#![") && l.contains("no_std"))
        {
            return Err(Failure::Failed(format!(
                "{} lacks #![no_std]",
                lib.display()
            )));
        }
        let out = cargo()
            .current_dir(root)
            .args([
                "tree",
                "-p",
                krate.0,
                "-e",
                "features,normal",
                "--prefix",
                "none",
            ])
            .output()
            .map_err(|e| Failure::Setup(format!("cargo tree: {e}")))?;
        if !out.status.success() {
            return Err(Failure::Failed(format!(
                "cargo tree -p {}: {}",
                krate.0,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let tree = String::from_utf8_lossy(&out.stdout);
        let with_std: Vec<&str> = tree
            .lines()
            .filter(|l| l.contains("feature \"std\""))
            .collect();
        if !with_std.is_empty() {
            return Err(Failure::Failed(format!(
                "{} pulls in std through: {}",
                krate.0,
                with_std.join("; ")
            )));
        }
        eprintln!("xtask: {} is no_std (no dependency enables std)", krate.0);
    }
    Ok(())
}

/// `cargo clippy -p sacbench-rig --features probe-rs -- -D warnings` at the
/// lowest CPU priority, in its own target directory (a check build shares
/// nothing with the others, and must not wait on their lock); output in
/// `target/probe-rs-check.log`.
fn start_probe_rs_check(root: &Path) -> Result<std::process::Child, Failure> {
    let target = root.join("target");
    let mut cmd = Command::new("nice");
    cmd.args(["-n", "19"])
        .arg(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "clippy",
            "-p",
            "sacbench-rig",
            "--features",
            "probe-rs",
            "--",
            "-D",
            "warnings",
        ])
        .env("CARGO_TARGET_DIR", target.join("probe-rs-check"));
    start_logged(
        root,
        cmd,
        &target.join("probe-rs-check.log"),
        "cargo clippy -p sacbench-rig --features probe-rs",
    )
}

/// The MCU image's host tests, in its rig crate (`firmware/device-mcu/rig`,
/// a workspace of its own, linted by the clippy wrapper this process set):
/// the firmware's sans-IO parts compiled from its sources (EST's DER walks,
/// the provisioning record, SNTP, the verifier, the boot stage's slots), the
/// launcher and the DUT file. Its QEMU tests need TAP devices and minutes
/// each (the README's); CI judges the image itself through `mcu_qemu`.
/// Nice'd, beside the tests, as the probe-rs check is.
const MCU_HOST_TESTS: &[&str] = &[
    "--lib",
    "--test",
    "est",
    "--test",
    "provfmt",
    "--test",
    "board",
    "--test",
    "dut_file",
    "--test",
    "units",
    "--test",
    "boot_slots",
];

fn start_mcu_host_tests(root: &Path) -> Result<std::process::Child, Failure> {
    let mut cmd = Command::new("nice");
    cmd.args(["-n", "19"])
        .arg(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["test", "--quiet", "--manifest-path"])
        .arg(root.join("firmware/device-mcu/rig/Cargo.toml"))
        .args(MCU_HOST_TESTS)
        // Its own target directory, whatever the caller's: in the root's,
        // its build would hold the lock the test builds wait on.
        .env(
            "CARGO_TARGET_DIR",
            root.join("firmware/device-mcu/rig/target"),
        );
    start_logged(
        root,
        cmd,
        &root.join("target").join("mcu-host-tests.log"),
        "the MCU image's host tests (firmware/device-mcu/rig)",
    )
}

/// How much of a background step's log [`wait_background`] shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LogShown {
    /// The end of it, if the step failed.
    TailOnFailure,
    /// All of it, always (the fault matrix's table and the foreign
    /// devices' results are CI's evidence, not only their failures).
    Whole,
}

/// Waits for a [`start_logged`] step; shows its log (`root/target/<log>`)
/// as `shown` says, and names it on failure.
fn wait_background(
    root: &Path,
    mut child: std::process::Child,
    what: &str,
    log: &str,
    shown: LogShown,
) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    let status = child
        .wait()
        .map_err(|e| Failure::Setup(format!("waiting for {what}: {e}")))?;
    eprintln!(
        "xtask: waited {:.0} s for {what}",
        started.elapsed().as_secs_f64()
    );
    let text = || std::fs::read_to_string(root.join("target").join(log)).unwrap_or_default();
    if shown == LogShown::Whole {
        print!("{}", text());
    }
    if status.success() {
        return Ok(());
    }
    if shown == LogShown::TailOnFailure {
        let text = text();
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines[lines.len().saturating_sub(60)..] {
            eprintln!("{line}");
        }
    }
    Err(Failure::Failed(format!("{what} failed: see target/{log}")))
}

/// Builds `package`'s integration test `test` (as nextest would: `cargo
/// test --no-run`) and returns its executable.
fn test_executable(root: &Path, package: &str, test: &str) -> Result<PathBuf, Failure> {
    let out = cargo()
        .args(["test", "-p", package, "--test", test, "--no-run"])
        .args(["--message-format", "json-render-diagnostics"])
        .current_dir(root)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Failure::Setup(format!("cargo test --no-run --test {test}: {e}")))?;
    if !out.status.success() {
        return Err(Failure::Failed(format!(
            "cargo test --no-run --test {test} failed ({})",
            out.status
        )));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == test)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| Failure::Setup(format!("cargo named no executable for the test {test}")))
}

/// Starts `cmd` in `dir` in the background, its output in `log_path` (it
/// would interleave with the foreground's).
fn start_logged(
    dir: &Path,
    mut cmd: Command,
    log_path: &Path,
    what: &str,
) -> Result<std::process::Child, Failure> {
    if let Some(dir) = log_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let out = std::fs::File::create(log_path)
        .map_err(|e| Failure::Setup(format!("{}: {e}", log_path.display())))?;
    let err = out
        .try_clone()
        .map_err(|e| Failure::Setup(format!("{}: {e}", log_path.display())))?;
    eprintln!(
        "xtask: {what}, in the background; its output: {}",
        log_path.display()
    );
    cmd.current_dir(dir)
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| Failure::Setup(format!("starting {what}: {e}")))
}

const FAULT_MATRIX_LOG: &str = "fault-matrix.log";
const FOREIGN_LOG: &str = "foreign-devices.log";

/// Whether `cargo deny` runs here.
fn deny_present() -> bool {
    cargo()
        .args(["deny", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// In CI (`.ci/run` sets `SACBENCH_CI_INSTALL=1`) a missing cargo-deny is
/// built in the background, at the lowest CPU priority, while the tests and
/// the fault matrix run (they leave CPU idle; the workspace's build does
/// not): a debug build without debug info (a fraction of a release build's
/// time; it checks this workspace in seconds), log in
/// `target/cargo-deny-install.log`.
fn start_deny_install(root: &Path) -> Result<Option<std::process::Child>, Failure> {
    if deny_present() || std::env::var_os("SACBENCH_CI_INSTALL").is_none() {
        return Ok(None);
    }
    let mut cmd = Command::new("nice");
    cmd.args(["-n", "19"])
        .arg(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["install", "cargo-deny", "--locked", "--debug"])
        // Its own target dir: not the workspace's lock, not its artifacts.
        .env(
            "CARGO_TARGET_DIR",
            root.join("target").join("cargo-deny-build"),
        )
        .env("CARGO_PROFILE_DEV_DEBUG", "0");
    start_logged(
        root,
        cmd,
        &root.join("target").join("cargo-deny-install.log"),
        "building cargo-deny",
    )
    .map(Some)
}

/// `cargo deny check bans licenses sources` against `deny.toml`: licences on
/// the allow-list, no wildcard requirements, crates from crates.io only, and
/// duplicate versions reported. Advisories are left out: their database is
/// fetched from the network, which a run here may not reach. Waits for the
/// background install first, if there is one; elsewhere a missing
/// cargo-deny is a setup error naming the command.
fn deny_check(root: &Path, install: Option<std::process::Child>) -> Result<(), Failure> {
    if let Some(mut child) = install {
        let started = std::time::Instant::now();
        let status = child
            .wait()
            .map_err(|e| Failure::Setup(format!("waiting for cargo install cargo-deny: {e}")))?;
        eprintln!(
            "xtask: waited {:.0} s for the cargo-deny build",
            started.elapsed().as_secs_f64()
        );
        if !status.success() {
            return Err(Failure::Setup(
                "cargo install cargo-deny failed: see target/cargo-deny-install.log".into(),
            ));
        }
    }
    if !deny_present() {
        return Err(Failure::Setup(
            "cargo-deny is not installed; run: cargo install cargo-deny --locked".into(),
        ));
    }
    let mut deny = cargo();
    deny.args(["deny", "check", "bans", "licenses", "sources"]);
    run(root, deny, "cargo deny check bans licenses sources")
}

/// (package, directory) of the crates that must stay `no_std`.
const NO_STD_CRATES: &[(&str, &str)] = &[
    ("device-core", "firmware/device-core"),
    ("mcuboot-image", "firmware/mcuboot-image"),
];

/// The workspace's tests but the conformance cases (the `conformance`
/// target, one test per case): the fault matrix runs every case against the
/// reference device and each fault (CI), `cargo xtask emulated` in release.
/// A plain `cargo nextest run` runs them too, as `cargo nextest list` shows.
const NOT_THE_CASES: &str = "not binary(conformance)";

fn test(root: &Path, args: &[String]) -> Result<(), Failure> {
    test_filtered(root, NOT_THE_CASES, args)
}

/// [`test`] with nextest's filterset `filter` (repeated `-E`s would be
/// or-ed: one expression).
fn test_filtered(root: &Path, filter: &str, args: &[String]) -> Result<(), Failure> {
    let mut cmd = cargo();
    cmd.args([
        "nextest",
        "run",
        "--workspace",
        "--no-fail-fast",
        "-E",
        filter,
    ])
    .args(args);
    run(root, cmd, "cargo nextest run --workspace")?;
    // nextest does not run doctests.
    let mut doc = cargo();
    doc.args(["test", "--workspace", "--doc", "--quiet"]);
    run(root, doc, "cargo test --doc")
}

fn ci(root: &Path) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    // Before the builds: the linted build replaces this executable, and
    // /proc/self/exe then names the old file "… (deleted)".
    let xtask_exe = std::env::current_exe()
        .map_err(|e| Failure::Setup(format!("the xtask executable: {e}")))?;
    // CI builds from scratch: incremental compilation's bookkeeping only
    // costs there (it pays off on a developer's next build, not CI's).
    // Set while xtask is single-threaded, for every cargo it starts.
    std::env::set_var("CARGO_INCREMENTAL", "0");
    // The test peers (apt, pip, npm: network and disk) install while the
    // workspace compiles; the tests wait for them.
    let peers = std::thread::spawn({
        let root = root.to_owned();
        move || peers::ensure(&root)
    });
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run(root, fmt, "cargo fmt --check")?;
    no_std_check(root)?;
    // Clippy lints the workspace's crates as they are built for the tests
    // (clippy-driver as the workspace's rustc wrapper, -D warnings): one
    // build of everything instead of a check build and then a full one.
    lint_while_building()?;
    let mut rest = cargo();
    rest.args(["build", "--workspace", "--bins", "--examples"]);
    run(root, rest, "cargo build --bins --examples (linted)")?;
    peers
        .join()
        .map_err(|_| Failure::Setup("installing the test peers panicked".into()))??;
    // The lab rig's probe-rs backend is off by default (lab machines build
    // it); it is checked lint-clean all the same, nice'd, in the CPU the
    // tests and the fault matrix leave idle (their waits). (Started with
    // the build instead, it slowed the build as much as it saved later.)
    let probe = start_probe_rs_check(root)?;
    let mcu_host = start_mcu_host_tests(root)?;
    let deny_install = start_deny_install(root)?;
    // The foreign-device suites are the longest tests (the Azure Node
    // device's waits on its SDK's 60 s CONNACK timeout in CD-16): their test
    // binary first, and they run while the other test binaries build.
    let foreign_exe = test_executable(root, "sacbench-suites", "foreign_devices")?;
    // The binary itself, as nextest runs it (from its package's folder):
    // a second cargo would wait on the build lock the test build holds.
    let mut foreign_run = Command::new(&foreign_exe);
    foreign_run
        .args(["--test-threads", "2"])
        .env("RUST_BACKTRACE", "1");
    let foreign = start_logged(
        &root.join("test-suites"),
        foreign_run,
        &root.join("target").join(FOREIGN_LOG),
        "the foreign-device suites (test-suites/tests/foreign_devices.rs)",
    )?;
    // Then the other test binaries (nextest builds them with `cargo test
    // --no-run`: the same artifacts), so that the fault matrix — the
    // emulated suites on the reference device, every fault caught — runs
    // on this build beside the tests instead of after them: all of them
    // mostly wait (on devices' timers, scans).
    let mut tests = cargo();
    tests.args(["test", "--workspace", "--no-run", "--quiet"]);
    run(
        root,
        tests,
        "cargo test --no-run (the test binaries, linted)",
    )?;
    let mut matrix_cmd = Command::new(&xtask_exe);
    matrix_cmd.args(["faults", "--dev"]);
    let matrix = start_logged(
        root,
        matrix_cmd,
        &root.join("target").join(FAULT_MATRIX_LOG),
        "the fault matrix (cargo xtask faults --dev)",
    )?;
    // `cargo xtask test`'s tests but the foreign-device suites, running.
    let tested = test_filtered(
        root,
        &format!("{NOT_THE_CASES} & not binary(foreign_devices)"),
        &[],
    );
    let foreign = wait_background(
        root,
        foreign,
        "the foreign-device suites",
        FOREIGN_LOG,
        LogShown::Whole,
    );
    let matrix = wait_background(
        root,
        matrix,
        "the fault matrix",
        FAULT_MATRIX_LOG,
        LogShown::Whole,
    );
    tested?;
    foreign?;
    matrix?;
    wait_background(
        root,
        probe,
        "cargo clippy -p sacbench-rig --features probe-rs",
        "probe-rs-check.log",
        LogShown::TailOnFailure,
    )?;
    wait_background(
        root,
        mcu_host,
        "the MCU image's host tests",
        "mcu-host-tests.log",
        LogShown::TailOnFailure,
    )?;
    deny_check(root, deny_install)?;
    eprintln!(
        "xtask: ci passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Makes every later cargo build this process starts run
/// clippy-driver on the workspace's crates with `-D warnings`, as
/// `cargo clippy --all-targets -- -D warnings` would on what is built.
fn lint_while_building() -> Result<(), Failure> {
    let out = Command::new("rustup")
        .args(["which", "clippy-driver"])
        .output()
        .map_err(|e| Failure::Setup(format!("rustup which clippy-driver: {e}")))?;
    let driver = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || driver.is_empty() {
        return Err(Failure::Setup(
            "clippy-driver not found: run `rustup component add clippy`".into(),
        ));
    }
    // The variables `cargo clippy` itself sets; CLIPPY_ARGS' separator is
    // clippy's own. Safe here: xtask is single-threaded at this point.
    std::env::set_var("RUSTC_WORKSPACE_WRAPPER", driver);
    std::env::set_var(
        "CLIPPY_ARGS",
        "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__",
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(args: &[&str]) -> Result<(Option<PathBuf>, Vec<PathBuf>), String> {
        let mut all = vec!["cargo xtask", "report"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all).map_err(|e| e.to_string())?.command {
            Task::Report { merge, dirs } => Ok((merge, dirs)),
            _ => Err("not report".into()),
        }
    }

    #[test]
    fn report_takes_one_run_or_merges_shards() {
        assert_eq!(
            report(&["target/run"]).unwrap(),
            (None, vec![PathBuf::from("target/run")])
        );
        assert_eq!(
            report(&["--merge", "out", "s1", "s2"]).unwrap(),
            (
                Some(PathBuf::from("out")),
                vec![PathBuf::from("s1"), PathBuf::from("s2")]
            )
        );
        assert!(report(&[]).is_err(), "a run directory is required");
        assert!(report(&["--merge", "out"]).is_err(), "shards are required");
    }
}
