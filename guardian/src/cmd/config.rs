//! `guardian config check|dump [FILE]`: the config files `run --config FILE` would read (FILE
//! and its drop-ins `NAME.d/*.toml`; default `/etc/guardian/guardian.toml` and
//! `guardian.d/`), checked without root: no privileged syscall, nothing loaded or attached.
//! `check` fails with the sentence `run` would print and exit 78; `dump` prints the effective
//! config as TOML with every default filled in (its own dump is itself).
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::ConfigCommand;
use crate::config::{self, Config, ConfigError};

/// What `check` prints for a valid config.
pub fn ok_line(cfg: &Config) -> String {
    if cfg.files.is_empty() {
        return "config ok: no config file, the defaults".into();
    }
    let names: Vec<String> = cfg.files.iter().map(|f| f.display().to_string()).collect();
    format!("config ok: {}", names.join(", "))
}

/// The effective config as TOML: every section and key, defaults included.
pub fn dump(cfg: &Config) -> Result<String, ConfigError> {
    toml::to_string(cfg)
        .map_err(|e| ConfigError::new(None, format!("cannot print the config as TOML: {e}")))
}

fn load(file: Option<&Path>) -> Result<Config, ExitCode> {
    config::load(file, None).map_err(|e| {
        eprintln!("guardian: {e}");
        ExitCode::from(e.exit_code())
    })
}

fn print(s: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

pub fn main(cmd: ConfigCommand) -> ExitCode {
    match cmd {
        ConfigCommand::Check { file } => match load(file.as_deref()) {
            Ok(cfg) => print(&format!("{}\n", ok_line(&cfg))),
            Err(code) => code,
        },
        ConfigCommand::Dump { file } => match load(file.as_deref()).map(|c| dump(&c)) {
            Ok(Ok(text)) => print(&text),
            Ok(Err(e)) => {
                eprintln!("guardian: {e}");
                ExitCode::FAILURE
            }
            Err(code) => code,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("guardian-cfgcmd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_dump_of_the_defaults_round_trips() {
        let d = tmp("defaults");
        let text = dump(&Config::default()).unwrap();
        for section in [
            "[detect.syn_flood]",
            "[remedies.",
            "[safety]",
            "[sinks]",
            "[log]",
            "[metrics]",
            "[interfaces]",
            "[control]",
            "[daemon]",
        ] {
            assert!(text.contains(section), "{section} in:\n{text}");
        }
        let f = d.join("dump.toml");
        std::fs::write(&f, &text).unwrap();
        let again = config::load(Some(&f), None).unwrap();
        assert_eq!(
            Config {
                files: Vec::new(),
                ..again.clone()
            },
            Config::default(),
            "the dump reads back as the defaults"
        );
        assert_eq!(
            dump(&again).unwrap(),
            text,
            "dumping the dump gives the same"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_dump_keeps_what_the_files_set_and_round_trips() {
        let d = tmp("set");
        let main = d.join("g.toml");
        std::fs::write(
            &main,
            "[daemon]\nmode = \"enforce\"\n[detect.syn_flood]\nsyn_per_sec = 7\n[interfaces]\nkeep_up = [\"eth9\"]\n",
        )
        .unwrap();
        std::fs::create_dir_all(d.join("g.d")).unwrap();
        std::fs::write(d.join("g.d/10.toml"), "[safety]\nmax_targets = 3\n").unwrap();
        let cfg = config::load(Some(&main), None).unwrap();
        assert_eq!(
            ok_line(&cfg),
            format!(
                "config ok: {}, {}",
                main.display(),
                d.join("g.d/10.toml").display()
            )
        );
        let text = dump(&cfg).unwrap();
        assert!(text.contains("mode = \"enforce\""), "{text}");
        assert!(text.contains("syn_per_sec = 7"), "{text}");
        assert!(text.contains("max_targets = 3"), "{text}");
        let out = tmp("set-out").join("dump.toml");
        std::fs::write(&out, &text).unwrap();
        let back = config::load(Some(&out), None).unwrap();
        assert_eq!(
            Config {
                files: Vec::new(),
                ..back.clone()
            },
            Config {
                files: Vec::new(),
                ..cfg
            }
        );
        assert_eq!(dump(&back).unwrap(), text);
        let _ = std::fs::remove_dir_all(&d);
        let _ = std::fs::remove_dir_all(out.parent().unwrap());
    }

    #[test]
    fn check_reports_like_run() {
        let d = tmp("bad");
        let main = d.join("g.toml");
        std::fs::write(
            &main,
            "[daemon]\nmode = \"enforce\"\n\n[detect.connect_timeout_cascade]\nfailures = 0\n",
        )
        .unwrap();
        let e = config::load(Some(&main), None).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        let s = e.to_string();
        assert!(
            s.starts_with(&format!("{}:5:", main.display()))
                && s.contains("detect.connect_timeout_cascade.failures"),
            "{s}"
        );
        assert_eq!(
            ok_line(&Config::default()),
            "config ok: no config file, the defaults"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
