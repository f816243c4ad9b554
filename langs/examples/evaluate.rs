//! Accuracy of the bundled detector on the UDHR held-out paragraphs (every 5th paragraph of
//! each corpus file, never trained on), per language and macro-averaged, for whole paragraphs
//! and for simulated OCR lines; confusion pairs; whatlang alone on its languages; calibration.
//! Writes Markdown to stdout.
//!
//! ```text
//! cargo run -p docseek-langs --release --example evaluate -- /work/shared/corpus/udhr > langs/ACCURACY.md
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use docseek_langs::inventory::{Inventory, LanguageRow};
use docseek_langs::script::{is_unspaced, ScriptCounts};
use docseek_langs::training::{is_held_out, read_paragraphs};
use docseek_langs::{Detection, LanguageDetector, ProfileDetector};

/// Characters per simulated line in spaced scripts (a printed line of a single-column page).
const LINE_CHARS: usize = 60;
/// Characters per simulated line in unspaced scripts (Han, kana, Thai...).
const LINE_CHARS_UNSPACED: usize = 25;
/// Paragraph accuracy that counts a language as well detected.
const GOOD_ACCURACY: f64 = 0.95;

#[derive(Default)]
struct Tally {
    total: usize,
    correct: usize,
    und: usize,
}

impl Tally {
    fn add(&mut self, ok: bool, und: bool) {
        self.total += 1;
        self.correct += ok as usize;
        self.und += und as usize;
    }
    fn acc(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.correct as f64 / self.total as f64 }
    }
}

fn is_correct(row: &LanguageRow, d: &Detection) -> bool {
    d.code == row.code && (row.class() != "Hani" || d.script == row.script)
}

