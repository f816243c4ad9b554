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
            .unwrap_or_else(|e| {
                panic!("pdftoppm could not run ({e}): install poppler-utils with scripts/test-deps.sh")
            });
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

/// A one-page 300x200 pt PDF: left half pure red, right half pure blue.
fn red_blue_pdf() -> Vec<u8> {
    let content = "1 0 0 rg 0 0 150 200 re f 0 0 1 rg 150 0 150 200 re f";
    let objs = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R >>".to_string(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offs = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offs.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for o in offs {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objs.len() + 1).as_bytes(),
    );
    out
}

#[test]
fn colours_match_pdftoppm() {
    // A swapped red/blue channel would show here.
    let tmp = tempfile::tempdir().unwrap();
    let pdf = tmp.path().join("red_blue.pdf");
    std::fs::write(&pdf, red_blue_pdf()).unwrap();
    let out =
        Command::new(BIN).arg("pages").arg(&pdf).arg("--out").arg(tmp.path()).args(["--dpi", "72"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let status = Command::new("pdftoppm")
        .args(["-r", "72", "-png", "-singlefile"])
        .arg(&pdf)
        .arg(tmp.path().join("poppler"))
        .status()
        .unwrap_or_else(|e| panic!("pdftoppm could not run ({e}): install poppler-utils with scripts/test-deps.sh"));
    assert!(status.success());
    let ours = image::open(tmp.path().join("red_blue/page-0001.png")).unwrap().to_rgb8();
    let theirs = image::open(tmp.path().join("poppler.png")).unwrap().to_rgb8();
    assert_eq!(ours.dimensions(), (300, 200));
    for (x, y, want) in [(10, 10, [255, 0, 0]), (290, 190, [0, 0, 255])] {
        assert_eq!(ours.get_pixel(x, y).0, want, "ours at {x},{y}");
        assert_eq!(theirs.get_pixel(x, y).0, want, "pdftoppm at {x},{y}");
    }
}
