//! The features of the words of one script class, hashed to 32 bits. Shared by training and
//! detection so both see identical features.
//!
//! Words are maximal runs of characters of the class (see [`crate::script::belongs`]), lower
//! cased. Each word gives three kinds of evidence:
//! - **in-word character n-grams** of orders 2 to [`MAX_ORDER`] (kinds 1 to 4), the windows of
//!   letters inside the word that hold no combining mark (vowel signs, viramas, accents written
//!   apart): the same features the large-corpus n-gram tables we train from count (see
//!   `examples/build-profiles.rs`). Single letters (kind 0) are not looked up: every language
//!   of a script shows them, so they cost the most and tell the least (measured: dropping them
//!   doubled the throughput and moved no accuracy figure by more than 0.2 points);
//! - **word-edge n-grams** (kind [`KIND_EDGE`]): the first and last 1 to [`MAX_EDGE`] letters
//!   with a boundary mark (` a`, ` ab`, `yz `), which carry prefixes, suffixes and short
//!   function words;
//! - **the word itself** (kind [`KIND_WORD`]), for words of at most [`MAX_WORD_CHARS`] letters:
//!   word-level evidence that frequent words (articles, prepositions, the words that tell
//!   Bokmål from Danish) give directly.

use crate::script::belongs;

/// Lowest in-word n-gram order looked up.
pub const MIN_ORDER: usize = 2;
/// Highest in-word n-gram order.
pub const MAX_ORDER: usize = 5;
/// Kind of word-edge n-grams.
pub const KIND_EDGE: usize = MAX_ORDER;
/// Kind of whole words.
pub const KIND_WORD: usize = MAX_ORDER + 1;
/// Number of feature kinds.
pub const KINDS: usize = MAX_ORDER + 2;
/// Most letters of a word edge.
pub const MAX_EDGE: usize = 3;
/// Longest word with a whole-word feature (longer runs are unspaced text or compounds).
pub const MAX_WORD_CHARS: usize = 20;

/// FNV-1a 64-bit offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Word boundary marker of edge n-grams.
const BOUNDARY: char = ' ';
/// Marker that starts the hash of a whole word (so a word never hashes like an n-gram).
const WORD_MARK: char = '\u{2}';

/// Hash of a sequence of characters (code points, not bytes), folded to 32 bits.
pub fn hash_chars(chars: &[char]) -> u32 {
    fold(chars.iter().fold(FNV_OFFSET, |h, &c| step(h, c)))
}

fn step(h: u64, c: char) -> u64 {
    (h ^ c as u64).wrapping_mul(FNV_PRIME)
}

fn fold(h: u64) -> u32 {
    (h ^ (h >> 32)) as u32
}

/// Hash of a whole-word feature.
pub fn hash_word(word: &[char]) -> u32 {
    fold(word.iter().fold(step(FNV_OFFSET, WORD_MARK), |h, &c| step(h, c)))
}

/// True when `c` is a letter of words of `class` (not a digit, space or script punctuation).
pub fn is_word_char(c: char, class: &str) -> bool {
    !c.is_whitespace() && !c.is_numeric() && belongs(c, class) && !is_punctuation(c)
}

/// Calls `f(kind, hash)` for every feature of the words of `class` in `text`; returns the
/// number of letters seen.
pub fn for_each_feature(text: &str, class: &str, mut f: impl FnMut(usize, u32)) -> usize {
    let mut word: Vec<char> = Vec::with_capacity(32);
    let mut letters = 0usize;
    for c in text.chars() {
        if is_word_char(c, class) {
            letters += 1;
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            word_features(&word, &mut f);
            word.clear();
        }
    }
    if !word.is_empty() {
        word_features(&word, &mut f);
    }
    letters
}

