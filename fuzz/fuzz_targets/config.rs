//! Config parsing: any bytes either parse and validate, or give an error; never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = toml::from_str::<guardian::config::Config>(text) {
        let _ = c.validate();
    }
});
