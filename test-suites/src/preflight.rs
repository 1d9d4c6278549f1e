//! Before any case runs: every program the selected cases need is on PATH
//! (each case declares its `tools`; the emulated rig adds its own). A
//! missing one stops the run with the Debian package to install — the
//! bench's problem, never a case failed for it.

use sacbench_rig::dut::DutFile;

use crate::case::CaseDef;

/// The Debian package of each program the bench runs.
const PACKAGES: &[(&str, &str)] = &[("openssl", "openssl")];

fn package(tool: &str) -> &str {
    PACKAGES
        .iter()
        .find(|(t, _)| *t == tool)
        .map_or(tool, |(_, p)| p)
}

/// Whether `tool` is an executable file in a directory of `path` (PATH).
pub fn on_path(tool: &str, path: &std::ffi::OsStr) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path).any(|dir| {
        let p = dir.join(tool);
        std::fs::metadata(&p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The programs `defs` need for this DUT and fault, each with the cases that
/// need it. Cases that do not apply to the DUT need nothing. The emulated rig
/// itself needs no program: its namespaces, links and ptys are made
/// in-process (rtnetlink, openpty).
pub fn needed(
    defs: &[&CaseDef],
    dut: &DutFile,
    fault: Option<&str>,
) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut needs: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    let mut add =
        |tool: &'static str, id: &'static str| match needs.iter_mut().find(|(t, _)| *t == tool) {
            Some((_, ids)) => ids.push(id),
            None => needs.push((tool, vec![id])),
        };
    for d in defs.iter().filter(|d| d.dut.not_applicable(dut).is_none()) {
        for t in d.tools {
            add(t, d.id);
        }
        // The reference device's legacy-TLS fault speaks through openssl.
        if fault == Some("allow-tls10") && !d.self_test {
            add("openssl", d.id);
        }
    }
    needs
}

/// One line naming every missing program, its package and the cases that
/// need it; `None` when nothing is missing.
pub fn check(
    needs: &[(&'static str, Vec<&'static str>)],
    path: &std::ffi::OsStr,
) -> Option<String> {
    let missing: Vec<String> = needs
        .iter()
        .filter(|(tool, _)| !on_path(tool, path))
        .map(|(tool, ids)| {
            let shown: Vec<&str> = ids.iter().take(4).copied().collect();
            let more = if ids.len() > 4 {
                format!(" and {} more", ids.len() - 4)
            } else {
                String::new()
            };
            format!(
                "`{tool}` (apt-get install {}) for {}{more}",
                package(tool),
                shown.join(", ")
            )
        })
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "the selected cases need programs that are not on PATH: {}",
            missing.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_programs_are_named_with_their_package_and_cases() {
        let dut = DutFile::load(&crate::case::reference_dut_file()).unwrap();
        let all = crate::cases::all();
        // No case runs a program of its own: the emulated suite needs none.
        assert_eq!(needed(&all, &dut, None), []);
        // The reference device's legacy-TLS fault speaks through openssl.
        let needs = needed(&all, &dut, Some("allow-tls10"));
        let openssl = needs.iter().find(|(t, _)| *t == "openssl").unwrap();
        assert!(openssl.1.contains(&"MT-02") && openssl.1.contains(&"NI-01"));
        assert!(
            !openssl.1.contains(&"CD-08"),
            "a bench self-test runs no device"
        );
        let empty = tempfile::tempdir().unwrap();
        let line = check(&needs, empty.path().as_os_str()).unwrap();
        assert!(
            line.starts_with("the selected cases need programs that are not on PATH: `openssl` (apt-get install openssl) for "),
            "{line}"
        );
        assert!(line.contains(" more"), "more than four cases: {line}");
        assert_eq!(line.lines().count(), 1);
        // Present in PATH: nothing is named.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("openssl");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        assert_eq!(check(&needs, dir.path().as_os_str()), None);
    }
}