/// Splits a paragraph into lines as a page would print them.
fn lines_of(paragraph: &str, script: &str) -> Vec<String> {
    let unspaced = is_unspaced(script) || script == "Jpan";
    let limit = if unspaced { LINE_CHARS_UNSPACED } else { LINE_CHARS };
    let mut out = Vec::new();
    let mut cur = String::new();
    if unspaced {
        for c in paragraph.chars() {
            cur.push(c);
            if cur.chars().count() >= limit {
                out.push(std::mem::take(&mut cur));
            }
        }
    } else {
        for w in paragraph.split_whitespace() {
            if !cur.is_empty() && cur.chars().count() + 1 + w.chars().count() > limit {
                out.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(w);
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

/// Our code for a whatlang language (whatlang uses macro or older codes for some).
fn whatlang_code(l: whatlang::Lang) -> &'static str {
    match l.code() {
        "ara" => "arb",
        "nep" => "npi",
        "est" => "ekk",
        "lav" => "lvs",
        "uzb" => "uzn",
        "aze" => "azj",
        "aka" => "twi",
        "yid" => "ydd",
        c => c,
    }
}

/// Ours, overridden by whatlang when whatlang is reliable and its answer is among our top 3
/// candidates of the same script: the combination measured against ours alone.
fn combined(det: &ProfileDetector, text: &str) -> Detection {
    let d = det.detect(text);
    let Some(info) = whatlang::detect(text).filter(|i| i.is_reliable()) else { return d };
    let wcode = whatlang_code(info.lang());
    let Some(class) = ScriptCounts::of(text).resolved().first().map(|r| r.0) else { return d };
    // Only between whatlang's own languages: elsewhere it would pull e.g. Scots to English.
    if wcode == d.code || !whatlang::Lang::all().iter().any(|&l| whatlang_code(l) == d.code) {
        return d;
    }
    match det.rank(text, class).0.iter().take(3).find(|(r, _)| r.code == wcode) {
        Some((row, _)) => Detection {
            code: row.code.into(),
            bcp47: row.bcp47.into(),
            name: row.name.into(),
            script: row.script.into(),
            confidence: d.confidence,
        },
        None => d,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = PathBuf::from(std::env::args().nth(1).ok_or("usage: evaluate CORPUS_DIR")?);
    let det = ProfileDetector::global();
    let inv = Inventory::global();
    let whatlang_codes: Vec<&str> = whatlang::Lang::all().iter().map(|&l| whatlang_code(l)).collect();

    let mut rows_out = Vec::new();
    let mut confusions: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    let (mut wl_ours, mut wl_alone) = ((Tally::default(), Tally::default()), (Tally::default(), Tally::default()));
    let mut calib: Vec<(f32, bool)> = Vec::new();
    // Ours+whatlang: (all rows, whatlang's rows) x (paragraphs, lines).
    let mut comb = [[Tally::default(), Tally::default()], [Tally::default(), Tally::default()]];
    for row in inv.rows().iter().filter(|r| !r.sources.is_empty()) {
        let (mut para, mut line) = (Tally::default(), Tally::default());
        let in_whatlang = whatlang_codes.contains(&row.code);
        for source in &row.sources {
            for (_, p) in read_paragraphs(&corpus, source)?.into_iter().filter(|(i, _)| is_held_out(*i)) {
                let d = det.detect(&p);
                let ok = is_correct(row, &d);
                para.add(ok, !d.is_determined());
                if !ok {
                    confusions.entry((row.key(), d.code.to_string())).or_default().0 += 1;
                }
                let c = is_correct(row, &combined(det, &p));
                comb[0][0].add(c, false);
                if in_whatlang {
                    comb[1][0].add(c, false);
                    wl_ours.0.add(d.code == row.code, false);
                    let w = whatlang::detect(&p).map(|i| whatlang_code(i.lang()));
                    wl_alone.0.add(w == Some(row.code), w.is_none());
                }
                for l in lines_of(&p, row.class()) {
                    let d = det.detect(&l);
                    let ok = is_correct(row, &d);
                    line.add(ok, !d.is_determined());
                    if d.is_determined() {
                        calib.push((d.confidence, ok));
                    }
                    if !ok {
                        confusions.entry((row.key(), d.code.to_string())).or_default().1 += 1;
                    }
                    let c = is_correct(row, &combined(det, &l));
                    comb[0][1].add(c, false);
                    if in_whatlang {
                        comb[1][1].add(c, false);
                        wl_ours.1.add(d.code == row.code, false);
                        let w = whatlang::detect(&l).map(|i| whatlang_code(i.lang()));
                        wl_alone.1.add(w == Some(row.code), w.is_none());
                    }
                }
            }
        }
        rows_out.push((row, para, line));
    }

    let n = rows_out.len() as f64;
    let macro_para: f64 = rows_out.iter().map(|r| r.1.acc()).sum::<f64>() / n;
    let macro_line: f64 = rows_out.iter().map(|r| r.2.acc()).sum::<f64>() / n;
    let good_rows: Vec<_> = rows_out.iter().filter(|r| r.1.acc() >= GOOD_ACCURACY).collect();
    let mut good_codes: Vec<&str> = good_rows.iter().map(|r| r.0.code).collect();
    good_codes.sort_unstable();
    good_codes.dedup();
    let sum = |f: &dyn Fn(&(&LanguageRow, Tally, Tally)) -> usize| rows_out.iter().map(f).sum::<usize>();
    let (pt, pc) = (sum(&|r| r.1.total), sum(&|r| r.1.correct));
    let (lt, lc, lu) = (sum(&|r| r.2.total), sum(&|r| r.2.correct), sum(&|r| r.2.und));

    println!("# Language detection accuracy (UDHR held-out paragraphs)\n");
    println!("Generated by `cargo run -p docseek-langs --release --example evaluate -- /work/shared/corpus/udhr > langs/ACCURACY.md`.");
    println!("Evaluation text: every 5th paragraph (0-based index 4, 9, 14, ...) of each corpus file, excluded from training");
    println!("by `training::is_held_out`. Lines: each paragraph cut at word boundaries into lines of at most {LINE_CHARS} characters");
    println!("({LINE_CHARS_UNSPACED} for unspaced scripts), as an OCR'd page would give them. `und` counts as wrong.\n");
    println!("## Summary\n");
    println!("| measure | value |\n| --- | --- |");
    println!("| evaluated rows (language, script) | {} ({} distinct ISO 639-3 codes) |", rows_out.len(), {
        let mut c: Vec<&str> = rows_out.iter().map(|r| r.0.code).collect();
        c.sort_unstable();
        c.dedup();
        c.len()
    });
    println!("| paragraphs / lines evaluated | {pt} / {lt} |");
    println!("| macro-average paragraph accuracy | {:.2}% |", 100.0 * macro_para);
    println!("| macro-average line accuracy | {:.2}% |", 100.0 * macro_line);
    println!("| micro paragraph accuracy | {:.2}% |", 100.0 * pc as f64 / pt as f64);
    println!("| micro line accuracy | {:.2}% (und on {:.2}% of lines) |", 100.0 * lc as f64 / lt as f64, 100.0 * lu as f64 / lt as f64);
    println!("| rows with >= 95% paragraph accuracy | {} ({} distinct languages) |", good_rows.len(), good_codes.len());
    println!();

    println!("## whatlang alone vs ours, on the {} rows whatlang supports\n", rows_out.iter().filter(|r| whatlang_codes.contains(&r.0.code)).count());
    println!("| detector | paragraph accuracy | line accuracy |\n| --- | --- | --- |");
    println!("| docseek-langs | {:.2}% | {:.2}% |", 100.0 * wl_ours.0.acc(), 100.0 * wl_ours.1.acc());
    println!("| whatlang 0.18 | {:.2}% | {:.2}% |", 100.0 * wl_alone.0.acc(), 100.0 * wl_alone.1.acc());
    println!("| ours, whatlang overriding when reliable and in our top 3 | {:.2}% | {:.2}% |", 100.0 * comb[1][0].acc(), 100.0 * comb[1][1].acc());
    println!();
    println!("Over all {} rows (micro): ours {:.2}% paragraphs / {:.2}% lines; ours+whatlang {:.2}% / {:.2}%.", rows_out.len(), 100.0 * pc as f64 / pt as f64, 100.0 * lc as f64 / lt as f64, 100.0 * comb[0][0].acc(), 100.0 * comb[0][1].acc());
    println!();

    println!("## Calibration (decided lines)\n");
    println!("| confidence | lines | accuracy |\n| --- | --- | --- |");
    for (lo, hi) in [(0.5, 0.7), (0.7, 0.9), (0.9, 0.99), (0.99, 1.01)] {
        let bin: Vec<_> = calib.iter().filter(|(c, _)| *c >= lo && *c < hi).collect();
        let ok = bin.iter().filter(|(_, o)| *o).count();
        let acc = if bin.is_empty() { 0.0 } else { 100.0 * ok as f64 / bin.len() as f64 };
        println!("| [{lo:.2}, {:.2}) | {} | {acc:.1}% |", hi.min(1.0), bin.len());
    }
    println!();

    println!("## Confusions (held-out paragraphs / lines misdetected)\n");
    let mut conf: Vec<_> = confusions.into_iter().collect();
    conf.sort_by(|a, b| (b.1 .0 * 10 + b.1 .1).cmp(&(a.1 .0 * 10 + a.1 .1)));
    println!("| true | detected | paragraphs | lines |\n| --- | --- | --- | --- |");
    for ((truth, got), (p, l)) in conf.iter().take(60) {
        println!("| {truth} | {got} | {p} | {l} |");
    }
    println!();

    println!("## Per language\n");
    println!("| code | script | name | paragraphs | paragraph acc. | lines | line acc. | line und |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (row, para, line) in &rows_out {
        println!(
            "| {} | {} | {} | {} | {:.1}% | {} | {:.1}% | {:.1}% |",
            row.code,
            row.script,
            row.name,
            para.total,
            100.0 * para.acc(),
            line.total,
            100.0 * line.acc(),
            100.0 * line.und as f64 / line.total.max(1) as f64
        );
    }
    Ok(())
}
