//! Generation loops: a text whose tail repeats one unit over and over (the model's classic
//! failure, which the official PDF script handles by dropping pages without EOS), and runs of identical consecutive blocks.
//!
//! A tail is periodic with period `p` when `text[i] == text[i - p]` for every byte of it, so a
//! loop cut mid-unit by the token budget is still found. Only the first copy of the unit is
//! kept; the page's raw text keeps everything.

/// How strict the loop detector is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopThresholds {
    /// Least number of repetitions of the unit (counting the kept copy).
    pub min_repeats: usize,
    /// Least length of the whole periodic tail, in bytes.
    pub min_tail_bytes: usize,
    /// Least unit length in bytes (short units are often legitimate: dot leaders, rules).
    pub min_unit_bytes: usize,
}

/// For blocks of a page that finished normally: only blatant loops.
pub const STRICT: LoopThresholds = LoopThresholds { min_repeats: 8, min_tail_bytes: 200, min_unit_bytes: 4 };

/// For the last block of a page that ran out of tokens or was stopped as a loop.
pub const RELAXED: LoopThresholds = LoopThresholds { min_repeats: 3, min_tail_bytes: 30, min_unit_bytes: 2 };

/// Longest unit looked for, in bytes.
const MAX_UNIT_BYTES: usize = 2048;

/// A loop found at the end of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailLoop {
    /// Where the periodic tail starts (byte offset).
    pub start: usize,
    /// Unit length in bytes.
    pub unit: usize,
    /// How many units (possibly fractional at the end) the tail holds, rounded down.
    pub repeats: usize,
}

impl TailLoop {
    /// Byte offset up to which the text is kept: the tail's first unit, on a char boundary.
    /// The periodic tail may start mid-unit (`". The same…"` after `"Intro."`); the unit is
    /// taken from the first word start in the tail, if there is one.
    pub fn keep_until(&self, text: &str) -> usize {
        let bytes = text.as_bytes();
        let shift = (0..self.unit)
            .find(|&r| {
                let at = self.start + r;
                at == 0 || bytes.get(at - 1).is_some_and(|b| b.is_ascii_whitespace())
            })
            .unwrap_or(0);
        let mut end = (self.start + shift + self.unit).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        end
    }
}

/// Finds the shortest-unit loop at the end of `text` that meets `t`.
pub fn find_tail_loop(text: &str, t: LoopThresholds) -> Option<TailLoop> {
    let bytes = text.trim_end().as_bytes();
    let n = bytes.len();
    let max_unit = (n / t.min_repeats.max(1)).min(MAX_UNIT_BYTES);
    for unit in 1..=max_unit {
        // Length of the suffix where every byte equals the byte `unit` earlier.
        let mut run = 0;
        while run + unit < n && bytes[n - 1 - run] == bytes[n - 1 - run - unit] {
            run += 1;
        }
        let tail = run + unit;
        let repeats = tail / unit;
        if repeats >= t.min_repeats && tail >= t.min_tail_bytes {
            // A run of a very short unit (dot leaders, rules) is layout, not a loop.
            if unit < t.min_unit_bytes {
                return None;
            }
            return Some(TailLoop { start: n - tail, unit, repeats });
        }
    }
    None
}

/// Cuts a tail loop from `text`; returns the loop found, if any.
pub fn trim_tail_loop(text: &mut String, t: LoopThresholds) -> Option<TailLoop> {
    let found = find_tail_loop(text, t)?;
    let keep = found.keep_until(text);
    text.truncate(keep);
    let trimmed = text.trim_end().len();
    text.truncate(trimmed);
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_loop_cut_mid_unit() {
        let mut text = String::from("Intro. ");
        for _ in 0..10 {
            text.push_str("The same sentence again. ");
        }
        text.push_str("The same sen");
        let found = trim_tail_loop(&mut text, STRICT).expect("a loop");
        assert_eq!(found.unit, "The same sentence again. ".len());
        assert_eq!(text, "Intro. The same sentence again.");
    }

    #[test]
    fn leaves_normal_text_and_dot_leaders() {
        let text = "Contents ..................................................................... 3";
        assert_eq!(find_tail_loop(text, STRICT), None);
        let text = "Chapter 1 ..........................................................................................................................................................................................................";
        assert_eq!(find_tail_loop(text, STRICT), None);
        assert_eq!(find_tail_loop("A perfectly ordinary paragraph of text.", RELAXED), None);
    }

    #[test]
    fn multibyte_units_stay_on_char_boundaries() {
        let mut text = String::from("開始");
        for _ in 0..5 {
            text.push_str("重复的文字");
        }
        text.push('重');
        trim_tail_loop(&mut text, RELAXED).expect("a loop");
        assert_eq!(text, "開始重复的文字");
    }
}
