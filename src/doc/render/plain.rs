//! Plain text: what a reader would type, without markup. Also the text that the hOCR and
//! searchable-PDF layers carry, one line per visual line.

use super::{merged_table, separator, visible, RenderOptions};
use crate::doc::block::{Block, BlockKind};
use crate::doc::document::Document;
use crate::doc::math::{segments, Segment};

/// Renders the document as plain text.
pub(super) fn render(doc: &Document, opts: &RenderOptions) -> String {
    let mut out = String::new();
    for (i, page) in doc.pages.iter().enumerate() {
        if i > 0 {
            out.push_str(&separator(opts, page.number));
        }
        let parts: Vec<String> =
            visible(page, opts).map(|b| block_lines(doc, b).join("\n")).filter(|t| !t.trim().is_empty()).collect();
        out.push_str(&parts.join("\n\n"));
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('\n');
    out
}

/// The lines of a block as plain text: tables one row per line (cells tab-separated),
/// formulas as their LaTeX source, Markdown emphasis and list marks kept as written.
pub(crate) fn block_lines(doc: &Document, block: &Block) -> Vec<String> {
    if block.table.is_some() {
        return merged_table(doc, block).map(|t| t.to_plain_rows()).unwrap_or_default();
    }
    if block.kind == BlockKind::Image {
        return Vec::new();
    }
    if let (BlockKind::Equation, Some(latex)) = (block.kind, &block.latex) {
        return latex.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    }
    let (segs, _) = segments(&block.text);
    let mut text = String::new();
    for seg in segs {
        match seg {
            Segment::Text(t) => text.push_str(t),
            Segment::Inline(m) => text.push_str(m.trim()),
            Segment::Display(m) => text.push_str(m.trim()),
        }
    }
    text.lines().map(|l| l.trim_end().to_string()).filter(|l| !l.trim().is_empty()).collect()
}
