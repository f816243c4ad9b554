//! Unicode normalisation of OCR text: always NFC; compatibility folding (NFKC) only for the
//! character classes a routing profile names, where folding loses nothing a reader needs
//! (ligatures, presentation forms, full-width letters and digits, half-width kana). Superscripts,
//! fractions, circled numbers and full-width CJK punctuation are never folded.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// A class of compatibility characters that may be folded to their NFKC form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fold {
    /// Latin and Armenian typographic ligatures (ﬁ → fi), U+FB00–FB06, U+FB13–FB17.
    Ligatures,
    /// Full-width Latin letters and digits (Ａ１ → A1); full-width punctuation is kept.
    FullwidthAlnum,
    /// Arabic presentation forms (contextual glyph codes) to letters; word ligatures such as
    /// ﷺ and ﷽ are kept.
    ArabicPresentation,
    /// Half-width katakana and punctuation to their full-width forms (ｶﾞ → ガ).
    HalfwidthKana,
    /// Half-width Hangul jamo to their full forms.
    HalfwidthHangul,
}

impl Fold {
    fn applies(self, c: char) -> bool {
        let u = c as u32;
        match self {
            Fold::Ligatures => matches!(u, 0xFB00..=0xFB06 | 0xFB13..=0xFB17),
            Fold::FullwidthAlnum => matches!(u, 0xFF10..=0xFF19 | 0xFF21..=0xFF3A | 0xFF41..=0xFF5A),
            Fold::ArabicPresentation => matches!(u, 0xFB50..=0xFDEF | 0xFE70..=0xFEFE),
            Fold::HalfwidthKana => matches!(u, 0xFF61..=0xFF9F),
            Fold::HalfwidthHangul => matches!(u, 0xFFA0..=0xFFDC),
        }
    }
}

/// NFC of `text` after folding the characters of the given classes to NFKC.
pub fn normalize(text: &str, folds: &[Fold]) -> String {
    if folds.is_empty() {
        return text.nfc().collect();
    }
    let mut folded = String::with_capacity(text.len());
    for c in text.chars() {
        if folds.iter().any(|f| f.applies(c)) {
            folded.extend(std::iter::once(c).nfkc());
        } else {
            folded.push(c);
        }
    }
    folded.nfc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_only_the_named_classes() {
        let all = [Fold::Ligatures, Fold::FullwidthAlnum, Fold::HalfwidthKana];
        assert_eq!(normalize("ﬁnal Ａ１，x²", &all), "final A1，x²");
        assert_eq!(normalize("ﬁnal", &[]), "ﬁnal");
        assert_eq!(normalize("ｶﾞｲﾄﾞ", &all), "ガイド");
        // NFC composes decomposed input whatever the folds.
        assert_eq!(normalize("e\u{301}", &[]), "é");
        assert_eq!(normalize("\u{FEDF}\u{FEE0}", &[Fold::ArabicPresentation]), "\u{644}\u{644}");
        assert_eq!(normalize("\u{FDFA}", &[Fold::ArabicPresentation]), "\u{FDFA}");
    }
}
