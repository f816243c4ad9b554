//! Builds `langs/data/profiles.bin` from the UDHR corpus (every 5th paragraph held out) and the
//! lingua model crates' n-gram tables (their test data is never read here). Run
//! `langs/data/fetch-lingua.sh` once first.
//!
//! ```text
//! cargo run -p docseek-langs --release --example build-profiles -- /work/shared/corpus/udhr [OUT]
//! ```

#[allow(dead_code)] // shared by the examples, each uses a part
#[path = "support/lingua.rs"]
mod lingua;

use std::path::PathBuf;

use docseek_langs::inventory::Inventory;
use docseek_langs::training::{is_held_out, train_with, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let corpus = PathBuf::from(args.next().ok_or("usage: build-profiles CORPUS_DIR [OUT]")?);
    let out = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/profiles.bin"));
    let inventory = Inventory::global();
    eprintln!("reading the lingua n-gram tables from {}", lingua::describe());
    let external = lingua::external(inventory)?;
    let model = train_with(&corpus, inventory, TrainConfig::default(), &is_held_out, &external)?;
    let bytes = model.to_bytes();
    std::fs::write(&out, &bytes)?;
    for m in &model.classes {
        eprintln!("{:>5}: {:>3} languages, {:>7} features", m.class, m.rows.len(), m.ngram_count());
    }
    eprintln!("wrote {} ({} bytes)", out.display(), bytes.len());
    Ok(())
}
