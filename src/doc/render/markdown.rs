//! Markdown: blocks in reading order separated by blank lines, pages by the configured
//! separator. Headings as `#`, tables as GitHub Markdown when the grid is simple (HTML
//! otherwise), formulas in the chosen delimiters, figures linked to their cropped files.
//!
//! The text comes from a model, so it is treated as untrusted: raw HTML in text goes through
//! `ammonia`, table cells (entity-decoded when the model's HTML table was parsed) are escaped
//! again, HTML hidden in formulas is defused, and links or images whose target runs script
//! (`javascript:`, `vbscript:`, `data:`) are replaced by their text. A Markdown viewer that
//! passes HTML through therefore never meets a `<script>`, an `onerror=` or a script link.

use std::borrow::Cow;
use std::ops::Range;

use pulldown_cmark::{Event, Options, Parser, Tag};

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
        let parts: Vec<String> =
            visible(page, opts).filter_map(|b| block_markdown(doc, page, b, opts, figures)).collect();
        out.push_str(&parts.join("\n\n"));
    }
    let mut out = defuse_links(&out).into_owned();
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('\n');
    out
}

/// One block as Markdown; `None` when there is nothing to show (a figure without an image).
fn block_markdown(
    doc: &Document,
    page: &Page,
    block: &Block,
    opts: &RenderOptions,
    figures: &Figures,
) -> Option<String> {
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
            Some(table.to_markdown_with(&table_cell).unwrap_or_else(|| table.to_html()))
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
        t.as_bytes()
            .windows(2)
            .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || matches!(w[1], b'/' | b'!' | b'?')))
    };
    let (segs, _) = segments(text);
    let math_html = segs.iter().any(|s| matches!(s, Segment::Inline(m) | Segment::Display(m) if has_html(m)));
    if !math_html && !segs.iter().any(|s| matches!(s, Segment::Text(t) if tag_like(t))) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    for seg in segs {
        match seg {
            Segment::Text(t) => out.push_str(&ammonia::clean(t)),
            Segment::Inline(m) => out.push_str(&delimit(&defuse_html(m), false, MathDelimiters::Latex)),
            Segment::Display(m) => out.push_str(&delimit(&defuse_html(m), true, MathDelimiters::Latex)),
        }
    }
    out
}

/// The text of one cell of a Markdown table. Cell text was entity-decoded when the model's
/// HTML table was parsed (`&lt;script&gt;` is `<script>` here), so `&`, `<` and `>` are escaped
/// again outside formulas; formulas keep their LaTeX, with any HTML in them defused.
fn table_cell(text: &str) -> String {
    if !text.contains(['&', '<', '>']) {
        return text.to_string();
    }
    let (segs, _) = segments(text);
    let mut out = String::with_capacity(text.len() + 16);
    let mut cursor = 0;
    for seg in segs {
        match seg {
            Segment::Text(t) => {
                for ch in t.chars() {
                    match ch {
                        '&' => out.push_str("&amp;"),
                        '<' => out.push_str("&lt;"),
                        '>' => out.push_str("&gt;"),
                        _ => out.push(ch),
                    }
                }
                cursor += t.len();
            }
            Segment::Inline(m) | Segment::Display(m) => {
                // Keep the formula exactly as written (its own delimiters), defusing only HTML.
                let body_start = m.as_ptr() as usize - text.as_ptr() as usize;
                let closer_len = body_start - cursor;
                let end = (body_start + m.len() + closer_len).min(text.len());
                out.push_str(&text[cursor..body_start]);
                out.push_str(&defuse_html(m));
                out.push_str(&text[body_start + m.len()..end]);
                cursor = end;
            }
        }
    }
    out.push_str(&text[cursor.min(text.len())..]);
    out
}

/// Whether a Markdown viewer would read some of `text` as raw HTML.
fn has_html(text: &str) -> bool {
    text.contains('<') && Parser::new(text).any(|e| matches!(e, Event::Html(_) | Event::InlineHtml(_)))
}

/// `text` with `<` escaped when a Markdown viewer would read some of it as raw HTML (a formula
/// such as `a<b` is left alone; `<script>` inside `\(...\)` is not).
fn defuse_html(text: &str) -> Cow<'_, str> {
    if has_html(text) {
        Cow::Owned(text.replace('<', "&lt;"))
    } else {
        Cow::Borrowed(text)
    }
}

/// URL schemes that run script or smuggle documents when a link or image is followed.
const UNSAFE_SCHEMES: [&str; 3] = ["javascript:", "vbscript:", "data:"];

/// Whether a link target uses one of [`UNSAFE_SCHEMES`]. Browsers ignore ASCII whitespace and
/// control characters inside a scheme (`java\tscript:`) and its case, so this does too.
fn is_unsafe_url(url: &str) -> bool {
    let scheme: String = url
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_control())
        .take_while(|&c| c != ':')
        .chain(std::iter::once(':'))
        .collect::<String>()
        .to_ascii_lowercase();
    UNSAFE_SCHEMES.contains(&scheme.as_str())
}

