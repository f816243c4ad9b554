//! Paragraph alignment of the UDHR corpus files (`data/alignment.tsv`): translations split the
//! heading between the preamble and the proclamation into one to three paragraphs, so line `i`
//! of `hrv.txt` is paragraph `i - 1` of `bos_latn.txt` from the heading on. The held-out rule
//! ([`crate::training::is_held_out`]) applies to the aligned index, so close neighbours hold
//! out the same articles, and none is trained on an article another one is evaluated on (which
//! favours the wrong neighbour on exactly those articles).

use std::collections::HashMap;
use std::sync::OnceLock;

/// The bundled alignment table.
const ALIGNMENT_TSV: &str = include_str!("../data/alignment.tsv");

/// Per corpus file (without `.txt`), its (from line, shift) entries.
pub type AlignmentTable = HashMap<String, Vec<(usize, i64)>>;

/// Parses an alignment table: `source<TAB>from<TAB>shift` lines after a `source` header,
/// `#` comments.
pub fn parse(tsv: &str) -> Result<AlignmentTable, String> {
    let mut out = AlignmentTable::new();
    for (n, line) in tsv.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() || line.starts_with("source\t") {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let bad = || format!("alignment line {}: {line:?}", n + 1);
        let [source, from, shift] = f[..] else {
            return Err(bad());
        };
        let from: usize = from.parse().map_err(|_| bad())?;
        let shift: i64 = shift.parse().map_err(|_| bad())?;
        out.entry(source.to_string()).or_default().push((from, shift));
    }
    Ok(out)
}

/// The bundled table, parsed once.
pub fn table() -> &'static AlignmentTable {
    static TABLE: OnceLock<AlignmentTable> = OnceLock::new();
    TABLE.get_or_init(|| parse(ALIGNMENT_TSV).expect("bundled data/alignment.tsv is valid (tested)"))
}

/// The aligned paragraph index of 0-based `line` of corpus file `source` in `table`: the line
/// plus the shifts of the entries that start at or before it (never below 0).
pub fn paragraph_index_in(table: &AlignmentTable, source: &str, line: usize) -> usize {
    let shift: i64 = table.get(source).map_or(0, |e| e.iter().filter(|(from, _)| line >= *from).map(|e| e.1).sum());
    (line as i64 + shift).max(0) as usize
}

/// [`paragraph_index_in`] the bundled table.
pub fn paragraph_index(source: &str, line: usize) -> usize {
    paragraph_index_in(table(), source, line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::is_held_out;

    #[test]
    fn shifts_apply_from_their_line_and_add_up() {
        let t = parse("source\tfrom\tshift\n# c\nx\t9\t-1\ny\t10\t-1\ny\t12\t-1\nz\t9\t1\n").unwrap();
        let idx = |s: &str, l: usize| paragraph_index_in(&t, s, l);
        assert_eq!([idx("x", 8), idx("x", 9), idx("x", 10)], [8, 8, 9]);
        assert_eq!([idx("y", 9), idx("y", 10), idx("y", 11), idx("y", 12), idx("y", 13)], [9, 9, 10, 10, 11]);
        assert_eq!([idx("z", 8), idx("z", 9)], [8, 10]);
        assert_eq!(idx("unlisted", 17), 17);
        assert!(parse("x\t9\n").is_err() && parse("x\tnine\t1\n").is_err());
    }

    #[test]
    fn croatian_holds_out_the_articles_bosnian_and_serbian_hold_out() {
        // hrv.txt splits the heading ("OPĆA SKUPŠTINA" / "proglašava", lines 8 and 9): its line
        // 10 (the proclamation) and 15 (article 4) are paragraphs 9 and 14 of bos_latn.txt.
        assert_eq!(paragraph_index("hrv", 9), 8);
        assert_eq!(paragraph_index("hrv", 10), 9);
        assert_eq!(paragraph_index("bos_latn", 9), 9);
        for source in ["hrv", "bos_latn", "srp_latn", "bos_cyrl", "srp_cyrl"] {
            assert!(is_held_out(paragraph_index(source, 4)), "{source}: the preamble is aligned");
        }
        assert!(is_held_out(paragraph_index("hrv", 15)) && !is_held_out(paragraph_index("hrv", 14)));
        assert!(is_held_out(paragraph_index("bos_latn", 14)) && !is_held_out(paragraph_index("bos_latn", 15)));
        assert!(is_held_out(paragraph_index("ind", 15)) && is_held_out(paragraph_index("mly_latn", 14)));
    }
}
