//! The catalogue of cases, by group.

mod board;
pub mod cd;
pub mod gw;
pub mod kr;
pub mod mt;
pub mod ni;
pub mod ota;
mod support;

use crate::case::CaseDef;

pub type Def = CaseDef;

/// `case_def!(id, slug, title, expected, needs, fn)` for a device case.
macro_rules! case_def {
    ($id:literal, $slug:literal, $title:literal, $expected:literal, $needs:expr, $f:ident) => {
        $crate::case::CaseDef {
            id: $id,
            slug: $slug,
            title: $title,
            expected: $expected,
            needs: $needs,
            self_test: false,
            extra_faults: &[],
            mqtt_port: None,
            run: |c| Box::pin($f(c)),
        }
    };
}
pub(crate) use case_def;

/// `self_test!(id, slug, title, expected, fn)` for a self-test of the
/// fixture: needs nothing of the rig, and the run's fault does not apply.
macro_rules! self_test {
    ($id:literal, $slug:literal, $title:literal, $expected:literal, $f:path) => {
        $crate::case::CaseDef {
            id: $id,
            slug: $slug,
            title: $title,
            expected: $expected,
            needs: &[],
            self_test: true,
            extra_faults: &[],
            mqtt_port: None,
            run: |c| Box::pin($f(c)),
        }
    };
}
pub(crate) use self_test;

/// Every case, in catalogue order.
pub fn all() -> Vec<&'static CaseDef> {
    [
        ni::CASES,
        mt::CASES,
        kr::CASES,
        ota::CASES,
        cd::CASES,
        gw::CASES,
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_unique_and_stable_in_form() {
        let all = all();
        for c in &all {
            assert_eq!(all.iter().filter(|o| o.id == c.id).count(), 1, "{}", c.id);
            let name = c.name();
            assert!(
                name.starts_with(&format!("{}::{}_", c.group(), c.id)),
                "{name}"
            );
        }
        // The catalogue's 53 cases (NI, MT, KR, OTA, CD, GW).
        assert_eq!(all.len(), 6 + 14 + 6 + 10 + 12 + 5);
    }

    #[test]
    fn every_fault_of_the_gateway_names_only_gw_cases() {
        let ids: Vec<&str> = all().iter().map(|c| c.id).collect();
        for (name, cases) in hub_fixture::gateway::FAULTS {
            for case in *cases {
                assert!(
                    ids.contains(case) && case.starts_with("GW-"),
                    "{name} names {case}"
                );
            }
        }
    }

    #[test]
    fn every_fault_of_the_device_names_only_cases_that_exist() {
        let ids: Vec<&str> = all().iter().map(|c| c.id).collect();
        for f in device_core::faults::CATALOGUE {
            for case in f.cases {
                assert!(
                    ids.contains(case),
                    "{} names {case}, which is not a case",
                    f.name
                );
            }
        }
    }
}
