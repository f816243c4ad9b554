//! `docseek bench encode` (not built yet: being written).

use std::process::ExitCode;

/// Arguments of `docseek bench encode`.
#[derive(Debug, clap::Args)]
pub struct EncodeBenchArgs {}

/// Runs `docseek bench encode`.
pub fn run(_args: EncodeBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`docseek bench encode` is not built yet")
}
