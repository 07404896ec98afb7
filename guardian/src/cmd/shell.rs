//! `guardian completions SHELL` and `guardian manpage`: generated from the clap definitions
//! (clap_complete, clap_mangen) for the package to install; hidden from `--help`.
use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::Cli;

/// Writes the completion script for `shell` to `out`.
pub fn write_completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut Cli::command(), "guardian", out);
}

/// Writes the man page (roff, section 1) to `out`.
pub fn write_manpage(out: &mut dyn Write) -> std::io::Result<()> {
    clap_mangen::Man::new(Cli::command()).render(out)
}

pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    write_completions(shell, &mut std::io::stdout().lock());
    ExitCode::SUCCESS
}

pub fn manpage() -> ExitCode {
    match write_manpage(&mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("guardian: writing the man page: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut buf = Vec::new();
        f(&mut buf);
        String::from_utf8(buf).unwrap()
    }

    // The bash script sourced by a real bash: e2e `completions::` (guardian starts no
    // process, not even in its unit tests: e2e `security::`).

    #[test]
    fn zsh_and_fish_scripts_name_the_binary() {
        let zsh = text(|b| write_completions(clap_complete::Shell::Zsh, b));
        assert!(zsh.starts_with("#compdef guardian"), "{}", &zsh[..40]);
        let fish = text(|b| write_completions(clap_complete::Shell::Fish, b));
        assert!(fish.contains("complete -c guardian"), "{}", &fish[..80]);
    }

    /// A man page that `man -l` renders: roff starting with `.TH guardian 1`, every
    /// subcommand in it.
    #[test]
    fn man_page_is_roff_with_every_subcommand() {
        let page = text(|b| write_manpage(b).unwrap());
        assert!(
            page.starts_with(".ie") || page.starts_with(".TH"),
            "{}",
            &page[..60]
        );
        assert!(page.contains(".TH guardian 1"), "{}", &page[..200]);
        for c in ["run", "doctor", "replay", "rollback", "scan"] {
            assert!(
                page.contains(&format!("guardian\\-{c}")) || page.contains(c),
                "{c}"
            );
        }
    }
}
