//! Shell completions for `tetra`, generated from its clap model so they
//! follow every change of the command line. `tetra completions SHELL`
//! prints one; the Debian package build installs bash's, zsh's and fish's.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use super::{Cli, CliError};

/// Writes the completion script for `shell` to `out`.
pub fn write(shell: Shell, out: &mut dyn Write) -> Result<(), CliError> {
    // clap_complete panics when its writer fails: generate in memory, then
    // report a failed write (a closed pipe, a full disk) as an error.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "tetra", &mut script);
    out.write_all(&script)?;
    Ok(())
}
