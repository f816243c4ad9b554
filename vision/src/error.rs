//! The one error type of docseek-vision.

/// Everything that can go wrong between an image and its vision tokens.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// A tensor operation or weight lookup failed (missing tensor, wrong shape, ...).
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// The checkpoint config is unusable.
    #[error("vision config: {0}")]
    Config(String),
    /// The image cannot be processed (empty, too large, ...).
    #[error("image: {0}")]
    Image(String),
    /// A mode this checkpoint cannot run (e.g. OCR-2 with views it has no query table for).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, VisionError>;
