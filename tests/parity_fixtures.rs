//! Golden parity on the shared fixtures (`../shared/fixtures` next to the repository, or
//! `DOCSEEK_FIXTURES`): every check `docseek parity` runs must pass. Fails loudly when the
//! fixtures are missing.

use std::path::PathBuf;

use docseek::parity::{runner, ParityOptions};

fn fixtures_root() -> PathBuf {
    let root = match std::env::var_os("DOCSEEK_FIXTURES") {
        Some(p) => PathBuf::from(p),
        // The checkout next to shared/, or a worktree one level deeper.
        None => ["../shared/fixtures", "../../shared/fixtures"]
            .iter()
            .map(|c| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(c))
            .find(|c| c.is_dir())
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures")),
    };
    assert!(
        root.is_dir(),
        "parity fixtures not found at {} (clone the repo next to shared/, or set DOCSEEK_FIXTURES)",
        root.display()
    );
    root
}

fn run_fixture(name: &str, min_checks: usize) {
    let dir = fixtures_root().join(name);
    assert!(dir.is_dir(), "fixture folder {} is missing", dir.display());
    let report = runner::run(&dir, &ParityOptions::default()).expect("parity run");
    println!("{}", report.summary());
    let failed: Vec<String> = report.checks.iter().filter(|c| !c.passed).map(|c| c.to_string()).collect();
    assert!(failed.is_empty(), "{} parity checks failed:\n{}", failed.len(), failed.join("\n"));
    assert!(report.passed() >= min_checks, "only {} checks ran", report.passed());
    let ids = report.checks.iter().filter(|c| c.name.ends_with("/greedy") || c.name.ends_with("greedy.ids")).count();
    assert!(ids > 0, "no greedy-id check ran on {name}");
}

#[test]
fn ocr1_tiny_parity() {
    // Vision: views, grids, slots, stage tensors of 5 modes, aux tables (50). Decoder, for each
    // of 5 modes and both image sources: prompt ids, prefill logits, 4 id sequences (+ greedy
    // logits of the default mode).
    run_fixture("ocr1-tiny", 50 + 2 * (5 * 6 + 1));
}

#[test]
fn ocr2_tiny_parity() {
    run_fixture("ocr2-tiny", 23 + 2 * (2 * 6 + 1));
}

#[test]
fn mla_tiny_parity() {
    // Both folders (with and without q-LoRA): all-position, prefill and greedy logits, greedy ids.
    run_fixture("mla-tiny", 2 * 4);
}

#[test]
fn ocr1_tiny_vision_bf16_within_the_loose_tolerance() {
    let dir = fixtures_root().join("ocr1-tiny");
    let opts = ParityOptions { dtype: candle_core::DType::BF16, ..Default::default() };
    let report = runner::run(&dir, &opts).expect("parity run");
    let failed: Vec<String> = report.checks.iter().filter(|c| !c.passed).map(|c| c.to_string()).collect();
    assert!(failed.is_empty(), "bf16 checks failed:\n{}", failed.join("\n"));
    // The vision stage tensors are binding in bf16: all of them ran.
    let strict = report.checks.iter().filter(|c| c.name.contains(".sam.") || c.name.ends_with(".image_embeds")).count();
    assert!(strict >= 11, "only {strict} vision tensors compared");
}
