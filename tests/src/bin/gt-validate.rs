//! Validates NDJSON event files (or stdin) against the event schema:
//! `cargo run -p guardian-tests --bin gt-validate -- FILE...` (`$GUARDIAN_SCHEMA` overrides the
//! schema path). Exits 1 and lists the bad lines if any line is invalid.
use std::io::Read;
use std::process::ExitCode;

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    let inputs: Vec<(String, String)> = if files.is_empty() {
        let mut s = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut s) {
            eprintln!("read stdin: {e}");
            return ExitCode::from(2);
        }
        vec![("-".to_owned(), s)]
    } else {
        let mut v = Vec::new();
        for f in files {
            match std::fs::read_to_string(&f) {
                Ok(s) => v.push((f, s)),
                Err(e) => {
                    eprintln!("read {f}: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        v
    };
    let mut ok = true;
    for (name, text) in inputs {
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        match guardian_tests::validate_lines(&lines) {
            Ok(()) => println!("{name}: {} lines valid", lines.len()),
            Err(e) => {
                ok = false;
                println!("{name}: {e}");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
