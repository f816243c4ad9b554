//! Simplified versus Traditional Chinese by characters written only one way, and Japanese
//! kanji text without kana by shinjitai forms Chinese does not use, from OpenCC's character
//! tables (`data/han_variants.txt`, Apache-2.0, see `data/make_han_variants.py`).

use std::collections::HashSet;
use std::sync::OnceLock;

/// The bundled lists: comment lines, then Simplified-only, Traditional-only and
/// Japanese-only characters.
const HAN_VARIANTS: &str = include_str!("../data/han_variants.txt");

struct Variants {
    simplified: HashSet<char>,
    traditional: HashSet<char>,
    japanese: HashSet<char>,
}

fn variants() -> &'static Variants {
    static V: OnceLock<Variants> = OnceLock::new();
    V.get_or_init(|| {
        let mut lines = HAN_VARIANTS.lines().filter(|l| !l.starts_with('#'));
        let simplified = lines.next().unwrap_or_default().chars().collect();
        let traditional = lines.next().unwrap_or_default().chars().collect();
        let japanese = lines.next().unwrap_or_default().chars().collect();
        Variants { simplified, traditional, japanese }
    })
}

/// Counts of Simplified-only and Traditional-only characters in `text`.
pub fn variant_counts(text: &str) -> (usize, usize) {
    let v = variants();
    let (mut s, mut t) = (0, 0);
    for c in text.chars() {
        if v.simplified.contains(&c) {
            s += 1;
        } else if v.traditional.contains(&c) {
            t += 1;
        }
    }
    (s, t)
}

/// Number of Japanese-only (shinjitai) characters in `text`.
pub fn japanese_only_count(text: &str) -> usize {
    let v = variants();
    text.chars().filter(|c| v.japanese.contains(c)).count()
}

/// `Hans` or `Hant` when the text has more characters of one than of the other.
pub fn han_variant(text: &str) -> Option<&'static str> {
    match variant_counts(text) {
        (s, t) if s > t => Some("Hans"),
        (s, t) if t > s => Some("Hant"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_simplified_from_traditional() {
        assert_eq!(han_variant("季度报告显示收入增长"), Some("Hans"));
        assert_eq!(han_variant("季度報告顯示收入增長"), Some("Hant"));
        assert_eq!(han_variant("人人生而自由"), None);
        assert_eq!(japanese_only_count("連結株主資本等変動計算書"), 1);
        assert_eq!(japanese_only_count("季度报告显示收入增长"), 0);
        let v = variants();
        assert!(v.simplified.len() > 2000 && v.traditional.len() > 2000);
    }
}
