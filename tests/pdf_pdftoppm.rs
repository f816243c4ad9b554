//! `docseek pages` against poppler's `pdftoppm -r 144` on multi-page samples: same page count,
//! same pixel sizes (within 1 px: the two round page sizes differently). pdftoppm is installed
//! by scripts/test-deps.sh; this test fails, never skips, without it.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_docseek");

fn png_sizes(dir: &Path) -> Vec<(String, u32, u32)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let (w, h) = image::image_dimensions(p).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), w, h)
        })
        .collect()
}

#[test]
fn page_count_and_sizes_match_pdftoppm() {
    for name in ["en_tracemonkey_p1-3.pdf", "th_royal_gazette_2566.pdf"] {
        let pdf = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples").join(name);
        let tmp = tempfile::tempdir().unwrap();
        let (ours, theirs) = (tmp.path().join("ours"), tmp.path().join("poppler"));
        std::fs::create_dir_all(&theirs).unwrap();

        let out = Command::new(BIN).arg("pages").arg(&pdf).arg("--out").arg(&ours).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        let poppler = Command::new("pdftoppm")
            .args(["-r", "144", "-png"])
            .arg(&pdf)
            .arg(theirs.join("p"))
            .status()
            .unwrap_or_else(|e| panic!("pdftoppm could not run ({e}): install poppler-utils with scripts/test-deps.sh"));
        assert!(poppler.success(), "pdftoppm failed on {name}");

        let stem = pdf.file_stem().unwrap();
        let a = png_sizes(&ours.join(stem));
        let b = png_sizes(&theirs);
        assert!(!a.is_empty());
        assert_eq!(a.len(), b.len(), "{name}: page count, ours {a:?} vs pdftoppm {b:?}");
        for ((fa, wa, ha), (fb, wb, hb)) in a.iter().zip(&b) {
            assert!(wa.abs_diff(*wb) <= 1 && ha.abs_diff(*hb) <= 1, "{name}: {fa} {wa}x{ha} vs {fb} {wb}x{hb}");
        }
    }
}
