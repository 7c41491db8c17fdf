//! `wsvisor completions SHELL` and `wsvisor man`: shell completion
//! scripts and the man page, generated from the command-line definition
//! (`cli`) so that they never drift from it. The Debian package ships
//! both (scripts/deb.sh writes them at build time).

use std::io::{self, Write};
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::exit;

/// Prints the completion script for `shell`; the exit code.
pub fn completions(shell: Shell) -> i32 {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "wsvisor", &mut out);
    write_out(&out)
}

/// Prints wsvisor(1) in roff, or with `dir` writes it and one page per
/// subcommand (wsvisor-ctl(1), wsvisor-ctl-sessions(1), ...) there; the exit code.
pub fn man_page(dir: Option<&Path>) -> i32 {
    if let Some(dir) = dir {
        return match clap_mangen::generate_to(Cli::command(), dir) {
            Ok(()) => exit::OK,
            Err(err) => {
                eprintln!("wsvisor man: {}: {err}", dir.display());
                exit::FAILURE
            }
        };
    }
    let mut out = Vec::new();
    match clap_mangen::Man::new(Cli::command()).render(&mut out) {
        Ok(()) => write_out(&out),
        Err(err) => {
            eprintln!("wsvisor man: {err}");
            exit::FAILURE
        }
    }
}

fn write_out(bytes: &[u8]) -> i32 {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => exit::OK,
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => exit::OK,
        Err(err) => {
            eprintln!("wsvisor: cannot write to stdout: {err}");
            exit::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script_naming_the_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "wsvisor", &mut out);
            let text = String::from_utf8(out).unwrap();
            for word in ["run", "check", "ctl", "demo", "completions", "subscribe"] {
                assert!(text.contains(word), "{shell}: no {word}");
            }
        }
    }

    #[test]
    fn the_man_page_is_roff_with_every_command() {
        let mut out = Vec::new();
        clap_mangen::Man::new(Cli::command()).render(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(".ie \\n(.g .ds Aq") || text.contains(".TH wsvisor 1"),
            "{text}"
        );
        assert!(text.contains(".TH wsvisor 1"), "{text}");
        for word in ["run", "check", "ctl", "demo", "completions", "man"] {
            assert!(text.contains(word), "no {word}");
        }
    }

    #[test]
    fn every_page_the_main_page_names_is_written() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(man_page(Some(dir.path())), exit::OK);
        for page in [
            "wsvisor.1",
            "wsvisor-run.1",
            "wsvisor-ctl.1",
            "wsvisor-ctl-sessions.1",
            "wsvisor-man.1",
        ] {
            let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
            assert!(text.contains(".TH "), "{page}");
        }
    }
}
