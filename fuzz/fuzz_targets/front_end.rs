//! Raw client bytes through the front end's checks and reply builder (`hopdns::fuzz::front_end`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hopdns::fuzz::front_end(data));
