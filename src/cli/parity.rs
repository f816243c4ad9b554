//! `docseek parity` (not built yet: being written).

use std::process::ExitCode;

/// Arguments of `docseek parity`.
#[derive(Debug, clap::Args)]
pub struct ParityArgs {}

/// Runs `docseek parity`.
pub fn run(_args: ParityArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`docseek parity` is not built yet")
}
