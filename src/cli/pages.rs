//! `docseek pages` (not built yet: being written).

use std::process::ExitCode;

/// Arguments of `docseek pages`.
#[derive(Debug, clap::Args)]
pub struct PagesArgs {}

/// Runs `docseek pages`.
pub fn run(_args: PagesArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`docseek pages` is not built yet")
}
