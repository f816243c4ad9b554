//! docseek-langs: script and language detection over 200+ languages, mixed-language spans, and
//! the routing of language-specific post-processing of OCR text (direction, line joining,
//! de-hyphenation, Unicode normalisation, model support level).
//!
//! Detection is script first (Unicode Script property), then language within the script by a
//! naive Bayes model over in-word character 2-5-grams, word edges and whole words, trained on
//! large-corpus n-gram tables (the lingua model crates) and the UDHR corpus (`data/profiles.bin`,
//! built by `cargo run -p docseek-langs --release --example build-profiles`, sources in
//! `data/SOURCES.md`). Scripts used by one language of the inventory (`data/languages.tsv`) are
//! decided by the script alone. The answer is a calibrated probability, with a second language
//! when the text fits two; [`ContextPrior`] lets neighbouring text (the page, the document)
//! decide what a short text alone cannot.
//!
//! ```
//! use docseek_langs::{LanguageDetector, ProfileDetector};
//! let det = ProfileDetector::global();
//! let d = det.detect("Всі люди народжуються вільними і рівними у своїй гідності та правах.");
//! assert_eq!(d.code, "ukr");
//! ```

pub mod alignment;
pub mod context;
pub mod detection;
pub mod detector;
pub mod document;
pub mod han;
pub mod inventory;
pub mod markers;
pub mod model;
pub mod ngram;
pub mod normalize;
pub mod router;
pub mod script;
pub mod spans;
pub mod throughput;
pub mod training;

pub use context::ContextPrior;
pub use detection::{Alternative, Detection, Span};
pub use detector::Posterior;
pub use detector::{LanguageDetector, ProfileDetector};
pub use document::{DocumentLanguages, LanguageShare};
pub use inventory::{Inventory, LanguageRow};
pub use router::{LineJoin, ProcessedText, Router, RoutingProfile, Support};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum LangsError {
    /// The bundled or given profile file is malformed.
    #[error("language profile data is malformed: {0}")]
    BadProfiles(String),
    /// The language inventory or routing table is malformed.
    #[error("language table is malformed: {0}")]
    BadTable(String),
    /// Reading a corpus or writing profiles failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file concerned.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}
