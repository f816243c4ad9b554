//! `docseek bench decode` (not built yet: being written).

use std::process::ExitCode;

/// Arguments of `docseek bench decode`.
#[derive(Debug, clap::Args)]
pub struct DecodeBenchArgs {}

/// Runs `docseek bench decode`.
pub fn run(_args: DecodeBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`docseek bench decode` is not built yet")
}
