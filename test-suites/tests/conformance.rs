//! The conformance cases as a nextest test target (`harness = false`):
//! `cargo nextest list --profile conformance` lists the case ids and
//! `cargo nextest run --profile conformance --partition hash:K/N` runs a
//! shard of them, one case per process, into one run directory
//! (`SACBENCH_OUT`; see `docs/SCALING.md`). The same harness as
//! `sacbench-suite` (`sacbench_suites::harness`).

fn main() {
    sacbench_suites::harness::main(sacbench_suites::harness::Target::Conformance)
}
