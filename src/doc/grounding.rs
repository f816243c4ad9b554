//! The grounding parser: raw DeepSeek-OCR text into labelled, boxed pieces.
//!
//! The model answers the grounding prompt with interleaved headers
//! `<|ref|>label<|/ref|><|det|>[[x1, y1, x2, y2], ...]<|/det|>` each followed by the block's
//! content (the official `run_dpsk_ocr_*.py` scripts match
//! `(<\|ref\|>(.*?)<\|/ref\|><\|det\|>(.*?)<\|/det\|>)`). Real output is not always that
//! tidy: it can stop inside a header, repeat, carry stray tags or give several boxes per
//! label. This parser never fails and never panics: what it cannot read as structure it
//! keeps as text, with a [`Warning`] saying why.

use super::block::{Warning, WarningCode};
use super::geometry::{normalise_grid, GridBox};

/// Opens a label.
pub const REF_OPEN: &str = "<|ref|>";
/// Closes a label.
pub const REF_CLOSE: &str = "<|/ref|>";
/// Opens a box list.
pub const DET_OPEN: &str = "<|det|>";
/// Closes a box list.
pub const DET_CLOSE: &str = "<|/det|>";
/// The end-of-sentence token, stripped from the end if an engine left it in.
pub const EOS: &str = "<｜end▁of▁sentence｜>";
/// The label given to text that stands outside any header.
pub const FREE_TEXT_LABEL: &str = "text";

/// A label longer than this is not a label (the closing tag is missing).
const MAX_LABEL_BYTES: usize = 64;

/// Tags that never belong in block content; removed with a warning.
const STRAY_TAGS: [&str; 6] = [REF_CLOSE, DET_CLOSE, "<|grounding|>", "<image>", "<|User|>", "<|Assistant|>"];

/// One piece of the model output: a header (label and boxes) and the content after it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawBlock {
    /// The label, as written (trimmed).
    pub label: String,
    /// Whether the piece had a header (false for text before the first header).
    pub has_header: bool,
    /// Boxes on the 0–999 grid.
    pub boxes: Vec<GridBox>,
    /// Content with grounding tags removed, leading newline and trailing whitespace trimmed.
    pub content: String,
    /// What was odd about this piece.
    pub warnings: Vec<Warning>,
}

