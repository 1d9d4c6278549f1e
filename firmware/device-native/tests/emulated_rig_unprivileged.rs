//! The emulated rig without root: when the tests run as root (CI), this
//! binary copies what the rig needs to a world-readable directory and runs
//! itself again as `nobody` (util-linux `setpriv`), which then enters the
//! sandbox through an unprivileged user namespace, builds a topology, boots
//! the board and waits for its mTLS session — as on a developer machine.
//! When run unprivileged already, it does the second half directly.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hub_fixture::journal::Event;
use sacbench_rig::dut::DutFile;
use sacbench_rig::emulated::sandbox;
mod common;
use common::ProvisionedRig;
use sacbench_rig::emulated::EmulatedRigConfig;
use sacbench_rig::Rig;

const WORK_ENV: &str = "SACBENCH_UNPRIVILEGED_WORK";

/// Stages the device executable and a signed image, then re-runs this
/// binary on them — as nobody when we are root.
fn stage_and_run() -> Result<(), libtest_mimic::Failed> {
    let work = tempfile::Builder::new()
        .prefix("sacbench-unpriv")
        .tempdir()
        .unwrap();
    let dir = work.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let device = dir.join("device-native");
    std::fs::copy(env!("CARGO_BIN_EXE_device-native"), &device).unwrap();
    let me = dir.join("test");
    std::fs::copy(std::env::current_exe().unwrap(), &me).unwrap();
    sacbench_test_support::write_v1_image(&device, dir);
    // The reference device's DUT file: the rig runs its command.
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("dut.toml"),
        dir.join("dut.toml"),
    )
    .unwrap();
    for f in ["device-native", "test", "v1.img", "dut.toml"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut cmd = if nix::unistd::getuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ])
        .arg(&me);
        c
    } else {
        Command::new(&me)
    };
    let out = cmd
        .env(WORK_ENV, dir)
        .env("TMPDIR", dir)
        .output()
        .map_err(|e| format!("setpriv (util-linux): {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || !text.contains("the unprivileged rig's board connected") {
        return Err(format!("unprivileged run failed ({}):\n{text}", out.status).into());
    }
    Ok(())
}

fn main() {
    if std::env::var_os(WORK_ENV).is_none() {
        // The test harness side (also what `--list` sees).
        let trials = vec![libtest_mimic::Trial::test(
            "runs_unprivileged",
            stage_and_run,
        )];
        libtest_mimic::run(&libtest_mimic::Arguments::from_args(), trials).exit();
    }
    // The staged, unprivileged side: enter the sandbox and boot a board.
    sandbox::enter_or_exit("");
    let work = PathBuf::from(std::env::var_os(WORK_ENV).expect("staged"));
    let image = work.join("v1.img");
    let dut_file = work.join("dut.toml");
    let mut dut = DutFile::parse(&std::fs::read_to_string(&dut_file).unwrap(), &dut_file)
        .expect("the reference DUT file");
    // The test flashes its own image; the OTA key stays out of the staging.
    dut.image = None;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let config = EmulatedRigConfig {
            id: 1,
            dir: dir.path().to_owned(),
            dut: std::sync::Arc::new(dut),
            sacbench_bin: work.clone(),
            device_id: "dev-unpriv".into(),
            faults: Vec::new(),
        };
        let mut rig = ProvisionedRig::start(config)
            .await
            .expect("rig starts unprivileged");
        rig.flash(&image).await.expect("flash");
        rig.power(true).await.expect("power");
        let e = rig
            .hub()
            .journal()
            .wait_for(0, Duration::from_secs(60), |e| {
                matches!(e.event, Event::Connected { .. })
            })
            .await
            .expect("the board connects to the hub");
        assert!(e
            .peer
            .unwrap_or_default()
            .starts_with(&rig.topology().dut_ipv4().to_string()));
        println!("ok: the unprivileged rig's board connected");
    });
}
