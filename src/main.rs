//! The `docseek` binary: see `docseek --help`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
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
