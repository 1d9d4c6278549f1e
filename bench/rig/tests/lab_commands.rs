//! A rig file's `[provisioning]` and `[flasher]` commands run in the rig
//! file's folder: `./provision.sh` and relative arguments resolve there (as
//! `image.path` does), whatever the bench's working directory.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::os::unix::fs::PermissionsExt;

use sacbench_rig::lab::LabRig;
use sacbench_rig::Rig;

#[tokio::test]
async fn relative_commands_resolve_against_the_rig_files_folder() {
    let lab = tempfile::tempdir().unwrap();
    let script = lab.path().join("provision.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nset -e\ncp \"$1/device.json\" got-device.json\necho \"$2\" > got-image\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        lab.path().join("rig.toml"),
        r#"[dut]
ipv4 = "192.0.2.20"

[provisioning]
command = ["./provision.sh", "{provisioning}"]

[flasher]
command = ["./provision.sh", "prov", "{image}"]
"#,
    )
    .unwrap();
    let prov = lab.path().join("prov");
    std::fs::create_dir_all(&prov).unwrap();
    std::fs::write(prov.join("device.json"), "{}").unwrap();
    // The bench runs from somewhere else entirely.
    let elsewhere = tempfile::tempdir().unwrap();
    std::env::set_current_dir(elsewhere.path()).unwrap();
    let mut rig = LabRig::open(&lab.path().join("rig.toml")).unwrap();
    rig.provision_dir(&prov).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(lab.path().join("got-device.json")).unwrap(),
        "{}"
    );
    rig.flash(&lab.path().join("fw.img")).await.unwrap();
    assert!(std::fs::read_to_string(lab.path().join("got-image"))
        .unwrap()
        .contains("fw.img"));
    assert!(!elsewhere.path().join("got-device.json").exists());
}
