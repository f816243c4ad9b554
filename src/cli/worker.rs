//! `docseek worker` (not built yet: being written).

use std::process::ExitCode;

/// Arguments of `docseek worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {}

/// Runs `docseek worker`.
pub fn run(_args: WorkerArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`docseek worker` is not built yet")
}
