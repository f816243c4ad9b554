//! `docseek pdf-worker` (hidden): the crash-isolated pdfium process the rasterizer starts and talks
//! to over stdin/stdout (see `docseek::pdf::protocol`). Not meant to be run by hand.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::pdf::PdfiumLibrary;

/// Arguments of `docseek pdf-worker`.
#[derive(Debug, clap::Args)]
pub struct PdfWorkerArgs {
    /// libpdfium to bind (default: the documented search).
    #[arg(long)]
    pub pdfium_lib: Option<PathBuf>,
}

/// Runs `docseek pdf-worker` until its stdin closes.
pub fn run(args: PdfWorkerArgs) -> anyhow::Result<ExitCode> {
    let lib = PdfiumLibrary::locate(args.pdfium_lib.as_deref())?;
    let stdin = std::io::stdin().lock();
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    crate::pdf::worker::serve(&lib.path, stdin, stdout)?;
    Ok(ExitCode::SUCCESS)
}
