//! Decoder parity against the golden fixtures (`$DOCSEEK_FIXTURES` or `../shared/fixtures`),
//! with the OCR fixtures' expected `image_embeds` as the image features. Missing fixtures fail.

use docseek::parity::decoder::{default_fixtures_dir, run_checks, ExpectedEmbeds};
use docseek::parity::Report;

#[test]
fn decoder_matches_the_reference_on_every_fixture() {
    let dir = default_fixtures_dir();
    assert!(dir.join("mla-tiny").is_dir(), "fixtures not found at {} (set DOCSEEK_FIXTURES)", dir.display());
    let mut report = Report::default();
    run_checks(&dir, &ExpectedEmbeds, &mut report).expect("decoder checks ran");
    println!("{}", report.summary());
    let failed: Vec<String> = report.checks.iter().filter(|c| !c.passed).map(|c| c.to_string()).collect();
    assert!(failed.is_empty(), "failed checks:\n{}", failed.join("\n"));
    // 2 MLA fixtures x 4 checks; 5 + 2 OCR modes x 5 checks, + greedy logits of the 2 default modes.
    assert_eq!(report.checks.len(), 2 * 4 + 7 * 5 + 2);
}