/// The features of one lower-cased word.
pub fn word_features(word: &[char], f: &mut impl FnMut(usize, u32)) {
    let len = word.len();
    for start in 0..len {
        let mut h = FNV_OFFSET;
        for (n, &c) in word[start..len.min(start + MAX_ORDER)].iter().enumerate() {
            if is_mark(c) {
                break;
            }
            h = step(h, c);
            if n + 1 >= MIN_ORDER {
                f(n, fold(h));
            }
        }
    }
    let edge = len.min(MAX_EDGE);
    let mut h = step(FNV_OFFSET, BOUNDARY);
    for &c in &word[..edge] {
        h = step(h, c);
        f(KIND_EDGE, fold(h));
    }
    for n in 1..=edge {
        let h = word[len - n..].iter().fold(FNV_OFFSET, |h, &c| step(h, c));
        f(KIND_EDGE, fold(step(h, BOUNDARY)));
    }
    if len <= MAX_WORD_CHARS {
        f(KIND_WORD, hash_word(word));
    }
}

/// True for combining marks (General Category M), which in-word n-grams never span.
pub fn is_mark(c: char) -> bool {
    (c as u32) >= 0x300 && unicode_normalization::char::is_combining_mark(c)
}

/// Punctuation that some scripts encode in their own block (so it has their script property):
/// Ethiopic wordspace and stops, Tibetan marks, Myanmar and Khmer stops, Armenian stops.
fn is_punctuation(c: char) -> bool {
    matches!(c as u32,
        0x0589..=0x058A | 0x1360..=0x1368 | 0x0F04..=0x0F14 | 0x104A..=0x104B | 0x17D4..=0x17DA
        | 0x0964..=0x0965 | 0x0DF4 | 0x0E4F | 0x0E5A..=0x0E5B | 0x166D..=0x166E | 0xA4FE..=0xA4FF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(text: &str, class: &str) -> Vec<(usize, u32)> {
        let mut v = Vec::new();
        for_each_feature(text, class, |k, h| v.push((k, h)));
        v
    }

    #[test]
    fn word_features_are_case_folded_and_complete() {
        // "ab": ab (order 2); edges " a", " ab", "b ", "ab "; the word.
        let g = features("Ab", "Latn");
        assert_eq!(g.len(), 6);
        assert_eq!(g, features("aB", "Latn"));
        assert!(g.contains(&(1, hash_chars(&['a', 'b']))));
        assert!(g.contains(&(KIND_EDGE, hash_chars(&[' ', 'a', 'b']))));
        assert!(g.contains(&(KIND_EDGE, hash_chars(&['a', 'b', ' ']))));
        assert!(g.contains(&(KIND_WORD, hash_word(&['a', 'b']))));
        assert_ne!(hash_word(&['a', 'b']), hash_chars(&['a', 'b']));
        // A 7-letter word: 6 + 5 + 4 + 3 in-word n-grams, 3 + 3 edges, 1 word.
        assert_eq!(features("abcdefg", "Latn").len(), 18 + 6 + 1);
    }

    #[test]
    fn other_scripts_digits_and_punctuation_split_words() {
        assert_eq!(features("ab 12 дом", "Latn"), features("ab", "Latn"));
        assert_eq!(features("ab,cd", "Latn"), features("ab cd", "Latn"));
        assert!(features("дом", "Latn").is_empty());
    }

    #[test]
    fn in_word_ngrams_stop_at_combining_marks() {
        // नमस्ते = न म स + ् (virama) + त + े (vowel sign): in-word n-grams only within नमस.
        let g = features("नमस्ते", "Deva");
        let in_word: Vec<u32> = g.iter().filter(|(k, _)| *k < MAX_ORDER).map(|e| e.1).collect();
        assert_eq!(in_word, vec![hash_chars(&['न', 'म']), hash_chars(&['न', 'म', 'स']), hash_chars(&['म', 'स'])]);
        assert!(g.contains(&(KIND_WORD, hash_word(&"नमस्ते".chars().collect::<Vec<_>>()))));
    }
}
