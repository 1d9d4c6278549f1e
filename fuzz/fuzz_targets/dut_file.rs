#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sacbench_fuzz_bodies::dut_file(data));
