//! `docseek serve` (not built yet: being written).

use std::process::ExitCode;

/// Arguments of `docseek serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

/// Runs `docseek serve`.
pub fn run(_args: ServeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`docseek serve` is not built yet")
}
