//! Output formats the pipeline can produce, with their file extensions and media types.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// Markdown.
    Md,
    /// JSON blocks (type, box, reading order, language).
    Json,
    /// HTML.
    Html,
    /// hOCR (HTML with word/line boxes).
    Hocr,
    /// Searchable PDF (page images with an invisible text layer).
    Pdf,
    /// Plain text.
    Txt,
    /// The raw model text of each page, grounding tags kept, pages split by
    /// [`RAW_PAGE_SEPARATOR`].
    Raw,
}

/// Between pages in the `raw` format: the separator of DeepSeek-OCR's official PDF script.
pub const RAW_PAGE_SEPARATOR: &str = "\n<--- Page Split --->\n";

impl OutputFormat {
    /// Every format, in display order.
    pub const ALL: [OutputFormat; 7] = [
        OutputFormat::Md,
        OutputFormat::Json,
        OutputFormat::Html,
        OutputFormat::Hocr,
        OutputFormat::Pdf,
        OutputFormat::Txt,
        OutputFormat::Raw,
    ];

    /// The name users type.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Md => "md",
            OutputFormat::Json => "json",
            OutputFormat::Html => "html",
            OutputFormat::Hocr => "hocr",
            OutputFormat::Pdf => "pdf",
            OutputFormat::Txt => "txt",
            OutputFormat::Raw => "raw",
        }
    }

    /// The suffix appended to a document's stem. The searchable PDF gets `.ocr.pdf` so it can
    /// never overwrite an input PDF, even when the output folder is the input folder.
    pub fn suffix(self) -> &'static str {
        match self {
            OutputFormat::Md => ".md",
            OutputFormat::Json => ".json",
            OutputFormat::Html => ".html",
            OutputFormat::Hocr => ".hocr",
            OutputFormat::Pdf => ".ocr.pdf",
            OutputFormat::Txt => ".txt",
            OutputFormat::Raw => ".raw.txt",
        }
    }

    /// The MIME type of the output.
    pub fn media_type(self) -> &'static str {
        match self {
            OutputFormat::Md => "text/markdown; charset=utf-8",
            OutputFormat::Json => "application/json",
            OutputFormat::Html => "text/html; charset=utf-8",
            OutputFormat::Hocr => "text/vnd.hocr+html; charset=utf-8",
            OutputFormat::Pdf => "application/pdf",
            OutputFormat::Txt => "text/plain; charset=utf-8",
            OutputFormat::Raw => "text/plain; charset=utf-8",
        }
    }

    /// Parses a comma-separated list such as `md,json`; duplicates are dropped, order kept.
    pub fn parse_list(spec: &str) -> Result<Vec<OutputFormat>, String> {
        let mut out = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let f: OutputFormat = part.parse()?;
            if !out.contains(&f) {
                out.push(f);
            }
        }
        if out.is_empty() {
            return Err("no output format given".into());
        }
        Ok(out)
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OutputFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let s = match s.as_str() {
            "markdown" => "md".to_string(),
            "text" => "txt".to_string(),
            _ => s,
        };
        OutputFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown output format '{s}' (expected md, json, html, hocr, pdf, txt or raw)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists() {
        assert_eq!(
            OutputFormat::parse_list("md, JSON,md,raw").unwrap(),
            vec![OutputFormat::Md, OutputFormat::Json, OutputFormat::Raw]
        );
        assert_eq!("markdown".parse::<OutputFormat>().unwrap(), OutputFormat::Md);
        assert!(OutputFormat::parse_list("md,docx").unwrap_err().contains("docx"));
        assert!(OutputFormat::parse_list(" , ").is_err());
    }
}
