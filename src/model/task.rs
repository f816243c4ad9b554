//! The official DeepSeek-OCR task prompts (the strings of the model card and the official
//! `run_dpsk_ocr_*.py` scripts).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What the model is asked to do with a page image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Document to Markdown with layout boxes (`<|grounding|>Convert the document to markdown.`).
    #[default]
    Markdown,
    /// OCR of a non-document image with boxes (`<|grounding|>OCR this image.`).
    Ocr,
    /// Plain text, no layout (`Free OCR.`).
    Free,
    /// Charts, chemistry, geometry (`Parse the figure.`).
    Figure,
    /// A general caption (`Describe this image in detail.`).
    Describe,
    /// Find a phrase (`Locate <|ref|>…<|/ref|> in the image.`); needs a target text.
    Locate,
}

impl Task {
    /// The prompt text that follows `<image>`, or an error when `Locate` lacks a target.
    pub fn prompt(self, locate: Option<&str>) -> Result<String, MissingLocateTarget> {
        Ok(match self {
            Task::Markdown => "\n<|grounding|>Convert the document to markdown.".to_string(),
            Task::Ocr => "\n<|grounding|>OCR this image.".to_string(),
            Task::Free => "\nFree OCR.".to_string(),
            Task::Figure => "\nParse the figure.".to_string(),
            Task::Describe => "\nDescribe this image in detail.".to_string(),
            Task::Locate => {
                let target = locate.filter(|t| !t.trim().is_empty()).ok_or(MissingLocateTarget)?;
                format!("\nLocate <|ref|>{}<|/ref|> in the image.", target.trim())
            }
        })
    }

    /// The name users type.
    pub fn name(self) -> &'static str {
        match self {
            Task::Markdown => "markdown",
            Task::Ocr => "ocr",
            Task::Free => "free",
            Task::Figure => "figure",
            Task::Describe => "describe",
            Task::Locate => "locate",
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Task {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        <Task as clap::ValueEnum>::from_str(s, true)
    }
}

/// `Task::Locate` was asked for without the text to locate.
#[derive(Debug, thiserror::Error)]
#[error("the locate task needs a target text (--locate TEXT)")]
pub struct MissingLocateTarget;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_match_the_official_strings() {
        assert_eq!(Task::Markdown.prompt(None).unwrap(), "\n<|grounding|>Convert the document to markdown.");
        assert_eq!(Task::Free.prompt(None).unwrap(), "\nFree OCR.");
        assert!(Task::Locate.prompt(None).is_err());
        assert_eq!(
            Task::Locate.prompt(Some(" the title ")).unwrap(),
            "\nLocate <|ref|>the title<|/ref|> in the image."
        );
    }
}
