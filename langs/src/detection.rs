//! The result types of detection: [`Detection`] for a text, [`Span`] for a run of it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// ISO 639-3 code used when the language cannot be decided.
pub const UNDETERMINED: &str = "und";
/// ISO 15924 code of text without letters (digits, punctuation, symbols).
pub const SCRIPT_COMMON: &str = "Zyyy";

/// The language of a text: what `docseek langid --json` prints per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// ISO 639-3 code, or `und`.
    pub code: Cow<'static, str>,
    /// BCP-47 tag (`und` when undecided).
    pub bcp47: Cow<'static, str>,
    /// English name of the language (`Undetermined` when undecided).
    pub name: Cow<'static, str>,
    /// ISO 15924 code of the dominant script (`Zyyy` when there are no letters).
    pub script: Cow<'static, str>,
    /// Confidence in `[0, 1]` that `code` is right (0 for `und`): the calibrated probability of
    /// the language given the text, times the dominant script's share of its letters.
    pub confidence: f32,
    /// Other languages the text fits nearly as well (a short text written the same in two close
    /// languages), most likely first, with their confidences; empty when one language stands
    /// out. See [`crate::detector::ALTERNATIVE_MIN`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Alternative>,
}

/// A second language a text fits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    /// ISO 639-3 code.
    pub code: Cow<'static, str>,
    /// BCP-47 tag.
    pub bcp47: Cow<'static, str>,
    /// ISO 15924 script.
    pub script: Cow<'static, str>,
    /// Confidence in `[0, 1]`, on the same scale as [`Detection::confidence`].
    pub confidence: f32,
}

impl Detection {
    /// An undecided result with the given script.
    pub fn undetermined(script: &'static str) -> Self {
        Self {
            code: Cow::Borrowed(UNDETERMINED),
            bcp47: Cow::Borrowed(UNDETERMINED),
            name: Cow::Borrowed("Undetermined"),
            script: Cow::Borrowed(script),
            confidence: 0.0,
            alternatives: Vec::new(),
        }
    }

    /// True when the language is decided.
    pub fn is_determined(&self) -> bool {
        self.code != UNDETERMINED
    }
}

/// A run of a text in one script and language, by byte offsets into the text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
    /// ISO 639-3 code, or `und`.
    pub code: Cow<'static, str>,
    /// ISO 15924 code of the run's script.
    pub script: Cow<'static, str>,
    /// Confidence of the run's language in `[0, 1]`.
    pub confidence: f32,
}
