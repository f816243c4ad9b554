//! Accuracy of the bundled detector on held-out data, written as Markdown (`langs/ACCURACY.md`):
//! the third-party short-text set (lingua's test data, test half, never trained on) by
//! sentences, word pairs and single words; close neighbours; the UDHR held-out paragraphs and
//! simulated OCR lines of every language; calibration; two-language answers; confusions.
//!
//! ```text
//! langs/data/fetch-lingua.sh
//! cargo run -p docseek-langs --release --example evaluate -- /work/shared/corpus/udhr > langs/ACCURACY.md
//! ```

#[allow(dead_code)] // shared by the examples, each uses a part
#[path = "support/eval.rs"]
mod eval;
#[allow(dead_code)] // shared by the examples, each uses a part
#[path = "support/lingua.rs"]
mod lingua;

use std::collections::BTreeMap;
use std::path::PathBuf;

use docseek_langs::inventory::{Inventory, LanguageRow};
use docseek_langs::training::{is_held_out, read_paragraphs};
use docseek_langs::{ContextPrior, LanguageDetector, Posterior, ProfileDetector};
use eval::{lines_of, ratio, short_text_set, Tally, KINDS};

/// Paragraph accuracy that counts a language as well detected.
const GOOD_ACCURACY: f64 = 0.95;
/// Paragraphs up to this many characters count as headings in the list of misses.
const SHORT_PARAGRAPH: usize = 25;
/// Characters of a missed paragraph shown.
const MISSED_OPENING: usize = 50;
/// The close neighbours the issue names.
const NEIGHBOURS: [&[&str]; 7] = [
    &["bos", "hrv", "srp"],
    &["zlm", "ind"],
    &["nob", "nno", "dan"],
    &["zul", "xho", "nbl"],
    &["cat", "oci"],
    &["spa", "ast"],
    &["tgl", "bcl"],
];
/// The script variants the issue names.
const VARIANTS: [&str; 5] = ["bos-Cyrl", "zlm-Arab", "uig-Latn", "tuk-Cyrl", "vie-Hani"];

