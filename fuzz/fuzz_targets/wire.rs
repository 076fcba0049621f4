//! The wire codec (`hopdns::dns::wire`): every byte-level reader on arbitrary input, checked
//! against hickory-proto's decoder (`hopdns::fuzz::wire`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hopdns::fuzz::wire(data));