/// Replaces every link or image with an unsafe target by its text (an image by its alt text)
/// and drops link reference definitions with unsafe targets. Markdown without any is returned
/// as it is.
fn defuse_links(markdown: &str) -> Cow<'_, str> {
    let mut text = Cow::Borrowed(markdown);
    // Removing a link can make a new one (`[[a](javascript:x)](javascript:y)`): repeat until none.
    for _ in 0..MAX_LINK_PASSES {
        let edits = unsafe_link_edits(&text);
        if edits.is_empty() {
            return text;
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (range, replacement) in edits {
            out.push_str(&text[at..range.start]);
            out.push_str(&replacement);
            at = range.end;
        }
        out.push_str(&text[at..]);
        text = Cow::Owned(out);
    }
    // Still not clean after many passes: a pathological input; keep only its plain text.
    Cow::Owned(
        Parser::new(&text).filter_map(|e| if let Event::Text(t) = e { Some(t.into_string()) } else { None }).collect(),
    )
}

/// Passes of [`defuse_links`] before it falls back to plain text.
const MAX_LINK_PASSES: usize = 8;

/// The source ranges of unsafe links, images and reference definitions, in order and not
/// overlapping, each with its replacement.
fn unsafe_link_edits(markdown: &str) -> Vec<(Range<usize>, String)> {
    let parser = Parser::new_ext(markdown, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH);
    let mut edits: Vec<(Range<usize>, String)> = parser
        .reference_definitions()
        .iter()
        .filter(|(_, def)| is_unsafe_url(&def.dest))
        .map(|(_, def)| (def.span.clone(), String::new()))
        .collect();
    // The unsafe link being read: its range, how deep inside it we are, its text so far.
    let mut open: Option<(Range<usize>, usize, String)> = None;
    for (event, range) in parser.into_offset_iter() {
        if let Some((outer, depth, mut text)) = open.take() {
            let depth = match event {
                Event::Start(_) => depth + 1,
                Event::End(_) if depth == 0 => {
                    edits.push((outer, text));
                    continue;
                }
                Event::End(_) => depth - 1,
                Event::Text(t) | Event::Code(t) => {
                    text.push_str(&t);
                    depth
                }
                _ => depth,
            };
            open = Some((outer, depth, text));
            continue;
        }
        if let Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) = &event {
            if is_unsafe_url(dest_url) {
                open = Some((range, 0, String::new()));
            }
        }
    }
    edits.sort_by_key(|(r, _)| r.start);
    // Keep the outermost of overlapping ranges.
    let mut kept: Vec<(Range<usize>, String)> = Vec::with_capacity(edits.len());
    for (range, text) in edits {
        if kept.last().is_some_and(|(last, _)| range.start < last.end) {
            continue;
        }
        // The replacement is plain text: escape what could start new Markdown syntax.
        let text = text.replace('\\', "\\\\").replace('[', "\\[").replace(']', "\\]").replace('<', "&lt;");
        kept.push((range, text));
    }
    kept
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
        // HTML hidden inside a formula is defused, an ordinary comparison is not.
        let s = sanitise_inline_html(r"\(<script>alert(1)</script>\)");
        assert!(!s.contains("<script"), "{s}");
    }

    #[test]
    fn table_cells_are_escaped_again() {
        assert_eq!(table_cell("plain"), "plain");
        assert_eq!(table_cell("<script>alert(1)</script> & co"), "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co");
        assert_eq!(table_cell(r"x \(a<b\) y<z"), r"x \(a<b\) y&lt;z");
        assert_eq!(table_cell(r"$$<img src=x onerror=e()>$$"), r"$$&lt;img src=x onerror=e()>$$");
    }

    #[test]
    fn unsafe_links_become_text() {
        let targets = |md: &str| -> Vec<String> {
            let p = Parser::new(md);
            let defs: Vec<String> = p.reference_definitions().iter().map(|(_, d)| d.dest.to_string()).collect();
            let links = p.filter_map(|e| match e {
                Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => Some(dest_url.to_string()),
                _ => None,
            });
            defs.into_iter().chain(links).collect()
        };
        let md = "[ok](https://example.org) [x](javascript:alert(1)) ![p](data:image/png;base64,AA) \
                  [y](<JaVa\tScRiPt:alert(2)>) <vbscript:msgbox> [r][bad] [e](&#106;avascript:alert(4))\n\n\
                  [bad]: javascript:alert(3)\n";
        assert_eq!(targets(md).iter().filter(|t| is_unsafe_url(t)).count(), 7, "{:?}", targets(md));
        let out = defuse_links(md);
        assert_eq!(targets(&out), ["https://example.org"], "{out}");
        assert!(out.contains(" x ") && out.contains(" p ") && out.contains(" y ") && out.contains(" e"), "{out}");
        assert!(!out.contains("alert(3)"), "the definition is gone: {out}");
        let nested = defuse_links("[[a](javascript:x)](javascript:y)");
        assert!(targets(&nested).is_empty() && !nested.contains("javascript"), "{nested}");
        assert!(matches!(defuse_links("no links [here] (at all)"), Cow::Borrowed(_)));
    }
}
