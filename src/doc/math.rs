//! Formulas: LaTeX kept verbatim, found by its delimiters, rewritten to one delimiter style.
//!
//! The model writes inline math as `\( … \)` and display math as `\[ … \]` (as the official scripts expect);
//! `$$ … $$` is also read. Single `$` is not (it is far more often money than math). The
//! official post-processing rewrites `\coloneqq` → `:=` and `\eqqcolon` → `=:`; so do we.

use serde::{Deserialize, Serialize};

/// The official LaTeX rewrites, applied to all model text.
pub const REWRITES: [(&str, &str); 2] = [("\\coloneqq", ":="), ("\\eqqcolon", "=:")];

/// Which delimiters renderers write around formulas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum MathDelimiters {
    /// `\( … \)` inline, `\[ … \]` display (as the model writes them).
    #[default]
    Latex,
    /// `$ … $` inline, `$$ … $$` display (what many Markdown tools expect).
    Dollar,
}

/// A piece of text: plain, or a formula (delimiters removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Text outside formulas.
    Text(&'a str),
    /// An inline formula.
    Inline(&'a str),
    /// A display formula.
    Display(&'a str),
}

/// Applies [`REWRITES`].
pub fn apply_rewrites(text: &str) -> String {
    let mut out = text.to_string();
    for (from, to) in REWRITES {
        if out.contains(from) {
            out = out.replace(from, to);
        }
    }
    out
}

/// Splits `text` into plain text and formulas. An opener without its closer stays text and
/// makes the second value `true` (unbalanced).
pub fn segments(text: &str) -> (Vec<Segment<'_>>, bool) {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut unbalanced = false;
    let mut plain_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let opener = match (bytes[i], bytes.get(i + 1)) {
            (b'\\', Some(b'(')) => Some(("\\)", false, 2)),
            (b'\\', Some(b'[')) => Some(("\\]", true, 2)),
            (b'$', Some(b'$')) => Some(("$$", true, 2)),
            (b'\\', Some(_)) => {
                // An escaped character (`\\`, `\$`, ...): skip both bytes.
                i += 2;
                continue;
            }
            _ => None,
        };
        let Some((closer, display, open_len)) = opener else {
            i += 1;
            continue;
        };
        let body_start = i + open_len;
        match find_closer(text, body_start, closer) {
            Some(body_end) => {
                if plain_start < i {
                    out.push(Segment::Text(&text[plain_start..i]));
                }
                let body = &text[body_start..body_end];
                out.push(if display { Segment::Display(body) } else { Segment::Inline(body) });
                i = body_end + closer.len();
                plain_start = i;
            }
            None => {
                unbalanced = true;
                i = body_start;
            }
        }
    }
    if plain_start < text.len() {
        out.push(Segment::Text(&text[plain_start..]));
    }
    (out, unbalanced)
}

/// Finds `closer` from `from`, skipping escaped characters (`\\` is one escaped backslash).
fn find_closer(text: &str, from: usize, closer: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = from;
    while i < bytes.len() {
        if bytes[i..].starts_with(closer.as_bytes()) {
            return Some(i);
        }
        if bytes[i] == b'\\' && closer.starts_with('\\') && bytes.get(i + 1) == Some(&b'\\') {
            i += 2;
            continue;
        }
        i += 1;
    }
    None
}

/// Rewrites every formula in `text` with the chosen delimiters.
pub fn with_delimiters(text: &str, style: MathDelimiters) -> String {
    let (segs, _) = segments(text);
    let mut out = String::with_capacity(text.len());
    for seg in segs {
        match seg {
            Segment::Text(t) => out.push_str(t),
            Segment::Inline(m) => out.push_str(&delimit(m, false, style)),
            Segment::Display(m) => out.push_str(&delimit(m, true, style)),
        }
    }
    out
}

/// Wraps a formula body in delimiters.
pub fn delimit(body: &str, display: bool, style: MathDelimiters) -> String {
    match (style, display) {
        (MathDelimiters::Latex, false) => format!("\\({body}\\)"),
        (MathDelimiters::Latex, true) => format!("\\[{body}\\]"),
        (MathDelimiters::Dollar, false) => format!("${}$", body.trim()),
        (MathDelimiters::Dollar, true) => format!("$${body}$$"),
    }
}

/// The formula of a display-equation block: the body of its single display formula, or the
/// whole text when the model gave no delimiters. `None` if the text also holds prose.
pub fn display_formula(text: &str) -> Option<String> {
    let (segs, unbalanced) = segments(text.trim());
    if unbalanced {
        return None;
    }
    let mut formulas = segs.iter().filter(|s| !matches!(s, Segment::Text(t) if t.trim().is_empty()));
    match (formulas.next(), formulas.next()) {
        (Some(Segment::Display(m) | Segment::Inline(m)), None) => Some(m.trim().to_string()),
        (Some(Segment::Text(t)), None) => Some(t.trim().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_inline_and_display() {
        let (segs, bad) = segments(r"Let \(x^2\) be \[ \int f \] ok $$a$$ \$5");
        assert!(!bad);
        assert_eq!(
            segs,
            vec![
                Segment::Text("Let "),
                Segment::Inline("x^2"),
                Segment::Text(" be "),
                Segment::Display(r" \int f "),
                Segment::Text(" ok "),
                Segment::Display("a"),
                Segment::Text(r" \$5"),
            ]
        );
    }

    #[test]
    fn unbalanced_stays_text() {
        let (segs, bad) = segments(r"cut \(x + ");
        assert!(bad);
        assert_eq!(segs, vec![Segment::Text(r"cut \(x + ")]);
    }

    #[test]
    fn delimiters_and_rewrites() {
        assert_eq!(with_delimiters(r"a \(x\) \[y\]", MathDelimiters::Dollar), "a $x$ $$y$$");
        assert_eq!(apply_rewrites(r"f \coloneqq g \eqqcolon h"), "f := g =: h");
        assert_eq!(display_formula(r"\[ E = mc^2 \]").as_deref(), Some("E = mc^2"));
        assert_eq!(display_formula(r"E = mc^2").as_deref(), Some("E = mc^2"));
        assert_eq!(display_formula(r"\[a\] and \[b\]"), None);
    }

    #[test]
    fn line_breaks_inside_display_math() {
        let (segs, bad) = segments(r"\[ a \\ b \]");
        assert!(!bad);
        assert_eq!(segs, vec![Segment::Display(r" a \\ b ")]);
    }
}
