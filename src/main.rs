//! The `docseek` binary: see `docseek --help`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    docseek::alloc::tune_for_tensors();
    let cli = docseek::cli::Cli::parse();
    docseek::cli::init_tracing(cli.verbose);
    match docseek::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
