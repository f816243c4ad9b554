//! The one error type of document intake, with one-line messages meant for users.
//!
//! Every variant carries plain data (no `io::Error`), so the worker process can send it over its
//! pipe and callers can clone it; `kind()` gives a stable machine name for APIs and logs.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What the set-up script is called, for every "pdfium is missing" message.
pub const SETUP_HINT: &str = "run scripts/setup.sh (it fetches libpdfium into vendor/pdfium/), \
or pass --pdfium-lib PATH / set DOCSEEK_PDFIUM_LIB";

/// Why a document could not be read or rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PdfError {
    /// The input path does not exist.
    #[error("no such file: {path}")]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// A directory was given where a file was expected.
    #[error("{path} is a directory, not a document")]
    IsDirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The input could not be read (permissions, I/O).
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The path given.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// The input has no bytes at all.
    #[error("empty input (0 bytes)")]
    Empty,
    /// The bytes are neither a PDF nor a supported image.
    #[error("not a PDF or a supported image (PNG, JPEG, TIFF, WebP, BMP, GIF): {looks_like}")]
    NotADocument {
        /// What the bytes look like instead, e.g. "plain text".
        looks_like: String,
    },
    /// The PDF is damaged or cut short.
    #[error("corrupt or truncated PDF: {reason}")]
    CorruptPdf {
        /// What pdfium said.
        reason: String,
    },
    /// The image is damaged, cut short or uses an unsupported variant.
    #[error("corrupt or unsupported {format} image: {reason}")]
    CorruptImage {
        /// The sniffed format.
        format: String,
        /// What the decoder said.
        reason: String,
    },
    /// The PDF is encrypted and no password was given.
    #[error("the PDF is encrypted: give its password (--password)")]
    PasswordRequired,
    /// The PDF is encrypted and the password given is wrong.
    #[error("the PDF is encrypted and the password given is wrong")]
    WrongPassword,
    /// The PDF uses a security handler pdfium does not support.
    #[error("the PDF uses an unsupported security handler")]
    UnsupportedSecurity,
    /// The PDF opens but has no pages.
    #[error("the PDF has no pages")]
    NoPages,
    /// The page selection picks no page of this document.
    #[error("page selection '{selection}' picks no page of this {page_count}-page document")]
    NoPagesSelected {
        /// The selection as typed.
        selection: String,
        /// Pages in the document.
        page_count: usize,
    },
    /// The input is larger than `Limits::max_input_bytes`.
    #[error("input is {bytes} bytes, over the limit max_input_bytes = {limit}")]
    InputTooLarge {
        /// Size of the input.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// The document has more pages than `Limits::max_pages`.
    #[error("document has {pages} pages, over the limit max_pages = {limit}")]
    TooManyPages {
        /// Pages in the document.
        pages: usize,
        /// The limit.
        limit: usize,
    },
    /// An image claims more pixels than `Limits::max_image_pixels` (refused before decoding).
    #[error("image claims {width}x{height} pixels, over the limit max_image_pixels = {limit} (pixel bomb?)")]
    PixelBomb {
        /// Claimed width.
        width: u64,
        /// Claimed height.
        height: u64,
        /// The limit.
        limit: u64,
    },
    /// A compressed stream of the PDF inflates past `Limits::max_stream_bytes` (refused before
    /// pdfium reads it).
    #[error(
        "a compressed stream of the PDF (at byte {offset}) inflates to over {limit} bytes, the limit \
         max_stream_bytes (decompression bomb?)"
    )]
    StreamBomb {
        /// Byte offset of the stream's `stream` keyword.
        offset: u64,
        /// The limit.
        limit: u64,
    },
    /// The worker went over its address-space limit (`Limits::max_worker_memory_mb`) on this
    /// document and stopped; it is restarted for the next one.
    #[error(
        "the PDF needs more memory than the renderer may use (max_worker_memory_mb = {limit_mb}) while {during}; \
         the renderer was restarted"
    )]
    WorkerOutOfMemory {
        /// The limit in MiB.
        limit_mb: u64,
        /// What the worker was doing (`rendering page 3`).
        during: String,
    },
    /// The input is not a regular file (a FIFO, a socket, a device).
    #[error("{path} is not a regular file")]
    NotAFile {
        /// The path given.
        path: PathBuf,
    },
    /// pdfium failed on one page.
    #[error("page {page} could not be rendered: {reason}")]
    RenderFailed {
        /// 1-based page number.
        page: usize,
        /// What pdfium said.
        reason: String,
    },
    /// The worker process died while rendering this document (it is restarted for the next one).
    #[error("the PDF renderer crashed on this document ({reason}); it was restarted for the next one")]
    WorkerCrashed {
        /// Exit status or signal.
        reason: String,
    },
    /// A page took longer than `Limits::page_timeout_secs`; the worker was killed and restarted.
    #[error("rendering a page took over {secs} s (limit page_timeout_secs); the renderer was restarted")]
    WorkerTimeout {
        /// The limit in seconds.
        secs: u64,
    },
    /// The worker process could not be started or spoke nonsense.
    #[error("cannot run the PDF renderer worker {exe}: {reason}")]
    WorkerUnavailable {
        /// The executable tried.
        exe: PathBuf,
        /// Why.
        reason: String,
    },
    /// No libpdfium was found.
    #[error("libpdfium not found (searched: {searched}); {hint}", hint = SETUP_HINT)]
    PdfiumMissing {
        /// The places searched, in order, joined for display.
        searched: String,
    },
    /// libpdfium was found but could not be loaded.
    #[error("cannot load libpdfium from {path}: {reason}; {hint}", hint = SETUP_HINT)]
    PdfiumUnloadable {
        /// The library file.
        path: PathBuf,
        /// The loader's reason.
        reason: String,
    },
    /// An option is out of range (e.g. the dpi).
    #[error("invalid option: {reason}")]
    InvalidOption {
        /// What is wrong.
        reason: String,
    },
    /// An output file or folder could not be written.
    #[error("cannot write {path}: {reason}")]
    Unwritable {
        /// The path.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
}

