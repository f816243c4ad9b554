//! Standalone HTML: one file with the pages in order, tables, figures inlined as data URIs and
//! math rendered in the browser by the vendored KaTeX (inlined, fonts included; left out when
//! the document has no formulas).
//!
//! Everything the model wrote goes through `ammonia` (a model can emit `<script>`); tables
//! and formulas are regenerated from parsed data and escaped.

use base64::Engine as _;
use pulldown_cmark::{html::push_html, Options, Parser};

use super::figures::Figures;
use super::katex::{css_with_inline_fonts, KATEX_JS};
use super::{figure_caption, merged_table, visible, RenderOptions};
use crate::doc::block::{Block, BlockKind};
use crate::doc::document::{Document, Page};
use crate::doc::math::{delimit, segments, MathDelimiters, Segment};
use crate::doc::table::escape_html;

/// Page styling: readable measure, tables with borders, figures scaled down.
const BASE_CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;line-height:1.5;\
max-width:52rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}\
.page{margin-bottom:2rem}.page-break{border:0;border-top:1px dashed #999;margin:2rem 0}\
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #999;padding:.25rem .5rem;vertical-align:top}\
th{background:#f2f2f2}figure{margin:1rem 0}img{max-width:100%}.math-display{display:block;margin:1rem 0;overflow-x:auto}\
.caption{font-style:italic;text-align:center}.truncated{border-left:3px solid #d33;padding-left:.5rem}";

/// Renders every `.math` element with KaTeX (its TeX is in `data-tex`).
const RENDER_MATH_JS: &str = "document.querySelectorAll('.math').forEach(function(e){try{katex.render(\
e.getAttribute('data-tex'),e,{displayMode:e.classList.contains('math-display'),throwOnError:false})}catch(x){}});";

/// Marks a formula's place while Markdown is turned into HTML (letters only, so Markdown and
/// the sanitizer leave it alone).
const PLACEHOLDER: &str = "DOCSEEKMATHPLACEHOLDER";

/// Renders the document as one standalone HTML file.
pub(super) fn render(doc: &Document, opts: &RenderOptions, figures: &Figures) -> String {
    let mut body = String::new();
    let mut has_math = false;
    for (i, page) in doc.pages.iter().enumerate() {
        if i > 0 {
            body.push_str("<hr class=\"page-break\">\n");
        }
        body.push_str(&format!("<section class=\"page\" id=\"page-{n}\" data-page=\"{n}\">\n", n = page.number));
        for block in visible(page, opts) {
            let (html, math) = block_html(doc, page, block, figures);
            has_math |= math;
            if !html.is_empty() {
                body.push_str(&html);
                body.push('\n');
            }
        }
        body.push_str("</section>\n");
    }
    let title = escape_html(&opts.title_for(doc));
    let katex = opts.html_katex && has_math;
    let mut out = String::from("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(&format!("<meta name=\"generator\" content=\"docseek {}\">\n", env!("CARGO_PKG_VERSION")));
    out.push_str(&format!("<title>{title}</title>\n<style>{BASE_CSS}</style>\n"));
    if katex {
        out.push_str(&format!("<style>{}</style>\n", css_with_inline_fonts()));
    }
    out.push_str("</head>\n<body>\n<main class=\"document\">\n");
    out.push_str(&body);
    out.push_str("</main>\n");
    if katex {
        // `</script` cannot occur in the minified library; checked by a test.
        out.push_str(&format!("<script>{KATEX_JS}</script>\n<script>{RENDER_MATH_JS}</script>\n"));
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// One block as HTML, and whether it holds math.
fn block_html(doc: &Document, page: &Page, block: &Block, figures: &Figures) -> (String, bool) {
    let attrs = block_attrs(block, "");
    match block.kind {
        BlockKind::Image => {
            let Some(figure) = figures.get(block.at()) else { return (String::new(), false) };
            let alt = escape_html(figure_caption(page, block).unwrap_or("figure"));
            let b64 = base64::engine::general_purpose::STANDARD.encode(&figure.png);
            (format!("<figure{attrs}><img alt=\"{alt}\" src=\"data:image/png;base64,{b64}\"></figure>"), false)
        }
        _ if block.table.is_some() => {
            let Some(table) = merged_table(doc, block) else { return (String::new(), false) };
            let html = table.to_html_with(&|cell| inline_html(cell).0.replace('\n', "<br>"));
            let math = table.cells.iter().any(|c| has_formula(&c.text));
            (format!("<div{attrs}>{html}</div>"), math)
        }
        BlockKind::Equation if block.latex.is_some() => {
            let latex = block.latex.as_deref().unwrap_or_default();
            (format!("<div{attrs}>{}</div>", math_html(latex, true)), true)
        }
        _ => {
            let (html, math) = markdown_html(&block.text);
            let class = if block.kind.is_caption() { "caption" } else { "" };
            match block.heading_level {
                Some(level) => {
                    let inner = html.trim().trim_start_matches("<p>").trim_end_matches("</p>").to_string();
                    (format!("<h{level}{attrs}>{inner}</h{level}>"), math)
                }
                None if html.trim().is_empty() => (String::new(), false),
                None => (format!("<div{}>{html}</div>", block_attrs(block, class)), math),
            }
        }
    }
}

/// `class`, `data-*`, `lang` and `dir` attributes of a block.
fn block_attrs(block: &Block, extra_class: &str) -> String {
    let mut classes = vec!["block".to_string(), kind_class(block)];
    if block.flags.truncated {
        classes.push("truncated".into());
    }
    if !extra_class.is_empty() {
        classes.push(extra_class.into());
    }
    let mut a = format!(" class=\"{}\" data-label=\"{}\"", classes.join(" "), escape_html(&block.label));
    if let Some(b) = block.boxes.first() {
        a.push_str(&format!(" data-bbox=\"{} {} {} {}\"", b.pixels[0], b.pixels[1], b.pixels[2], b.pixels[3]));
    }
    match &block.language {
        Some(lang) => {
            a.push_str(&format!(
                " lang=\"{}\" dir=\"{}\"",
                escape_html(&lang.tag),
                if lang.rtl { "rtl" } else { "ltr" }
            ));
        }
        None => a.push_str(" dir=\"auto\""),
    }
    a
}

fn kind_class(block: &Block) -> String {
    serde_json::to_value(block.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// Model Markdown to sanitised HTML, formulas kept out of Markdown's way.
fn markdown_html(text: &str) -> (String, bool) {
    let (segs, _) = segments(text);
    let mut md = String::new();
    let mut formulas = Vec::new();
    for seg in &segs {
        match seg {
            // An unbalanced `\(` stays text: keep its backslash through Markdown's escapes.
            Segment::Text(t) => md.push_str(&t.replace("\\(", "\\\\(").replace("\\[", "\\\\[")),
            Segment::Inline(_) | Segment::Display(_) => {
                md.push_str(&format!("{PLACEHOLDER}{}X", formulas.len()));
                formulas.push(*seg);
            }
        }
    }
    let mut raw_html = String::new();
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH);
    push_html(&mut raw_html, Parser::new_ext(&md, options));
    let mut clean = ammonia::clean(&raw_html);
    // Put formulas back, last first so `…1X` is not found inside `…11X`.
    for (i, seg) in formulas.iter().enumerate().rev() {
        let html = match seg {
            Segment::Inline(m) => math_html(m, false),
            Segment::Display(m) => math_html(m, true),
            Segment::Text(_) => continue,
        };
        clean = clean.replace(&format!("{PLACEHOLDER}{i}X"), &html);
    }
    (clean, !formulas.is_empty())
}

/// Inline content (a table cell): escaped text with formulas.
fn inline_html(text: &str) -> (String, bool) {
    let (segs, _) = segments(text);
    let mut out = String::new();
    let mut math = false;
    for seg in segs {
        match seg {
            Segment::Text(t) => out.push_str(&escape_html(t)),
            Segment::Inline(m) => {
                math = true;
                out.push_str(&math_html(m, false));
            }
            Segment::Display(m) => {
                math = true;
                out.push_str(&math_html(m, true));
            }
        }
    }
    (out, math)
}

fn has_formula(text: &str) -> bool {
    segments(text).0.iter().any(|s| !matches!(s, Segment::Text(_)))
}

/// A formula element: the TeX source (with delimiters) as text, rendered by KaTeX if present.
fn math_html(tex: &str, display: bool) -> String {
    let tex = tex.trim();
    // A span in both cases: display math may sit inside a paragraph (CSS makes it a block).
    let (tag, class) = if display { ("span", "math math-display") } else { ("span", "math math-inline") };
    format!(
        "<{tag} class=\"{class}\" data-tex=\"{}\">{}</{tag}>",
        escape_html(tex),
        escape_html(&delimit(tex, display, MathDelimiters::Latex))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_removed_and_math_survives_markdown() {
        let (html, math) =
            markdown_html(r"Hello <script>alert(1)</script> **bold** \(a_1 * b_2\) <img src=x onerror=alert(1)>");
        assert!(math);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("onerror"), "{html}");
        assert!(html.contains("<strong>bold</strong>"));
        assert!(html.contains("data-tex=\"a_1 * b_2\""), "{html}");
    }

    #[test]
    fn katex_script_cannot_close_its_tag() {
        assert!(!KATEX_JS.to_ascii_lowercase().contains("</script"));
    }
}
