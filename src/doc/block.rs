//! One structured block of a page: its kind, boxes, text and what the later stages add
//! (table grid, formula, language), plus the warnings the parser raised about it.

use serde::{Deserialize, Serialize};

use super::geometry::BlockBox;
use super::table::Table;

/// What a block is. Labels come from the model's `<|ref|>label<|/ref|>` header; the ones
/// seen in DeepSeek-OCR output are mapped here, anything else is [`BlockKind::Other`] (the
/// original label is always kept in [`Block::label`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// Document or section title (`title`).
    Title,
    /// Sub-heading (`sub_title`).
    SubTitle,
    /// Running text (`text`), and text outside any header (non-grounding prompts).
    Text,
    /// A figure, photo or chart (`image`): cropped from the page image.
    Image,
    /// Caption of a figure (`image_caption`).
    ImageCaption,
    /// A table (`table`): model HTML parsed into a grid.
    Table,
    /// Caption of a table (`table_caption`).
    TableCaption,
    /// Note under a table (`table_footnote`).
    TableFootnote,
    /// A display formula (`equation`).
    Equation,
    /// A footnote (`footnote`).
    Footnote,
    /// A page header (`header`).
    Header,
    /// A page footer (`footer`).
    Footer,
    /// A page number (`page_number`).
    PageNumber,
    /// A list (`list`).
    List,
    /// Program code (`code`).
    Code,
    /// A label the model wrote that docseek does not know.
    Other,
}

impl BlockKind {
    /// Maps a model label to a kind; `None` for labels docseek does not know.
    pub fn from_label(label: &str) -> Option<Self> {
        let kind = match label.trim().to_ascii_lowercase().as_str() {
            "title" => BlockKind::Title,
            "sub_title" | "subtitle" | "section_title" => BlockKind::SubTitle,
            "text" | "paragraph" | "abstract" => BlockKind::Text,
            "image" | "figure" | "chart" => BlockKind::Image,
            "image_caption" | "figure_caption" => BlockKind::ImageCaption,
            "table" => BlockKind::Table,
            "table_caption" => BlockKind::TableCaption,
            "table_footnote" => BlockKind::TableFootnote,
            "equation" | "formula" | "interline_equation" => BlockKind::Equation,
            "footnote" | "page_footnote" => BlockKind::Footnote,
            "header" | "page_header" => BlockKind::Header,
            "footer" | "page_footer" => BlockKind::Footer,
            "page_number" => BlockKind::PageNumber,
            "list" => BlockKind::List,
            "code" => BlockKind::Code,
            _ => return None,
        };
        Some(kind)
    }

    /// Whether the block is a caption of a figure or a table.
    pub fn is_caption(self) -> bool {
        matches!(self, BlockKind::ImageCaption | BlockKind::TableCaption)
    }
}

/// Machine-readable warning codes (stable strings in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningCode {
    /// `<|ref|>` without its `<|/ref|>` (output cut inside a header).
    UnclosedRef,
    /// A `<|ref|>` header not followed by a `<|det|>` box list.
    MissingBoxes,
    /// `<|det|>` without its `<|/det|>`.
    UnclosedDet,
    /// A box that could not be read, or was clamped/reordered.
    BadBox,
    /// The label is not one docseek knows.
    UnknownLabel,
    /// A grounding tag or special token where none belongs; removed, text kept.
    StrayTag,
    /// The page's generation did not finish: this (last) block may be cut short.
    Truncated,
    /// A repeated tail (a generation loop) was cut from the text.
    RepetitionTrimmed,
    /// Identical consecutive blocks (a loop of whole blocks) were dropped.
    DuplicateBlocks,
    /// A table's HTML was malformed or unclosed; the grid is a best effort.
    MalformedTable,
    /// A formula's delimiters were unbalanced; kept verbatim.
    MalformedFormula,
    /// The page image was not available, so a figure could not be cropped.
    NoFigureImage,
}

/// A note about something odd in the model output, kept next to what it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// What kind of oddity.
    pub code: WarningCode,
    /// A short human-readable explanation.
    pub message: String,
}