impl RawBlock {
    fn new(label: &str, has_header: bool) -> Self {
        RawBlock {
            label: label.to_string(),
            has_header,
            boxes: Vec::new(),
            content: String::new(),
            warnings: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        !self.has_header && self.content.trim().is_empty() && self.warnings.is_empty()
    }
}

/// Splits raw model text into pieces. Never panics, whatever the input.
pub fn parse_grounding(raw: &str) -> Vec<RawBlock> {
    let raw = raw.trim_end();
    let raw = raw.strip_suffix(EOS).unwrap_or(raw);
    let mut blocks = Vec::new();
    let mut current = RawBlock::new(FREE_TEXT_LABEL, false);
    let mut pos = 0;
    while pos < raw.len() {
        let rest = &raw[pos..];
        let next_ref = rest.find(REF_OPEN);
        let next_det = rest.find(DET_OPEN);
        let (at, is_ref) = match (next_ref, next_det) {
            (None, None) => {
                current.content.push_str(rest);
                break;
            }
            (Some(r), Some(d)) if d < r => (d, false),
            (Some(r), _) => (r, true),
            (None, Some(d)) => (d, false),
        };
        current.content.push_str(&rest[..at]);
        pos += at;
        finish(&mut blocks, std::mem::replace(&mut current, RawBlock::new(FREE_TEXT_LABEL, true)));
        if is_ref {
            pos = read_header(raw, pos, &mut current);
        } else {
            current.warnings.push(Warning::new(WarningCode::StrayTag, "boxes without a label"));
            pos = read_boxes(raw, pos, &mut current);
        }
        // The content starts on the line after the header.
        if raw[pos..].starts_with('\n') {
            pos += 1;
        }
    }
    finish(&mut blocks, current);
    blocks
}

/// Reads `<|ref|>label<|/ref|>` and the box list after it; returns the position after them.
fn read_header(raw: &str, start: usize, block: &mut RawBlock) -> usize {
    let after_open = start + REF_OPEN.len();
    let rest = &raw[after_open..];
    let close = rest
        .find(REF_CLOSE)
        .filter(|&c| c <= MAX_LABEL_BYTES && !rest[..c].contains('\n') && !rest[..c].contains("<|"));
    let Some(close) = close else {
        // Cut inside the header (or the closing tag is missing): the rest of the line is text.
        let line_end = rest.find('\n').unwrap_or(rest.len());
        let line_end = rest[..line_end].find("<|").unwrap_or(line_end);
        block.warnings.push(Warning::new(WarningCode::UnclosedRef, "label without <|/ref|>"));
        block.content.push_str(&rest[..line_end]);
        return after_open + line_end;
    };
    block.label = rest[..close].trim().to_string();
    let mut pos = after_open + close + REF_CLOSE.len();
    let gap = raw[pos..].len() - raw[pos..].trim_start_matches([' ', '\t']).len();
    if raw[pos + gap..].starts_with(DET_OPEN) {
        pos = read_boxes(raw, pos + gap, block);
    } else {
        block.warnings.push(Warning::new(WarningCode::MissingBoxes, "label without <|det|> boxes"));
    }
    pos
}

/// Reads `<|det|>[[...], ...]<|/det|>` at `start`; returns the position after it.
fn read_boxes(raw: &str, start: usize, block: &mut RawBlock) -> usize {
    let after_open = start + DET_OPEN.len();
    let rest = &raw[after_open..];
    let (inner, end) = match rest.find(DET_CLOSE) {
        Some(c) if !rest[..c].contains("<|") => (&rest[..c], after_open + c + DET_CLOSE.len()),
        _ => {
            // Cut inside the box list: read what is there, up to the end of the line.
            let stop = rest.find(['\n', '<']).unwrap_or(rest.len());
            block.warnings.push(Warning::new(WarningCode::UnclosedDet, "box list without <|/det|>"));
            (&rest[..stop], after_open + stop)
        }
    };
    parse_box_list(inner, block);
    end
}

/// Reads `[[x1, y1, x2, y2], ...]` leniently: every innermost bracket group of four numbers is
/// a box; other groups and stray characters give a warning.
fn parse_box_list(inner: &str, block: &mut RawBlock) {
    let mut group: Vec<f64> = Vec::new();
    let mut number = String::new();
    let mut depth = 0usize;
    let mut junk = false;
    let flush_number = |number: &mut String, group: &mut Vec<f64>, junk: &mut bool| {
        if !number.is_empty() {
            match number.parse::<f64>() {
                Ok(v) => group.push(v),
                Err(_) => *junk = true,
            }
            number.clear();
        }
    };
    for ch in inner.chars() {
        match ch {
            '0'..='9' | '.' | '-' | '+' | 'e' | 'E' => number.push(ch),
            '[' => {
                flush_number(&mut number, &mut group, &mut junk);
                depth += 1;
                if !group.is_empty() {
                    junk = true;
                    group.clear();
                }
            }
            ']' => {
                flush_number(&mut number, &mut group, &mut junk);
                depth = depth.saturating_sub(1);
                if !group.is_empty() {
                    push_box(&group, block);
                    group.clear();
                }
            }
            ',' | ' ' | '\t' | '\n' | '\r' => flush_number(&mut number, &mut group, &mut junk),
            _ => junk = true,
        }
    }
    flush_number(&mut number, &mut group, &mut junk);
    if !group.is_empty() {
        push_box(&group, block);
    }
    if junk || depth != 0 {
        block.warnings.push(Warning::new(WarningCode::BadBox, format!("unreadable box list `{}`", clip(inner))));
    }
}

fn push_box(group: &[f64], block: &mut RawBlock) {
    let parsed = <[f64; 4]>::try_from(group).ok().and_then(normalise_grid);
    match parsed {
        Some((grid, adjusted)) => {
            if adjusted {
                block.warnings.push(Warning::new(
                    WarningCode::BadBox,
                    format!("box {group:?} clamped to the 0-999 grid and ordered"),
                ));
            }
            block.boxes.push(grid);
        }
        None => block.warnings.push(Warning::new(
            WarningCode::BadBox,
            format!("box with {} numbers instead of 4: {group:?}", group.len()),
        )),
    }
}

/// Cleans a finished piece (stray tags, trimming) and keeps it unless it is empty free text.
fn finish(blocks: &mut Vec<RawBlock>, mut block: RawBlock) {
    let mut content = std::mem::take(&mut block.content);
    let mut stray = Vec::new();
    for tag in STRAY_TAGS {
        if content.contains(tag) {
            stray.push(tag);
            content = content.replace(tag, "");
        }
    }
    // Any other special token of the DeepSeek vocabulary (`<｜...｜>` with full-width bars).
    while let Some(open) = content.find("<｜") {
        let close = content[open..].find("｜>").map(|c| open + c + "｜>".len());
        let end = close.unwrap_or(content.len());
        stray.push("<｜…｜>");
        content.replace_range(open..end, "");
    }
    if !stray.is_empty() {
        stray.dedup();
        block.warnings.push(Warning::new(WarningCode::StrayTag, format!("removed {}", stray.join(", "))));
    }
    let content = content.strip_prefix('\n').unwrap_or(&content);
    block.content = content.trim_end().to_string();
    if !block.is_empty() {
        blocks.push(block);
    }
}

/// A short, printable excerpt of `s` for messages.
pub(crate) fn clip(s: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut out: String = s.chars().take(MAX_CHARS).collect();
    if s.chars().nth(MAX_CHARS).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers_and_content() {
        let raw = "<|ref|>title<|/ref|><|det|>[[10, 20, 990, 60]]<|/det|>\n# Hello\n\n\
                   <|ref|>text<|/ref|><|det|>[[10, 80, 500, 300], [510, 80, 990, 300]]<|/det|>\nBody text.\n";
        let blocks = parse_grounding(raw);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "title");
        assert_eq!(blocks[0].boxes, vec![[10, 20, 990, 60]]);
        assert_eq!(blocks[0].content, "# Hello");
        assert_eq!(blocks[1].boxes.len(), 2);
        assert_eq!(blocks[1].content, "Body text.");
        assert!(blocks.iter().all(|b| b.warnings.is_empty()));
    }

