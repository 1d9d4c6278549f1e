//! `sacbench-suite`: the conformance suites as a cargo-test-compatible
//! harness; see [`sacbench_suites::harness`] for its options.
#![forbid(unsafe_code)]

fn main() {
    sacbench_suites::harness::main(sacbench_suites::harness::Target::Suite)
}
