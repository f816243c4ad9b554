//! `docseek dev` (not built yet: being written).

use std::process::ExitCode;

/// Arguments of `docseek dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {}

/// Runs `docseek dev`.
pub fn run(_args: DevArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`docseek dev` is not built yet")
}
