//! The seam to the document model (`crate::doc`): per-page structured results and whole-job
//! renderings in every output format.
//!
//! Until the document model lands this holds a small grounding-tag reader of its own; every
//! piece of model text is escaped in the HTML and hOCR it produces.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::server::errors::ApiError;
use crate::server::store::{JobRecord, PageRecord};

/// The coordinate range of the model's boxes (0..=999 on both axes).
const GRID: f32 = 999.0;

/// An output format of a job's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ResultFormat {
    /// Structured JSON (pages, blocks, boxes).
    #[default]
    Json,
    /// Markdown.
    Md,
    /// A standalone HTML document.
    Html,
    /// hOCR.
    Hocr,
    /// Searchable PDF.
    Pdf,
}

impl ResultFormat {
    /// Every format, in the order the UI offers them.
    pub const ALL: [ResultFormat; 5] = [ResultFormat::Md, ResultFormat::Json, ResultFormat::Html, ResultFormat::Hocr, ResultFormat::Pdf];

    /// Parses `md`, `markdown`, `json`, `html`, `hocr` or `pdf`.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "md" | "markdown" => ResultFormat::Md,
            "json" => ResultFormat::Json,
            "html" => ResultFormat::Html,
            "hocr" => ResultFormat::Hocr,
            "pdf" => ResultFormat::Pdf,
            other => return Err(ApiError::BadRequest(format!("unknown format '{other}' (md, json, html, hocr, pdf)"))),
        })
    }

    /// The MIME type of the rendering.
    pub fn content_type(self) -> &'static str {
        match self {
            ResultFormat::Json => "application/json",
            ResultFormat::Md => "text/markdown; charset=utf-8",
            ResultFormat::Html => "text/html; charset=utf-8",
            ResultFormat::Hocr => "text/vnd.hocr+html; charset=utf-8",
            ResultFormat::Pdf => "application/pdf",
        }
    }

    /// File extension for downloads.
    pub fn extension(self) -> &'static str {
        match self {
            ResultFormat::Json => "json",
            ResultFormat::Md => "md",
            ResultFormat::Html => "html",
            ResultFormat::Hocr => "hocr",
            ResultFormat::Pdf => "pdf",
        }
    }
}

/// One layout block read from grounding output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Block {
    /// Block type (`title`, `text`, `table`, `image`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Box in page pixels `[x0, y0, x1, y1]`.
    pub bbox: Option<[f32; 4]>,
    /// The block's text.
    pub text: String,
}

/// Reads `<|ref|>TYPE<|/ref|><|det|>[[x0, y0, x1, y1]]<|/det|>\nTEXT` blocks; plain text
/// without tags becomes one `text` block.
pub fn parse_blocks(raw: &str, width: u32, height: u32) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut parts = raw.split("<|ref|>");
    if let Some(lead) = parts.next() {
        if !lead.trim().is_empty() {
            blocks.push(Block { kind: "text".into(), bbox: None, text: lead.trim().to_string() });
        }
    }
    for part in parts {
        let (kind, rest) = part.split_once("<|/ref|>").unwrap_or(("text", part));
        let (bbox, text) = match rest.trim_start().strip_prefix("<|det|>").and_then(|r| r.split_once("<|/det|>")) {
            Some((coords, text)) => (parse_box(coords, width, height), text),
            None => (None, rest),
        };
        blocks.push(Block { kind: kind.trim().to_string(), bbox, text: text.trim().to_string() });
    }
    blocks
}

fn parse_box(coords: &str, width: u32, height: u32) -> Option<[f32; 4]> {
    let nums: Vec<f32> = coords
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    (nums.len() >= 4).then(|| {
        let (w, h) = (width as f32, height as f32);
        [nums[0] / GRID * w, nums[1] / GRID * h, nums[2] / GRID * w, nums[3] / GRID * h]
    })
}

/// The Markdown of one page's blocks (figures are dropped: their text is empty).
fn page_markdown(blocks: &[Block]) -> String {
    blocks.iter().filter(|b| !b.text.is_empty()).map(|b| b.text.as_str()).collect::<Vec<_>>().join("\n\n")
}

/// The structured result of one page, as sent in events and the JSON result.
pub fn page_json(page: &PageRecord) -> Value {
    let blocks = page.raw.as_deref().map(|r| parse_blocks(r, page.width, page.height)).unwrap_or_default();
    json!({
        "index": page.index,
        "page": page.page_number,
        "width": page.width,
        "height": page.height,
        "outcome": page.outcome,
        "tokens": page.tokens,
        "error": page.error,
        "markdown": page_markdown(&blocks),
        "blocks": blocks,
    })
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders a job's pages in `format`.
pub fn render(job: &JobRecord, pages: &[PageRecord], format: ResultFormat) -> Result<Vec<u8>, ApiError> {
    Ok(match format {
        ResultFormat::Json => {
            let v = json!({
                "id": job.id,
                "filename": job.filename,
                "state": job.state,
                "page_count": job.page_count,
                "pages": pages.iter().map(page_json).collect::<Vec<_>>(),
            });
            serde_json::to_vec_pretty(&v).map_err(ApiError::internal)?
        }
        ResultFormat::Md => pages
            .iter()
            .map(|p| page_markdown(&p.raw.as_deref().map(|r| parse_blocks(r, p.width, p.height)).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("\n\n")
            .into_bytes(),
        ResultFormat::Html | ResultFormat::Hocr => {
            let hocr = format == ResultFormat::Hocr;
            let mut out = String::from("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">");
            if hocr {
                out.push_str("<meta name=\"ocr-system\" content=\"docseek\"><meta name=\"ocr-capabilities\" content=\"ocr_page ocr_carea ocr_par\">");
            }
            out.push_str(&format!("<title>{}</title></head><body>\n", escape(job.filename.as_deref().unwrap_or("docseek result"))));
            for p in pages {
                let blocks = p.raw.as_deref().map(|r| parse_blocks(r, p.width, p.height)).unwrap_or_default();
                out.push_str(&format!(
                    "<div class=\"ocr_page\" id=\"page_{}\" title=\"bbox 0 0 {} {}; ppageno {}\">\n",
                    p.page_number, p.width, p.height, p.index
                ));
                for (i, b) in blocks.iter().enumerate() {
                    let title = b.bbox.map(|[x0, y0, x1, y1]| format!(" title=\"bbox {} {} {} {}\"", x0 as i64, y0 as i64, x1 as i64, y1 as i64)).unwrap_or_default();
                    let class = if hocr { "ocr_carea".to_string() } else { format!("block {}", escape(&b.kind)) };
                    out.push_str(&format!("<div class=\"{class}\" id=\"block_{}_{i}\"{title}><p>{}</p></div>\n", p.page_number, escape(&b.text)));
                }
                out.push_str("</div>\n");
            }
            out.push_str("</body></html>\n");
            out.into_bytes()
        }
        ResultFormat::Pdf => return Err(ApiError::BadRequest("pdf output is not available in this build yet".into())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grounding_blocks_and_escaping() {
        let raw = "<|ref|>title<|/ref|><|det|>[[0, 0, 999, 999]]<|/det|>\n# Hi\n\n<|ref|>text<|/ref|><|det|>[[0,0,10,10]]<|/det|>\n<script>x</script>";
        let b = parse_blocks(raw, 100, 200);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].kind, "title");
        assert_eq!(b[0].bbox, Some([0.0, 0.0, 100.0, 200.0]));
        assert_eq!(b[1].text, "<script>x</script>");
        assert_eq!(parse_blocks("plain", 1, 1)[0].kind, "text");
        assert_eq!(escape("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
    }
}
