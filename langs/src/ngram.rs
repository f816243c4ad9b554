//! Character n-gram features (orders 1 to [`MAX_ORDER`]) of the words of one script class,
//! hashed to 32 bits. Shared by training and detection so both see identical features.
//!
//! Words are maximal runs of characters of the class (see [`crate::script::belongs`]), lower
//! cased and padded with one space each side, so n-grams mark word starts and ends.

use crate::script::belongs;

/// Highest n-gram order.
pub const MAX_ORDER: usize = 4;

/// FNV-1a 64-bit offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Word boundary marker.
const BOUNDARY: char = ' ';

/// Hash of a sequence of characters (code points, not bytes), folded to 32 bits.
pub fn hash_chars(chars: &[char]) -> u32 {
    let mut h = FNV_OFFSET;
    for &c in chars {
        h = (h ^ c as u64).wrapping_mul(FNV_PRIME);
    }
    (h ^ (h >> 32)) as u32
}

/// Calls `f(order, hash)` for every n-gram of the words of `class` in `text`; returns the
/// number of letters seen.
pub fn for_each_ngram(text: &str, class: &str, mut f: impl FnMut(usize, u32)) -> usize {
    // Window of the last MAX_ORDER characters of the current word (with the leading boundary).
    let mut window = [BOUNDARY; MAX_ORDER];
    let mut len = 0usize; // characters in the window, capped at MAX_ORDER
    let mut in_word = false;
    let mut letters = 0usize;
    for c in text.chars() {
        let is_letter = !c.is_whitespace() && !c.is_numeric() && belongs(c, class) && !is_punctuation(c);
        if is_letter {
            if !in_word {
                window = [BOUNDARY; MAX_ORDER];
                len = 1;
                in_word = true;
            }
            letters += 1;
            for lc in c.to_lowercase() {
                push(&mut window, &mut len, lc, &mut f);
            }
        } else if in_word {
            push(&mut window, &mut len, BOUNDARY, &mut f);
            in_word = false;
        }
    }
    if in_word {
        push(&mut window, &mut len, BOUNDARY, &mut f);
    }
    letters
}

/// Appends `c` to the word window and reports the n-grams ending with it.
fn push(window: &mut [char; MAX_ORDER], len: &mut usize, c: char, f: &mut impl FnMut(usize, u32)) {
    window.rotate_left(1);
    window[MAX_ORDER - 1] = c;
    *len = (*len + 1).min(MAX_ORDER);
    // A lone boundary is not a feature.
    let min_order = if c == BOUNDARY { 2 } else { 1 };
    for n in min_order..=*len {
        f(n, hash_chars(&window[MAX_ORDER - n..]));
    }
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

    fn grams(text: &str, class: &str) -> Vec<(usize, u32)> {
        let mut v = Vec::new();
        for_each_ngram(text, class, |n, h| v.push((n, h)));
        v
    }

    #[test]
    fn word_ngrams_are_padded_and_case_folded() {
        // " ab " gives a, b (order 1), " a", "ab", "b " (2), " ab", "ab " (3), " ab " (4).
        let g = grams("Ab", "Latn");
        assert_eq!(g.len(), 8);
        assert_eq!(g, grams("aB", "Latn"));
        assert!(g.contains(&(4, hash_chars(&[' ', 'a', 'b', ' ']))));
    }

    #[test]
    fn other_scripts_digits_and_punctuation_split_words() {
        assert_eq!(grams("ab 12 дом", "Latn"), grams("ab", "Latn"));
        assert_eq!(grams("ab,cd", "Latn"), grams("ab cd", "Latn"));
        assert!(grams("дом", "Latn").is_empty());
    }
}
