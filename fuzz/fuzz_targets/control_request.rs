//! Control-socket requests: any line decodes to a request or a one-sentence error; a decoded
//! request encodes to a line that decodes to the same request. Never a panic.
#![no_main]
use guardian::control::protocol::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(req) => {
            let line = encode(&req);
            let again = decode(line.as_bytes()).expect("an encoded request decodes");
            assert_eq!(format!("{again:?}"), format!("{req:?}"));
        }
        Err(e) => assert!(!e.is_empty() && !e.contains('\n'), "{e:?}"),
    }
});
