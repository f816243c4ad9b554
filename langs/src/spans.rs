//! Mixed-language spans: a text split into runs by script, then long runs into sentences by
//! language, each described by byte offsets, language and script. Characters shared by scripts
//! (spaces, digits, punctuation) join the run around them, so an Arabic line with Western
//! digits stays one Arabic span, while a Latin term inside Chinese becomes its own span.

use std::borrow::Cow;

use crate::detection::{Detection, Span, SCRIPT_COMMON, UNDETERMINED};
use crate::script::{char_class, script_name, HAN, JAPANESE, KOREAN};

/// Runs with at least this many bytes are split into sentences and detected per sentence.
pub const SENTENCE_SPLIT_MIN_BYTES: usize = 64;

/// Splits `text` into spans (see the module docs), detecting each run with `detect` (a
/// detector's `detect`; taken as a function so this module needs no detector type).
pub fn split(detect: impl Fn(&str) -> Detection, text: &str) -> Vec<Span> {
    if text.is_empty() {
        return Vec::new();
    }
    let runs = script_runs(text);
    if runs.is_empty() {
        return vec![Span {
            start: 0,
            end: text.len(),
            code: Cow::Borrowed(UNDETERMINED),
            script: Cow::Borrowed(SCRIPT_COMMON),
            confidence: 0.0,
        }];
    }
    // Per class, the detection of all its runs together: the fallback for a run too short
    // to decide alone (a Russian word before an inline Greek letter).
    let mut by_class: Vec<(&'static str, Detection)> = Vec::new();
    for &(class, _, _) in &runs {
        if by_class.iter().all(|(k, _)| *k != class) {
            let joined: Vec<&str> = runs.iter().filter(|r| r.0 == class).map(|r| &text[r.1..r.2]).collect();
            by_class.push((class, detect(&joined.join(" "))));
        }
    }
    let mut spans: Vec<Span> = Vec::new();
    for (class, start, end) in runs {
        let run = &text[start..end];
        let whole = detect(run);
        let whole = if whole.is_determined() {
            whole
        } else {
            by_class.iter().find(|(k, _)| *k == class).map_or(whole, |(_, d)| d.clone())
        };
        if run.len() < SENTENCE_SPLIT_MIN_BYTES {
            push_merged(&mut spans, span_of(start, end, &whole, class));
            continue;
        }
        for (s, e) in sentences(run) {
            let d = detect(&run[s..e]);
            let d = if d.is_determined() { d } else { whole.clone() };
            push_merged(&mut spans, span_of(start + s, start + e, &d, class));
        }
    }
    spans
}

fn span_of(start: usize, end: usize, d: &Detection, class: &'static str) -> Span {
    let script = if d.is_determined() || d.script != SCRIPT_COMMON {
        d.script.clone()
    } else {
        Cow::Borrowed(script_name(class))
    };
    Span { start, end, code: d.code.clone(), script, confidence: d.confidence }
}

fn push_merged(spans: &mut Vec<Span>, span: Span) {
    if let Some(last) = spans.last_mut() {
        if last.code == span.code && last.script == span.script && last.end == span.start {
            last.confidence = last.confidence.min(span.confidence);
            last.end = span.end;
            return;
        }
    }
    spans.push(span);
}

/// Runs of one script class covering `text`: (class, start, end). Shared characters between
/// runs go to the run before them; leading ones to the first run.
pub fn script_runs(text: &str) -> Vec<(&'static str, usize, usize)> {
    let mut runs: Vec<(&'static str, usize, usize)> = Vec::new();
    for (i, c) in text.char_indices() {
        let end = i + c.len_utf8();
        let Some(class) = char_class(c) else {
            if let Some(last) = runs.last_mut() {
                last.2 = end;
            }
            continue;
        };
        match runs.last_mut() {
            Some(last) if last.0 == class => last.2 = end,
            Some(last) if compatible(last.0, class).is_some() => {
                last.0 = compatible(last.0, class).expect("checked");
                last.2 = end;
            }
            Some(_) => runs.push((class, i, end)),
            None => runs.push((class, 0, end)),
        }
    }
    runs
}

/// The merged class of two adjacent CJK classes (kanji with kana, hanja with Hangul).
fn compatible(a: &'static str, b: &'static str) -> Option<&'static str> {
    match (a, b) {
        (HAN, JAPANESE) | (JAPANESE, HAN) => Some(JAPANESE),
        (HAN, KOREAN) | (KOREAN, HAN) => Some(KOREAN),
        _ => None,
    }
}

/// Sentence ranges of a run: up to and including a terminator and the spaces after it.
fn sentences(run: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut after_terminator = false;
    for (i, c) in run.char_indices() {
        if after_terminator && !c.is_whitespace() && !is_terminator(c) {
            out.push((start, i));
            start = i;
            after_terminator = false;
        }
        if is_terminator(c) {
            after_terminator = true;
        }
    }
    if start < run.len() {
        out.push((start, run.len()));
    }
    out
}

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '\n' | '。' | '！' | '？' | '؟' | '।' | '॥' | '۔' | '።' | '။' | '།')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_absorb_shared_characters() {
        let t = "في عام 2024 تم";
        assert_eq!(script_runs(t), vec![("Arab", 0, t.len())]);
        let t = "我们用 Transformer 模型";
        let runs = script_runs(t);
        assert_eq!(runs.iter().map(|r| r.0).collect::<Vec<_>>(), vec![HAN, "Latn", HAN]);
        assert_eq!(&t[runs[1].1..runs[1].2], "Transformer ");
        assert_eq!(script_runs("東京の人"), vec![(JAPANESE, 0, "東京の人".len())]);
    }

    #[test]
    fn sentences_keep_terminators() {
        let s = sentences("One. Two! Three");
        assert_eq!(s, vec![(0, 5), (5, 10), (10, 15)]);
    }
}
