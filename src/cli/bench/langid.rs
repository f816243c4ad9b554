//! `docseek bench langid`: language detection throughput on one core (one thread) on the UDHR
//! texts, per paragraph, per sentence and per printed-line-sized piece, in MB/s and texts/s,
//! beside whatlang alone in the same run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use docseek_langs::inventory::Inventory;
use docseek_langs::throughput::{compare, sentences_of};
use docseek_langs::training::read_paragraphs;

/// Characters per line-sized piece (a printed line of a single-column page).
const LINE_CHARS: usize = 60;

/// Arguments of `docseek bench langid`.
#[derive(Debug, clap::Args)]
pub struct LangidBenchArgs {
    /// The UDHR corpus folder (one `<key>.txt` per language variety, one paragraph a line).
    #[arg(long, env = "DOCSEEK_UDHR_DIR", default_value = "/work/shared/corpus/udhr")]
    pub corpus: PathBuf,
    /// Seconds to run each measurement.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
}

/// Runs `docseek bench langid`.
pub fn run(args: LangidBenchArgs) -> anyhow::Result<ExitCode> {
    if cfg!(debug_assertions) {
        eprintln!("warning: unoptimised build; measure with `cargo run --release -- bench langid`");
    }
    let mut paragraphs = Vec::new();
    for row in Inventory::global().rows() {
        for source in &row.sources {
            let p = read_paragraphs(&args.corpus, source)
                .with_context(|| format!("cannot read the corpus at {}", args.corpus.display()))?;
            paragraphs.extend(p.into_iter().map(|(_, text)| text));
        }
    }
    anyhow::ensure!(!paragraphs.is_empty(), "no text found in {}", args.corpus.display());
    let lines: Vec<String> = paragraphs.iter().flat_map(|p| line_pieces(p)).collect();
    let sentences: Vec<String> = paragraphs.iter().flat_map(|p| sentences_of(p)).collect();
    let min_time = Duration::from_secs_f64(args.seconds.max(0.1));
    for (unit, texts) in [("paragraph", &paragraphs), ("sentence", &sentences), ("line", &lines)] {
        let bytes: usize = texts.iter().map(String::len).sum();
        println!("per {unit}: {} texts, {:.2} MB", texts.len(), bytes as f64 / 1e6);
        println!("| detector | MB/s | {unit}s/s |\n| --- | --- | --- |");
        let r = compare(texts, min_time);
        for t in &r {
            println!("| {} | {:.2} | {:.0} |", t.name, t.mb_per_s, t.texts_per_s);
        }
        println!("ratio docseek-langs detect / whatlang alone: {:.2}\n", r[0].mb_per_s / r[2].mb_per_s);
    }
    Ok(ExitCode::SUCCESS)
}

/// Cuts a paragraph into pieces of about [`LINE_CHARS`] characters.
fn line_pieces(p: &str) -> Vec<String> {
    let chars: Vec<char> = p.chars().collect();
    chars.chunks(LINE_CHARS).map(|c| c.iter().collect()).collect()
}
