//! Ring-buffer record decoding: any record (any length, any bytes) decodes to an observation
//! that serializes, or to an error; never a panic.
#![no_main]
use guardian::output::{to_line, Body};
use guardian::source::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(obs) = decode::syscall_event(data).and_then(|ev| decode::observation(&ev)) {
        let line = to_line("fuzz", Default::default(), &Body::Observation(obs));
        assert!(line.starts_with('{') && !line.contains('\n'));
    }
});
