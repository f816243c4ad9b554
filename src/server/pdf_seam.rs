//! The seam to the PDF rasterizer (`crate::pdf`): renders the selected pages of a PDF upload to
//! PNG files. Until the crash-isolated rasterizer lands, PDFs are refused with a clear error.

use std::path::Path;

use crate::options::OcrOptions;
use crate::server::errors::ApiError;
use crate::server::intake::{DocLimits, RenderedPage};

/// Renders the selected pages of the PDF at `upload` into `out_dir/{index}.png` (blocking).
pub fn rasterize_pdf(_upload: &Path, _opts: &OcrOptions, _limits: DocLimits, _out_dir: &Path) -> Result<Vec<RenderedPage>, ApiError> {
    Err(ApiError::UnsupportedMediaType("PDF input is not available in this build yet; send page images".into()))
}