impl PdfError {
    /// A stable machine-readable name of the error kind (`"password_required"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            PdfError::NotFound { .. } => "not_found",
            PdfError::IsDirectory { .. } => "is_directory",
            PdfError::Unreadable { .. } => "unreadable",
            PdfError::Empty => "empty",
            PdfError::NotADocument { .. } => "not_a_document",
            PdfError::CorruptPdf { .. } => "corrupt_pdf",
            PdfError::CorruptImage { .. } => "corrupt_image",
            PdfError::PasswordRequired => "password_required",
            PdfError::WrongPassword => "wrong_password",
            PdfError::UnsupportedSecurity => "unsupported_security",
            PdfError::NoPages => "no_pages",
            PdfError::NoPagesSelected { .. } => "no_pages_selected",
            PdfError::InputTooLarge { .. } => "input_too_large",
            PdfError::TooManyPages { .. } => "too_many_pages",
            PdfError::PixelBomb { .. } => "pixel_bomb",
            PdfError::StreamBomb { .. } => "stream_bomb",
            PdfError::WorkerOutOfMemory { .. } => "worker_out_of_memory",
            PdfError::NotAFile { .. } => "not_a_file",
            PdfError::RenderFailed { .. } => "render_failed",
            PdfError::WorkerCrashed { .. } => "worker_crashed",
            PdfError::WorkerTimeout { .. } => "worker_timeout",
            PdfError::WorkerUnavailable { .. } => "worker_unavailable",
            PdfError::PdfiumMissing { .. } => "pdfium_missing",
            PdfError::PdfiumUnloadable { .. } => "pdfium_unloadable",
            PdfError::InvalidOption { .. } => "invalid_option",
            PdfError::Unwritable { .. } => "unwritable",
        }
    }

    /// True when the input itself is at fault (a client error: HTTP 4xx), false when the
    /// service is (missing pdfium, crashed worker, unwritable output: HTTP 5xx).
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            PdfError::WorkerCrashed { .. }
                | PdfError::WorkerTimeout { .. }
                | PdfError::WorkerUnavailable { .. }
                | PdfError::PdfiumMissing { .. }
                | PdfError::PdfiumUnloadable { .. }
                | PdfError::Unwritable { .. }
                | PdfError::Unreadable { .. }
        )
    }

    /// Maps an I/O error on `path` to `NotFound`, `IsDirectory` or `Unreadable`.
    pub fn from_io(path: &std::path::Path, err: &std::io::Error) -> PdfError {
        match err.kind() {
            std::io::ErrorKind::NotFound => PdfError::NotFound { path: path.to_path_buf() },
            std::io::ErrorKind::IsADirectory => PdfError::IsDirectory { path: path.to_path_buf() },
            _ => PdfError::Unreadable { path: path.to_path_buf(), reason: err.to_string() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_and_round_trip() {
        let errs = [
            PdfError::PasswordRequired,
            PdfError::PixelBomb { width: 100_000, height: 100_000, limit: 10 },
            PdfError::PdfiumMissing { searched: "a, b".into() },
            PdfError::InputTooLarge { bytes: 5, limit: 4 },
        ];
        for e in errs {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{msg}");
            let json = serde_json::to_string(&e).unwrap();
            assert!(json.contains(e.kind()), "{json}");
            assert_eq!(serde_json::from_str::<PdfError>(&json).unwrap(), e);
        }
        assert!(PdfError::PdfiumMissing { searched: String::new() }.to_string().contains("scripts/setup.sh"));
    }
}
