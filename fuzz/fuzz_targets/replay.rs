//! Replay files: any bytes are rejected with an error or replayed through every detector;
//! never a panic (this also drives the detectors with arbitrary inputs, clock jumps included).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = guardian::replay::replay_bytes(data, &mut std::io::sink());
});
