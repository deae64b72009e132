//! `tetra`: the command line for tetragond, shaped like Tetragon's
//! `tetra tracingpolicy ...`. All the work is in `tetragond::cli`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tetragond::cli::{self, Cli, Outcome};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failure) => ExitCode::FAILURE,
        Err(e) => {
            // `{:#}` keeps the context chain on one line, no debug output.
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    // One short request at a time: a single-threaded runtime is enough.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let outcome = runtime.block_on(cli::run(cli, &mut out, &mut err))?;
    out.flush().context("cannot write the output")?;
    Ok(outcome)
}
