//! The fuzz targets' stable-Rust smoke, run by `cargo xtask test`: every
//! body on every checked-in seed (`fuzz/corpus/<target>/`) and on the
//! generated ones, then on proptest inputs — random bytes, and seeds with
//! bytes changed, inserted and cut. A body that panics fails the test
//! (with the input, shrunk, for the proptest part). Also checks that the
//! fuzz targets, the bodies and the corpus folders name the same targets.
//!
//! The proptest part is deterministic (a fixed seed), so CI is repeatable;
//! `SMOKE_CASES=N` runs N cases per target instead of the default.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use sacbench_fuzz_bodies::{seeds, TARGETS};

/// Cases per target and kind (random bytes, mutated seeds); the whole test
/// stays within a few seconds in a debug build.
const CASES: u32 = 1000;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Names of the files ending in `suffix` (without it), or of the folders.
fn names_in(dir: &Path, suffix: Option<&str>) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            match suffix {
                Some(s) => name.strip_suffix(s).map(str::to_owned),
                None => p.is_dir().then_some(name),
            }
        })
        .collect()
}

/// The seeds of `target`: its corpus files, then the generated ones.
fn seeds_of(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut out: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .map(|p| {
            (
                p.display().to_string(),
                fs::read(&p).expect("a corpus file"),
            )
        })
        .collect();
    out.extend(
        seeds::all()
            .into_iter()
            .filter(|(t, _, _)| *t == target)
            .map(|(_, name, bytes)| (format!("generated {name}"), bytes)),
    );
    out
}

#[test]
fn targets_bodies_and_corpus_folders_agree() {
    let targets = names_in(&fuzz_dir().join("fuzz_targets"), Some(".rs"));
    let corpora = names_in(&fuzz_dir().join("corpus"), None);
    let bodies: BTreeSet<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(targets, bodies, "fuzz/fuzz_targets/*.rs vs TARGETS");
    assert_eq!(corpora, bodies, "fuzz/corpus/* vs TARGETS");
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for name in &bodies {
        let source = fs::read_to_string(fuzz_dir().join("fuzz_targets").join(format!("{name}.rs")))
            .expect("a target's source");
        assert!(
            source.contains(&format!("sacbench_fuzz_bodies::{name}(data)")),
            "fuzz_targets/{name}.rs does not call its body"
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
        assert!(!seeds_of(name).is_empty(), "fuzz/corpus/{name} has no seed");
    }
}

#[test]
fn every_seed_runs_through_its_body() {
    for (target, body) in TARGETS {
        for (name, bytes) in seeds_of(target) {
            eprintln!("{target}: {name}");
            body(&bytes);
        }
    }
}

/// A seed with edits: bytes overwritten, inserted or removed at positions
/// scaled to its length, then possibly cut.
#[derive(Debug, Clone)]
enum Edit {
    Set(f64, u8),
    Insert(f64, Vec<u8>),
    Remove(f64, usize),
}

fn at(len: usize, frac: f64) -> usize {
    ((len as f64 * frac) as usize).min(len)
}

fn mutate(seed: &[u8], edits: &[Edit], cut: Option<f64>) -> Vec<u8> {
    let mut data = seed.to_vec();
    for edit in edits {
        match edit {
            Edit::Set(pos, byte) => {
                if !data.is_empty() {
                    let i = at(data.len() - 1, *pos);
                    data[i] = *byte;
                }
            }
            Edit::Insert(pos, bytes) => {
                let i = at(data.len(), *pos);
                data.splice(i..i, bytes.iter().copied());
            }
            Edit::Remove(pos, n) => {
                let i = at(data.len(), *pos);
                let end = (i + n).min(data.len());
                data.drain(i..end);
            }
        }
    }
    if let Some(frac) = cut {
        data.truncate(at(data.len(), frac));
    }
    data
}

fn edit() -> impl Strategy<Value = Edit> {
    // Interesting bytes (lengths, MQTT/ASN.1/TOML punctuation) more often.
    let byte = prop_oneof![
        any::<u8>(),
        prop::sample::select(vec![
            0x00, 0x01, 0x02, 0x7f, 0x80, 0xff, 0x30, b'=', b'"', b'['
        ]),
    ];
    let frac = 0.0..=1.0f64;
    prop_oneof![
        (frac.clone(), byte).prop_map(|(p, b)| Edit::Set(p, b)),
        (frac.clone(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(p, b)| Edit::Insert(p, b)),
        (frac, 1..16usize).prop_map(|(p, n)| Edit::Remove(p, n)),
    ]
}

fn runner() -> TestRunner {
    let cases = std::env::var("SMOKE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    )
}

/// Runs `body` under `catch_unwind` so proptest sees a panic as a failure
/// and shrinks its input.
fn run(body: fn(&[u8]), data: &[u8]) -> Result<(), TestCaseError> {
    std::panic::catch_unwind(|| body(data)).map_err(|e| {
        let why = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        TestCaseError::fail(format!("the body panicked: {why}"))
    })
}

#[test]
fn bodies_survive_random_bytes() {
    for (target, body) in TARGETS {
        runner()
            .run(&prop::collection::vec(any::<u8>(), 0..512), |data| {
                run(*body, &data)
            })
            .unwrap_or_else(|e| panic!("{target}: {e}"));
    }
}

#[test]
fn bodies_survive_mutated_seeds() {
    for (target, body) in TARGETS {
        let seeds: Vec<Vec<u8>> = seeds_of(target).into_iter().map(|(_, b)| b).collect();
        let strategy = (
            prop::sample::select(seeds),
            prop::collection::vec(edit(), 1..6),
            prop::option::weighted(0.2, 0.0..=1.0f64),
        );
        runner()
            .run(&strategy, |(seed, edits, cut)| {
                run(*body, &mutate(&seed, &edits, cut))
            })
            .unwrap_or_else(|e| panic!("{target}: {e}"));
    }
}

/// The smoke can fail: a body that panics on some inputs is caught.
#[test]
fn a_panicking_body_fails_the_smoke() {
    fn fragile(data: &[u8]) {
        assert!(!data.starts_with(b"\x01"), "a planted bug");
    }
    let result = runner().run(&prop::collection::vec(any::<u8>(), 0..8), |data| {
        run(fragile, &data)
    });
    let failure = result.expect_err("the planted bug was not found");
    assert!(failure.to_string().contains("a planted bug"), "{failure}");
}
