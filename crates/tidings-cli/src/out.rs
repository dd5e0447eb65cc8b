//! `Out`: where commands write — results on stdout (flushed per line, for pipes and tests), notes and warnings on stderr unless `--quiet`.

use std::io::Write;

use crate::error::CliError;

/// The command's output.
#[derive(Debug)]
pub struct Out {
    quiet: bool,
}

impl Out {
    /// Output, with stderr notes unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        Self { quiet }
    }

    /// A result line on stdout, flushed at once.
    pub fn line(&mut self, line: &str) -> Result<(), CliError> {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .map_err(|e| CliError::io("writing stdout", e))
    }

    /// A note on stderr (not with `--quiet`).
    pub fn info(&self, note: &str) {
        if !self.quiet {
            // Nothing to do when stderr is gone: the note is not the result.
            let _ = writeln!(std::io::stderr().lock(), "{note}");
        }
    }

    /// A warning on stderr (always).
    pub fn warn(&self, warning: &str) {
        let _ = writeln!(std::io::stderr().lock(), "warning: {warning}");
    }
}
