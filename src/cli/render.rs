//! `docseek render` (not built yet: being written).

use std::process::ExitCode;

/// Arguments of `docseek render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {}

/// Runs `docseek render`.
pub fn run(_args: RenderArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`docseek render` is not built yet")
}
