//! Markdown: blocks in reading order separated by blank lines, pages by the configured
//! separator. Headings as `#`, tables as GitHub Markdown when the grid is simple (HTML
//! otherwise), formulas in the chosen delimiters, figures linked to their cropped files.

use super::figures::Figures;
use super::{figure_caption, merged_table, separator, visible, RenderOptions};
use crate::doc::block::{Block, BlockKind};
use crate::doc::document::{Document, Page};
use crate::doc::math::{delimit, segments, with_delimiters, MathDelimiters, Segment};

/// Renders the document as Markdown.
pub(super) fn render(doc: &Document, opts: &RenderOptions, figures: &Figures) -> String {
    let mut out = String::new();
    for (i, page) in doc.pages.iter().enumerate() {
        if i > 0 {
            out.push_str(&separator(opts, page.number));
        }
        let parts: Vec<String> = visible(page, opts).filter_map(|b| block_markdown(doc, page, b, opts, figures)).collect();
        out.push_str(&parts.join("\n\n"));
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('\n');
    out
}

/// One block as Markdown; `None` when there is nothing to show (a figure without an image).
fn block_markdown(doc: &Document, page: &Page, block: &Block, opts: &RenderOptions, figures: &Figures) -> Option<String> {
    match block.kind {
        BlockKind::Image => {
            let figure = figures.get(block.at());
            let alt = figure_caption(page, block).unwrap_or("figure").replace(['[', ']'], "");
            let mut parts = Vec::new();
            if let Some(f) = figure {
                parts.push(format!("![{alt}]({})", f.path));
            }
            if !block.text.trim().is_empty() {
                parts.push(with_delimiters(&block.text, opts.math));
            }
            (!parts.is_empty()).then(|| parts.join("\n\n"))
        }
        _ if block.table.is_some() => {
            let table = merged_table(doc, block)?;
            Some(table.to_markdown().unwrap_or_else(|| table.to_html()))
        }
        BlockKind::Equation if block.latex.is_some() => {
            block.latex.as_deref().map(|latex| delimit(latex, true, opts.math))
        }
        _ => {
            let text = with_delimiters(&sanitise_inline_html(&block.text), opts.math);
            match block.heading_level {
                Some(level) => Some(format!("{} {text}", "#".repeat(level as usize))),
                None if text.trim().is_empty() => None,
                None => Some(text),
            }
        }
    }
}

/// Model text with raw HTML in it goes through `ammonia` (outside formulas), so a Markdown
/// viewer that passes HTML through never meets a `<script>` or an `onerror=`. Text without
/// anything tag-like is left exactly as written.
fn sanitise_inline_html(text: &str) -> String {
    let tag_like = |t: &str| {
        t.as_bytes().windows(2).any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || matches!(w[1], b'/' | b'!' | b'?')))
    };
    let (segs, _) = segments(text);
    if !segs.iter().any(|s| matches!(s, Segment::Text(t) if tag_like(t))) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    for seg in segs {
        match seg {
            Segment::Text(t) => out.push_str(&ammonia::clean(t)),
            Segment::Inline(m) => out.push_str(&delimit(m, false, MathDelimiters::Latex)),
            Segment::Display(m) => out.push_str(&delimit(m, true, MathDelimiters::Latex)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_is_sanitised_but_plain_text_untouched() {
        assert_eq!(sanitise_inline_html(r"a < b and \(x<y\)"), r"a < b and \(x<y\)");
        let s = sanitise_inline_html(r#"<script>alert(1)</script><b>x</b> <img src=a onerror="e()"> \(a<b\)"#);
        assert!(!s.contains("script") && !s.contains("onerror"), "{s}");
        assert!(s.contains("<b>x</b>") && s.contains(r"\(a<b\)"), "{s}");
    }
}
