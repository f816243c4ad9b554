//! Script detection by the Unicode Script property (via `unicode-script`), grouped into the
//! classes the language models work on: Han with kana is Japanese (`Jpan`), Han with Hangul is
//! Korean (`Kore`), Han alone is `Hani` (then Simplified or Traditional by the Chinese model).

use unicode_script::{Script, UnicodeScript};

/// Class of Han ideographs alone.
pub const HAN: &str = "Hani";
/// Class of Japanese text (kana, with or without kanji).
pub const JAPANESE: &str = "Jpan";
/// Class of Korean text (Hangul, with or without hanja).
pub const KOREAN: &str = "Kore";

/// Weight of one Han, kana or Hangul character against one letter of an alphabet when
/// choosing the dominant script: one ideograph or syllable carries about as much as a short
/// word, so "模型 Transformer 训练" reads as Chinese with an English term.
pub const CJK_WEIGHT: u32 = 3;

/// Share of kana among Han and kana that makes Han text Japanese (Chinese text may quote a
/// kana name; Japanese running text has far more).
const KANA_SHARE_FOR_JAPANESE: f32 = 0.05;
/// Share of Hangul among Han and Hangul that makes Han text Korean.
const HANGUL_SHARE_FOR_KOREAN: f32 = 0.2;

/// The detection class of a character (ISO 15924 code), or `None` for characters shared by
/// scripts (punctuation, digits, symbols: `Zyyy`) and combining marks (`Zinh`).
pub fn char_class(c: char) -> Option<&'static str> {
    if c.is_ascii() {
        return if c.is_ascii_alphabetic() { Some("Latn") } else { None };
    }
    match c.script() {
        Script::Common | Script::Inherited | Script::Unknown => None,
        Script::Hiragana | Script::Katakana => Some(JAPANESE),
        Script::Hangul => Some(KOREAN),
        Script::Han => Some(HAN),
        s => Some(s.short_name()),
    }
}

/// True for characters that join the current run whatever its script (combining marks,
/// joiners, variation selectors).
pub fn is_inherited(c: char) -> bool {
    !c.is_ascii() && c.script() == Script::Inherited
}

/// True when `c` is part of words of class `class` (Han counts for Japanese and Korean too).
pub fn belongs(c: char, class: &str) -> bool {
    match char_class(c) {
        Some(k) => k == class || (k == HAN && (class == JAPANESE || class == KOREAN)),
        None => is_inherited(c),
    }
}

/// True when a class writes without spaces between words (line breaks join without a space).
pub fn is_unspaced(class: &str) -> bool {
    matches!(class, HAN | JAPANESE | "Hans" | "Hant" | "Thai" | "Laoo" | "Khmr" | "Mymr" | "Tibt")
}

/// Weighted letter counts per script class of a text.
#[derive(Debug, Default, Clone)]
pub struct ScriptCounts {
    counts: Vec<(&'static str, u32)>,
    /// Number of letters (characters with a class), unweighted.
    pub letters: usize,
}

impl ScriptCounts {
    /// Counts the letters of `text` per class.
    pub fn of(text: &str) -> Self {
        let mut counts = Self::default();
        for c in text.chars() {
            if let Some(class) = char_class(c) {
                counts.add(class, 1);
            }
        }
        counts
    }

    /// Adds `n` letters of `class`.
    pub fn add(&mut self, class: &'static str, n: u32) {
        self.letters += n as usize;
        match self.counts.iter_mut().find(|(k, _)| *k == class) {
            Some((_, v)) => *v += n,
            None => self.counts.push((class, n)),
        }
    }

    /// Unweighted count of one class.
    pub fn get(&self, class: &str) -> u32 {
        self.counts.iter().find(|(k, _)| *k == class).map_or(0, |(_, v)| *v)
    }

    /// The classes present, Han folded into Japanese or Korean where the text is such, with
    /// their weighted counts, largest first.
    pub fn resolved(&self) -> Vec<(&'static str, u32)> {
        let han = self.get(HAN);
        let kana = self.get(JAPANESE);
        let hangul = self.get(KOREAN);
        let fold_into = if kana > 0 && kana as f32 >= KANA_SHARE_FOR_JAPANESE * (han + kana) as f32 {
            Some(JAPANESE)
        } else if hangul > 0 && hangul as f32 >= HANGUL_SHARE_FOR_KOREAN * (han + hangul) as f32 {
            Some(KOREAN)
        } else {
            None
        };
        let mut out: Vec<(&'static str, u32)> = Vec::with_capacity(self.counts.len());
        for &(k, v) in &self.counts {
            if k == HAN && fold_into.is_some() {
                continue;
            }
            let v = if Some(k) == fold_into { v + han } else { v };
            let weight = if matches!(k, HAN | JAPANESE | KOREAN) { CJK_WEIGHT } else { 1 };
            out.push((k, v * weight));
        }
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        out
    }

    /// The dominant class, if the text has letters.
    pub fn dominant(&self) -> Option<&'static str> {
        self.resolved().first().map(|&(k, _)| k)
    }
}

/// The `'static` ISO 15924 name of a class.
pub(crate) fn script_name(class: &str) -> &'static str {
    match class {
        HAN => HAN,
        JAPANESE => JAPANESE,
        KOREAN => KOREAN,
        other => unicode_script::Script::from_short_name(other).map_or("Zzzz", |s| s.short_name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_common_scripts() {
        let cases = [
            ("Hello", "Latn"),
            ("Привет", "Cyrl"),
            ("مرحبا", "Arab"),
            ("שלום", "Hebr"),
            ("नमस्ते", "Deva"),
            ("สวัสดี", "Thai"),
            ("ສະບາຍດີ", "Laoo"),
            ("ជំរាបសួរ", "Khmr"),
            ("မင်္ဂလာပါ", "Mymr"),
            ("გამარჯობა", "Geor"),
            ("Բարեւ", "Armn"),
            ("ሰላም", "Ethi"),
            ("안녕하세요", KOREAN),
            ("こんにちは", JAPANESE),
            ("人人生而自由", HAN),
            ("བཀྲ་ཤིས", "Tibt"),
            ("ސަލާމް", "Thaa"),
            ("Γειά σου", "Grek"),
        ];
        for (text, want) in cases {
            assert_eq!(ScriptCounts::of(text).dominant(), Some(want), "{text}");
        }
    }

    #[test]
    fn kanji_with_kana_is_japanese_and_hanja_with_hangul_is_korean() {
        assert_eq!(ScriptCounts::of("東京都の人口は多い").dominant(), Some(JAPANESE));
        assert_eq!(ScriptCounts::of("大韓民國 헌법 제1조").dominant(), Some(KOREAN));
        assert_eq!(ScriptCounts::of("我们使用 Transformer 模型").dominant(), Some(HAN));
        assert_eq!(ScriptCounts::of("2024 - 12.5%").dominant(), None);
    }
}
