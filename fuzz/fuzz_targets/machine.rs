//! The resolution state machine fed arbitrary upstream replies (`hopdns::fuzz::machine`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hopdns::fuzz::machine(data));