impl Warning {
    /// Makes a warning.
    pub fn new(code: WarningCode, message: impl Into<String>) -> Self {
        Warning { code, message: message.into() }
    }
}

/// Where a block sits in a document: page number (1-based) and index within the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlockRef {
    /// Page number (1-based).
    pub page: u32,
    /// Block index on that page (0-based, reading order).
    pub index: usize,
}

/// A stretch of a block's text in one language (filled by the language stage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LanguageRun {
    /// Start byte offset in [`Block::text`].
    pub start: usize,
    /// End byte offset (exclusive) in [`Block::text`].
    pub end: usize,
    /// Language tag (ISO 639-3 or BCP-47).
    pub tag: String,
    /// Script (ISO 15924, e.g. `Latn`, `Arab`).
    pub script: String,
    /// Confidence in 0..=1.
    pub confidence: f32,
}

/// The language of a block or a page (filled by the language stage, empty before).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Language {
    /// Main language tag (ISO 639-3 or BCP-47).
    pub tag: String,
    /// Main script (ISO 15924).
    pub script: String,
    /// Confidence in 0..=1.
    pub confidence: f32,
    /// Whether the main script is written right to left.
    #[serde(default)]
    pub rtl: bool,
    /// Runs of other languages inside the text, when mixed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<LanguageRun>,
    /// Other languages the text fits nearly as well (short text in close languages), most
    /// likely first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<LanguageAlternative>,
}

/// A second language a block's text fits (filled by the language stage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LanguageAlternative {
    /// Language tag (ISO 639-3).
    pub tag: String,
    /// Script (ISO 15924).
    pub script: String,
    /// Confidence in 0..=1.
    pub confidence: f32,
}

/// Why a block is set aside by a reversible post-processing step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Running {
    /// Repeats at the top of several pages.
    Header,
    /// Repeats at the bottom of several pages.
    Footer,
}

/// Flags set by post-processing; every step can be undone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlockFlags {
    /// The page's generation stopped early and this is its last block.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Detected as a running header or footer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<Running>,
    /// Left out of renderings (set with `running` by header/footer removal).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
    /// This table continues the table at the given place (cross-page merge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues: Option<BlockRef>,
    /// This table is continued by the table at the given place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continued_by: Option<BlockRef>,
}

/// One block of a page, in reading order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Block {
    /// Page number (1-based).
    pub page: u32,
    /// Index within the page (0-based, reading order).
    pub index: usize,
    /// The label as the model wrote it (`text` for text outside any header).
    pub label: String,
    /// The kind docseek maps the label to.
    pub kind: BlockKind,
    /// Heading level (1–6) when the text is a Markdown heading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading_level: Option<u8>,
    /// The boxes of the block (the model may give several, or none).
    pub boxes: Vec<BlockBox>,
    /// The content: Markdown as the model wrote it, grounding tags removed, LaTeX rewrites
    /// applied, heading marks removed (see `heading_level`), repetition loops cut.
    pub text: String,
    /// Tables: clean HTML regenerated from the parsed grid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// Tables: the parsed grid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<Table>,
    /// Display formulas: the LaTeX without delimiters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latex: Option<String>,
    /// Figures: path of the cropped image, relative to the main output (set when rendered
    /// with page images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figure: Option<String>,
    /// Language of the text (filled by the language stage).
    #[serde(default)]
    pub language: Option<Language>,
    /// Post-processing flags.
    #[serde(default)]
    pub flags: BlockFlags,
    /// What was odd about this block in the model output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
}

impl Block {
    /// Where this block sits.
    pub fn at(&self) -> BlockRef {
        BlockRef { page: self.page, index: self.index }
    }

    /// Whether renderings include it (not hidden, not merged into an earlier table).
    pub fn is_rendered(&self) -> bool {
        !self.flags.hidden && self.flags.continues.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_map_to_kinds() {
        assert_eq!(BlockKind::from_label("sub_title"), Some(BlockKind::SubTitle));
        assert_eq!(BlockKind::from_label(" Table "), Some(BlockKind::Table));
        assert_eq!(BlockKind::from_label("doodle"), None);
    }
}
