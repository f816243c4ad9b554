//! `docseek langid` (not built yet: being written).

use std::process::ExitCode;

/// Arguments of `docseek langid`.
#[derive(Debug, clap::Args)]
pub struct LangidArgs {}

/// Runs `docseek langid`.
pub fn run(_args: LangidArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`docseek langid` is not built yet")
}