    #[test]
    fn free_text_is_one_block() {
        let blocks = parse_grounding("Just text.\nMore.<｜end▁of▁sentence｜>");
        assert_eq!(blocks.len(), 1);
        assert!(!blocks[0].has_header);
        assert_eq!(blocks[0].content, "Just text.\nMore.");
    }

    #[test]
    fn truncated_header_is_text_with_warning() {
        let blocks = parse_grounding("<|ref|>text<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\nA\n<|ref|>tab");
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1].content, "tab");
        assert_eq!(blocks[1].warnings[0].code, WarningCode::UnclosedRef);
        let blocks = parse_grounding("<|ref|>text<|/ref|><|det|>[[1, 2, 3");
        assert_eq!(blocks.len(), 1);
        assert!(blocks[0].boxes.is_empty());
        assert!(blocks[0].warnings.iter().any(|w| w.code == WarningCode::UnclosedDet));
        assert!(blocks[0].warnings.iter().any(|w| w.code == WarningCode::BadBox));
    }

    #[test]
    fn stray_tags_are_removed_with_a_warning() {
        let blocks =
            parse_grounding("<|ref|>text<|/ref|><|det|>[[1,2,3,4]]<|/det|>\nA <|/ref|>B<｜place▁holder▁no▁7｜>C");
        assert_eq!(blocks[0].content, "A BC");
        assert_eq!(blocks[0].warnings[0].code, WarningCode::StrayTag);
    }

    #[test]
    fn odd_bytes_never_panic() {
        for raw in ["<|ref|>", "<|det|>", "<|ref|>é<|/ref|><|det|>[[é]]", "<｜", "<|det|>[[[[1,2,3,4]]]]<|/det|>", "\n"]
        {
            let _ = parse_grounding(raw);
        }
    }
}
