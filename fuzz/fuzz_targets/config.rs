//! Config parsing: any bytes parse and validate, or give a one-line error naming the file,
//! key and position; never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("/etc/guardian/guardian.toml");
    match guardian::config::source::check::<guardian::config::Config>(path, text) {
        Ok(c) => {
            let _ = c.validate();
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
        }
    }
});
