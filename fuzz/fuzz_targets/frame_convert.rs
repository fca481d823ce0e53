#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stylize_fuzz::frame_convert(data));