/// How many test sentences of each language of a marker group hold a marker word of each of
/// the group's rows (`data/markers.tsv`): what word-level evidence there is to find.
fn print_marker_evidence(set: &[eval::ShortTextLanguage]) {
    let markers = docseek_langs::markers::markers();
    println!("Test sentences holding a marker word (`data/markers.tsv`) of each row of their group:\n");
    println!("| test set | sentences | with markers of |\n| --- | --- | --- |");
    for group in docseek_langs::markers::groups() {
        for lang in set.iter().filter(|l| group.contains(&l.row.key().as_str())) {
            let sentences = &lang.lines[0];
            let counts: Vec<String> = group
                .iter()
                .map(|key| {
                    let words = &markers[key];
                    let n = sentences
                        .iter()
                        .filter(|s| s.to_lowercase().split(|c: char| !c.is_alphanumeric()).any(|w| words.contains(&w)))
                        .count();
                    format!("{key} {n}")
                })
                .collect();
            println!("| {} | {} | {} |", lang.row.key(), sentences.len(), counts.join(", "));
        }
    }
    println!();
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = PathBuf::from(std::env::args().nth(1).ok_or("usage: evaluate CORPUS_DIR")?);
    let det = ProfileDetector::global();
    let inv = Inventory::global();
    let mut calib: Vec<(f32, bool)> = Vec::new();
    let mut confusions: BTreeMap<(String, String), usize> = BTreeMap::new();

    // Third-party short text.
    let set = short_text_set(true)?;
    // Serbian in Latin: lingua's Serbian test sentences (Cyrillic) in Gaj's alphabet, beside the
    // Cyrillic originals (not in the 75-language averages).
    let srp_latn = inv.by_key("srp-Latn").ok_or("srp-Latn not in the inventory")?;
    let mut srp_latn_sentences = Tally::default();
    if let Some(serbian) = set.iter().find(|l| l.row.key() == "srp-Cyrl") {
        for line in &serbian.lines[0] {
            srp_latn_sentences.add(srp_latn, &det.detect(&lingua::serbian_to_latin(line)), false);
        }
    }
    let mut short: Vec<(&LanguageRow, String, [Tally; 3])> = Vec::new();
    let (mut with_alt, mut answers) = (0usize, 0usize);
    for lang in &set {
        let mut t: [Tally; 3] = Default::default();
        for (k, lines) in lang.lines.iter().enumerate() {
            for line in lines {
                let d = det.detect(line);
                t[k].add(lang.row, &d, false);
                if d.is_determined() {
                    calib.push((d.confidence, d.code == lang.row.code));
                    answers += 1;
                    with_alt += !d.alternatives.is_empty() as usize;
                }
                if k == 0 && d.code != lang.row.code {
                    *confusions.entry((lang.row.key(), d.code.to_string())).or_default() += 1;
                }
            }
        }
        short.push((lang.row, lang.lingua.lingua.clone(), t));
    }

    // UDHR held-out paragraphs and lines.
    let mut udhr: Vec<(&LanguageRow, Tally, Tally)> = Vec::new();
    // Missed held-out paragraphs: row, source and index, characters, answer, opening.
    let mut missed: Vec<(String, String, usize, String, String)> = Vec::new();
    // Per row, paragraph accuracy in document context: each held-out paragraph with the other
    // held-out paragraphs of its file as a context prior, as `doc::annotate` uses a page.
    let mut in_context: Vec<(&LanguageRow, Tally)> = Vec::new();
    for row in inv.rows().iter().filter(|r| !r.sources.is_empty()) {
        let (mut para, mut line, mut ctx) = (Tally::default(), Tally::default(), Tally::default());
        for source in &row.sources {
            let held: Vec<(usize, String)> =
                read_paragraphs(&corpus, source)?.into_iter().filter(|(i, _)| is_held_out(*i)).collect();
            let posteriors: Vec<Posterior> = held.iter().map(|(_, p)| det.posterior(p)).collect();
            let mut document = ContextPrior::new();
            for post in &posteriors {
                document.add(post, 1.0);
            }
            for post in &posteriors {
                let mut others = document.clone();
                others.add(post, -1.0);
                ctx.add(row, &post.with_prior(&others).detection(), true);
            }
            for (i, p) in held {
                let d = det.detect(&p);
                para.add(row, &d, true);
                if !eval::is_correct_script(row, &d) {
                    let opening: String = p.chars().take(MISSED_OPENING).collect();
                    let answer = format!("{}-{}", d.code, d.script);
                    missed.push((row.key(), format!("{source}#{i}"), p.chars().count(), answer, opening));
                }
                for l in lines_of(&p, row.class()) {
                    let d = det.detect(&l);
                    line.add(row, &d, true);
                }
            }
        }
        udhr.push((row, para, line));
        in_context.push((row, ctx));
    }

    let n = short.len() as f64;
    let macro_of = |k: usize, f: &dyn Fn(&Tally) -> f64| short.iter().map(|s| f(&s.2[k])).sum::<f64>() / n;
    println!("# Language detection accuracy\n");
    println!("Generated by `cargo run -p docseek-langs --release --example evaluate -- /work/shared/corpus/udhr > langs/ACCURACY.md`");
    println!(
        "(after `langs/data/fetch-lingua.sh`). `und` counts as wrong everywhere. The model is trained on the UDHR"
    );
    println!(
        "paragraphs that are not held out, the lingua crates' n-gram tables and the marker words of `data/markers.tsv`;"
    );
    println!("no evaluated line was trained on. To rerun from scratch:\n");
    println!("```sh");
    println!("langs/data/fetch-lingua.sh                     # once: the lingua crates into the cargo registry");
    println!("cargo run -p docseek-langs --release --example tune -- /work/shared/corpus/udhr            # settings, dev data");
    println!("cargo run -p docseek-langs --release --example build-profiles -- /work/shared/corpus/udhr  # data/profiles.bin");
    println!("cargo run -p docseek-langs --release --example evaluate -- /work/shared/corpus/udhr > langs/ACCURACY.md");
    println!("cargo run --release -- bench langid            # throughput on one core (sentences/s)");
    println!("```\n");
    println!("## Short text: held-out third-party set\n");
    println!(
        "The test data shipped in the 75 lingua model crates (`testdata/`: sentences, word pairs and single words"
    );
    println!(
        "from news and web text), odd lines only (500 per kind and language; the even lines are the development half"
    );
    println!("`examples/tune.rs` chose settings on). Right = the ISO 639-3 code matches. Macro = mean over the {} languages.\n", short.len());
    println!("| kind | macro accuracy | macro `und` | micro accuracy |\n| --- | --- | --- | --- |");
    for (k, kind) in KINDS.iter().enumerate() {
        let (c, t) = short.iter().fold((0, 0), |a, s| (a.0 + s.2[k].correct, a.1 + s.2[k].total));
        println!(
            "| {kind} | {} | {} | {} |",
            pct(macro_of(k, &|t| t.acc())),
            pct(macro_of(k, &|t| t.und_rate())),
            pct(ratio(c, t))
        );
    }
    println!();
    println!(
        "Answers with a second language (`alternatives`): {} of {} decided lines; the right language is the",
        with_alt, answers
    );
    let in_ans: Vec<String> = (0..3).map(|k| pct(macro_of(k, &|t| ratio(t.in_answer, t.total)))).collect();
    println!(
        "answer or an alternative for {} of sentences, {} of word pairs, {} of single words (macro).\n",
        in_ans[0], in_ans[1], in_ans[2]
    );

    let (np, good): (f64, Vec<&(&LanguageRow, Tally, Tally)>) =
        (udhr.len() as f64, udhr.iter().filter(|r| r.1.acc() >= GOOD_ACCURACY).collect());
    let mut good_codes: Vec<&str> = good.iter().map(|r| r.0.code).collect();
    good_codes.sort_unstable();
    good_codes.dedup();
    let (pt, pc) = udhr.iter().fold((0, 0), |a, r| (a.0 + r.1.total, a.1 + r.1.correct));
    let (lt, lc, lu) = udhr.iter().fold((0, 0, 0), |a, r| (a.0 + r.2.total, a.1 + r.2.correct, a.2 + r.2.und));
    println!("## Paragraphs and lines: UDHR held out\n");
    println!("Every 5th paragraph (aligned index 4, 9, 14, ...; `data/alignment.tsv`) of each corpus file, excluded from training by");
    println!("`training::is_held_out`; lines are those paragraphs cut at word boundaries into lines of at most 60 characters");
    println!(
        "(25 for unspaced scripts), as an OCR'd page gives them. Chinese must also get Simplified/Traditional right.\n"
    );
    println!("| measure | value |\n| --- | --- |");
    let mut codes: Vec<&str> = udhr.iter().map(|r| r.0.code).collect();
    codes.sort_unstable();
    codes.dedup();
    println!("| evaluated rows (language, script) | {} ({} distinct ISO 639-3 codes) |", udhr.len(), codes.len());
    println!("| paragraphs / lines | {pt} / {lt} |");
    println!("| macro paragraph accuracy | {} |", pct(udhr.iter().map(|r| r.1.acc()).sum::<f64>() / np));
    println!("| macro line accuracy | {} |", pct(udhr.iter().map(|r| r.2.acc()).sum::<f64>() / np));
    println!(
        "| micro paragraph / line accuracy | {} / {} (und on {} of lines) |",
        pct(ratio(pc, pt)),
        pct(ratio(lc, lt)),
        pct(ratio(lu, lt))
    );
    println!("| rows with >= 95% paragraph accuracy | {} ({} distinct languages) |", good.len(), good_codes.len());
    let good_ctx: Vec<&LanguageRow> = in_context.iter().filter(|r| r.1.acc() >= GOOD_ACCURACY).map(|r| r.0).collect();
    let mut ctx_codes: Vec<&str> = good_ctx.iter().map(|r| r.code).collect();
    ctx_codes.sort_unstable();
    ctx_codes.dedup();
    let (ct, cc) = in_context.iter().fold((0, 0), |a, r| (a.0 + r.1.total, a.1 + r.1.correct));
    println!(
        "| in document context: micro paragraph accuracy; rows with >= 95% | {}; {} ({} distinct languages) |\n",
        pct(ratio(cc, ct)),
        good_ctx.len(),
        ctx_codes.len()
    );
    println!("\"In document context\": each held-out paragraph decided with the file's other held-out paragraphs");
    println!("as a context prior (`ContextPrior`, leave-one-out), as `doc::annotate` decides a block with its page;");
    println!("the fewer letters a paragraph has, the more the context counts (`context::FULL_EVIDENCE_LETTERS`).");
    println!("Every other figure here decides each text alone.");
    let under: Vec<String> = in_context
        .iter()
        .filter(|r| r.1.acc() < GOOD_ACCURACY)
        .map(|r| format!("{} {}", r.0.key(), pct(r.1.acc())))
        .collect();
    println!("Rows under 95% in document context ({}): {}.\n", under.len(), under.join(", "));

    let headings = missed.iter().filter(|m| m.2 <= SHORT_PARAGRAPH).count();
    println!(
        "Missed held-out paragraphs ({}): {headings} have at most {SHORT_PARAGRAPH} characters (mostly the one- to three-word",
        missed.len()
    );
    println!(
        "\"... proclaims\" / \"The General Assembly\" heading, which reads the same in several languages: Italian and"
    );
    println!(
        "Asturian both have \"proclama\"); a few files hold a placeholder (`[missing]`) there. Paragraph numbers are"
    );
    println!("the aligned indices (`data/alignment.tsv`, see below).\n");
    println!("| row | paragraph | characters | answer | opening |\n| --- | --- | --- | --- | --- |");
    for (row, at, chars, answer, opening) in &missed {
        println!("| {row} | {at} | {chars} | {answer} | {} |", opening.replace('|', "\\|"));
    }
    println!();

    println!("## Close neighbours and script variants\n");
    println!("Sentences: the third-party test half where lingua has the language (for Serbian in Latin, lingua's");
    println!("Serbian test sentences transliterated from Cyrillic); UDHR held-out lines otherwise.");
    println!("\"Or alternative\": the right language is the answer or one of its `alternatives` (texts that fit two).");
    println!("Caveats: much of lingua's Malay test data reads as Indonesian, and its Bokmål data holds Nynorsk lines");
    println!("(see the marker words below); Bosnian, Croatian and Serbian news text differs in a few words per");
    println!("sentence at most. In the UDHR corpus, some files split the heading before the proclamation into more");
    println!("paragraphs than their neighbours (`hrv.txt` has two lines where `bos_latn.txt` and `srp_latn.txt` have");
    println!("one): `data/alignment.tsv` aligns them (hrv, ind, nbl, lnc, tgl), so close neighbours hold out the same");
    println!("articles and none is trained on an article another is evaluated on (`tests/alignment.rs`).\n");
    println!("| language | sentences | or alternative | source | UDHR paragraphs | UDHR lines |\n| --- | --- | --- | --- | --- | --- |");
    let mut neighbour_keys: Vec<String> = NEIGHBOURS
        .iter()
        .flat_map(|g| g.iter())
        .flat_map(|c| inv.rows().iter().filter(move |r| r.code == *c).map(|r| r.key()))
        .filter(|k| !VARIANTS.contains(&k.as_str()))
        .collect();
    neighbour_keys.extend(VARIANTS.iter().map(|v| v.to_string()));
    for key in &neighbour_keys {
        let s = short.iter().find(|s| s.0.key() == *key);
        let u = udhr.iter().find(|u| u.0.key() == *key);
        let (sent, alt, src) = match (s, u) {
            _ if key == "srp-Latn" && srp_latn_sentences.total > 0 => (
                pct(srp_latn_sentences.acc()),
                pct(ratio(srp_latn_sentences.in_answer, srp_latn_sentences.total)),
                "third-party, transliterated",
            ),
            (Some(s), _) => (pct(s.2[0].acc()), pct(ratio(s.2[0].in_answer, s.2[0].total)), "third-party"),
            (None, Some(u)) => (pct(u.2.acc()), pct(ratio(u.2.in_answer, u.2.total)), "UDHR lines"),
            _ => ("-".into(), "-".into(), "-"),
        };
        let (up, ul) = u.map_or(("-".into(), "-".into()), |u| (pct(u.1.acc()), pct(u.2.acc())));
        println!("| {key} | {sent} | {alt} | {src} | {up} | {ul} |");
    }
    println!();
    print_marker_evidence(&set);

    println!("## Calibration (decided short-text lines)\n");
    println!("| confidence | lines | accuracy |\n| --- | --- | --- |");
    for (lo, hi) in [(0.05, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 0.9), (0.9, 0.99), (0.99, 1.01)] {
        let bin: Vec<_> = calib.iter().filter(|(c, _)| *c >= lo && *c < hi).collect();
        let ok = bin.iter().filter(|(_, o)| *o).count();
        println!("| [{lo:.2}, {:.2}) | {} | {} |", hi.min(1.0), bin.len(), pct(ratio(ok, bin.len())));
    }
    println!();

    println!("## Most frequent sentence confusions (third-party test half)\n");
    let mut conf: Vec<_> = confusions.into_iter().collect();
    conf.sort_by_key(|c| std::cmp::Reverse(c.1));
    println!("| true | detected | sentences |\n| --- | --- | --- |");
    for ((truth, got), c) in conf.iter().take(30) {
        println!("| {truth} | {got} | {c} |");
    }
    println!();

    println!("## Per language: third-party short text\n");
    println!("| lingua | code | script | sentences | word pairs | single words | und (words) |\n| --- | --- | --- | --- | --- | --- | --- |");
    for (row, name, t) in &short {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            row.code,
            row.script,
            pct(t[0].acc()),
            pct(t[1].acc()),
            pct(t[2].acc()),
            pct(t[2].und_rate())
        );
    }
    println!();
    println!("## Per language: UDHR held out\n");
    println!("| code | script | name | paragraphs | paragraph acc. | lines | line acc. | line und |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (row, para, line) in &udhr {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.code,
            row.script,
            row.name,
            para.total,
            pct(para.acc()),
            line.total,
            pct(line.acc()),
            pct(line.und_rate())
        );
    }
    Ok(())
}
