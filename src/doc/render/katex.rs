//! The vendored KaTeX (web/vendor/katex, MIT, version in [`KATEX_VERSION`]) for standalone
//! HTML: its script, and its stylesheet with the WOFF2 fonts inlined as data URIs so the file
//! works offline and on its own.

use base64::Engine as _;

/// The vendored KaTeX version.
pub const KATEX_VERSION: &str = "0.19.1";

/// katex.min.js.
pub const KATEX_JS: &str = include_str!("../../../web/vendor/katex/katex.min.js");

/// katex.min.css (fonts referenced as `fonts/*.woff2|woff|ttf`).
pub const KATEX_CSS: &str = include_str!("../../../web/vendor/katex/katex.min.css");

macro_rules! fonts {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("../../../web/vendor/katex/fonts/", $name, ".woff2")))),*]
    };
}

/// The WOFF2 fonts, by name.
const FONTS: &[(&str, &[u8])] = fonts!(
    "KaTeX_AMS-Regular",
    "KaTeX_Caligraphic-Bold",
    "KaTeX_Caligraphic-Regular",
    "KaTeX_Fraktur-Bold",
    "KaTeX_Fraktur-Regular",
    "KaTeX_Main-Bold",
    "KaTeX_Main-BoldItalic",
    "KaTeX_Main-Italic",
    "KaTeX_Main-Regular",
    "KaTeX_Math-BoldItalic",
    "KaTeX_Math-Italic",
    "KaTeX_SansSerif-Bold",
    "KaTeX_SansSerif-Italic",
    "KaTeX_SansSerif-Regular",
    "KaTeX_Script-Regular",
    "KaTeX_Size1-Regular",
    "KaTeX_Size2-Regular",
    "KaTeX_Size3-Regular",
    "KaTeX_Size4-Regular",
    "KaTeX_Typewriter-Regular",
);

/// The stylesheet with every `src:` list replaced by the inlined WOFF2 font.
pub fn css_with_inline_fonts() -> String {
    let mut out = String::with_capacity(KATEX_CSS.len() + 400_000);
    let mut rest = KATEX_CSS;
    while let Some(at) = rest.find("src:") {
        out.push_str(&rest[..at]);
        let decl = &rest[at..];
        let end = decl.find([';', '}']).unwrap_or(decl.len());
        let name = decl
            .find("url(fonts/")
            .map(|u| &decl[u + "url(fonts/".len()..])
            .and_then(|n| n.find('.').map(|dot| &n[..dot]));
        match name.and_then(|n| FONTS.iter().find(|(f, _)| *f == n)) {
            Some((_, bytes)) => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
                out.push_str(&format!("src:url(data:font/woff2;base64,{b64}) format(\"woff2\")"));
            }
            None => out.push_str(&decl[..end]),
        }
        rest = &decl[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_font_is_inlined() {
        let css = css_with_inline_fonts();
        assert!(!css.contains("url(fonts/"), "a font reference was left: the vendored list is out of date");
        assert_eq!(css.matches("data:font/woff2;base64,").count(), KATEX_CSS.matches(".woff2)").count());
    }
}
