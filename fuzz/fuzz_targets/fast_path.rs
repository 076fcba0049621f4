//! The cache-hit fast path: `dns::wire`'s plain-query parser against the full front end,
//! and the message cache's template patching (`hopdns::fuzz::fast_path`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hopdns::fuzz::fast_path(data));
