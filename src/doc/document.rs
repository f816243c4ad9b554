//! The document model: pages in order, each with its size, how generation ended, timings,
//! the raw model text and the structured blocks in reading order.
//!
//! Build one with [`Document::new`] from one [`PageInput`] per page (what the engine gave for
//! a page plus the page's pixel and point sizes), then render it with
//! [`crate::doc::render`].

use serde::{Deserialize, Serialize};

use super::block::{Block, Language, Warning};
use super::geometry::{PixelSize, PointSize, POINTS_PER_INCH};
use super::structure::structure_page;
use crate::engine::{PageText, PageTimings};
use crate::model::PageOutcome;

/// One language of a whole document, with its share of the text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentLanguage {
    /// Language tag (ISO 639-3).
    pub tag: String,
    /// Script (ISO 15924).
    pub script: String,
    /// English name of the language.
    pub name: String,
    /// Share of the document's (non-space) characters in detected blocks, 0..=1.
    pub share: f32,
    /// Character-weighted mean confidence of its blocks, 0..=1.
    pub confidence: f32,
    /// Whether it is written right to left.
    pub rtl: bool,
}

/// What a caller hands over for one page.
#[derive(Debug, Clone, PartialEq)]
pub struct PageInput {
    /// Page number (1-based, as in the source document).
    pub number: u32,
    /// Size of the page image the model saw, in pixels.
    pub pixel_size: PixelSize,
    /// Size of the original page in PDF points (for images: pixels at the image's dpi,
    /// see [`PointSize::from_pixels`]).
    pub point_size: PointSize,
    /// The engine's answer for the page.
    pub text: PageText,
}

impl PageInput {
    /// A page from the engine's answer.
    pub fn new(number: u32, pixel_size: PixelSize, point_size: PointSize, text: PageText) -> Self {
        PageInput { number, pixel_size, point_size, text }
    }

    /// A page from saved raw model text alone (outcome `finished`, no timings).
    pub fn from_raw(number: u32, pixel_size: PixelSize, point_size: PointSize, raw: impl Into<String>) -> Self {
        Self::from_raw_with_outcome(number, pixel_size, point_size, raw, PageOutcome::Finished)
    }

    /// A page from saved raw model text and how its generation ended.
    pub fn from_raw_with_outcome(
        number: u32,
        pixel_size: PixelSize,
        point_size: PointSize,
        raw: impl Into<String>,
        outcome: PageOutcome,
    ) -> Self {
        let text = PageText {
            raw: raw.into(),
            outcome,
            prompt_tokens: 0,
            generated_tokens: 0,
            timings: PageTimings::default(),
        };
        PageInput { number, pixel_size, point_size, text }
    }
}

/// One page of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// Page number (1-based).
    pub number: u32,
    /// Size of the page image, in pixels.
    pub pixel_size: PixelSize,
    /// Size of the original page, in PDF points.
    pub point_size: PointSize,
    /// Resolution of the page image relative to the original page (pixels per inch, width).
    pub dpi: f32,
    /// How generation ended.
    pub outcome: PageOutcome,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub generated_tokens: usize,
    /// Stage timings (in JSON: milliseconds).
    #[serde(with = "timings_ms")]
    pub timings: PageTimings,
    /// The raw model text (grounding tags kept).
    pub raw: String,
    /// Blocks in reading order.
    pub blocks: Vec<Block>,
    /// Main language of the page (filled by the language stage).
    #[serde(default)]
    pub language: Option<Language>,
    /// What was odd about the page as a whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
}

impl Page {
    /// Structures one page.
    pub fn new(input: PageInput) -> Self {
        let PageInput { number, pixel_size, point_size, text } = input;
        let dpi =
            if point_size.width > 0.0 { pixel_size.width as f32 * POINTS_PER_INCH / point_size.width } else { 0.0 };
        let (blocks, warnings) = structure_page(number, pixel_size, point_size, &text.raw, text.outcome);
        Page {
            number,
            pixel_size,
            point_size,
            dpi: (dpi * 100.0).round() / 100.0,
            outcome: text.outcome,
            prompt_tokens: text.prompt_tokens,
            generated_tokens: text.generated_tokens,
            timings: text.timings,
            raw: text.raw,
            blocks,
            language: None,
            warnings,
        }
    }

    /// Blocks that renderings include.
    pub fn rendered_blocks(&self) -> impl Iterator<Item = &Block> {
        self.blocks.iter().filter(|b| b.is_rendered())
    }
}

/// A structured document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Where it came from (a file name), if known.
    #[serde(default)]
    pub source: Option<String>,
    /// Pages in page-number order.
    pub pages: Vec<Page>,
    /// The document's languages, largest share first (filled by the language stage,
    /// [`crate::doc::languages::annotate`]; empty before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub languages: Vec<DocumentLanguage>,
}

impl Document {
    /// Structures a document from its pages (any order; sorted by page number).
    pub fn new(source: Option<String>, pages: impl IntoIterator<Item = PageInput>) -> Self {
        let mut pages: Vec<Page> = pages.into_iter().map(Page::new).collect();
        pages.sort_by_key(|p| p.number);
        Document { source, pages, languages: Vec::new() }
    }

    /// All blocks, page by page, in reading order (hidden ones included).
    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.pages.iter().flat_map(|p| p.blocks.iter())
    }

    /// The page with this number.
    pub fn page(&self, number: u32) -> Option<&Page> {
        self.pages.iter().find(|p| p.number == number)
    }

    /// The block at `at`.
    pub fn block(&self, at: super::block::BlockRef) -> Option<&Block> {
        self.page(at.page).and_then(|p| p.blocks.get(at.index))
    }
}

/// `PageTimings` as `{"encode_ms": .., "prefill_ms": .., "decode_ms": ..}` (floats).
mod timings_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::engine::PageTimings;

    #[derive(Serialize, Deserialize)]
    struct Millis {
        encode_ms: f64,
        prefill_ms: f64,
        decode_ms: f64,
    }

    fn ms(d: Duration) -> f64 {
        (d.as_secs_f64() * 1e6).round() / 1e3
    }

    fn dur(ms: f64) -> Duration {
        Duration::try_from_secs_f64(ms / 1e3).unwrap_or_default()
    }

    pub fn serialize<S: Serializer>(t: &PageTimings, s: S) -> Result<S::Ok, S::Error> {
        Millis { encode_ms: ms(t.encode), prefill_ms: ms(t.prefill), decode_ms: ms(t.decode) }.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PageTimings, D::Error> {
        let m = Millis::deserialize(d)?;
        Ok(PageTimings { encode: dur(m.encode_ms), prefill: dur(m.prefill_ms), decode: dur(m.decode_ms) })
    }
}
