//! `docseek bench langid` (not built yet: being written).

use std::process::ExitCode;

/// Arguments of `docseek bench langid`.
#[derive(Debug, clap::Args)]
pub struct LangidBenchArgs {}

/// Runs `docseek bench langid`.
pub fn run(_args: LangidBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`docseek bench langid` is not built yet")
}
