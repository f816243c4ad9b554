//! `docseek pages` on a batch of bad inputs mixed with good ones: each bad input gets one clear
//! line on stderr, the good ones are still rendered (one line each on stdout), the exit status
//! is non-zero, nothing panics.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_docseek");

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn pages(args: &[&Path], extra: &[&str]) -> Output {
    let out = Command::new(BIN).arg("pages").args(args).args(extra).output().expect("run docseek");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "docseek panicked:\n{stderr}");
    out
}

/// The line about `input` in `output` (stdout for `ok`, stderr for `error`).
fn line_for<'a>(output: &'a str, input: &Path) -> &'a str {
    let key = format!(" {}:", input.display());
    output.lines().find(|l| l.contains(&key)).unwrap_or_else(|| panic!("no line for {}:\n{output}", input.display()))
}

/// A PNG header claiming `w` x `h` pixels, followed by a bogus IDAT.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        png.extend_from_slice(&body);
        png.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[0x78, 0x9c, 0, 0, 0, 0]);
    chunk(b"IEND", &[]);
    png
}

/// A syntactically valid PDF whose page tree is empty.
fn zero_page_pdf() -> Vec<u8> {
    let objs = ["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [] /Count 0 >>"];
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
fn bad_inputs_fail_one_by_one_and_the_batch_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let good_pdf = samples().join("en_tracemonkey_p1.pdf");
    let good_png = t.join("good.png");
    image::RgbImage::from_pixel(64, 48, image::Rgb([10, 200, 30])).save(&good_png).unwrap();

    let sample = std::fs::read(samples().join("en_tracemonkey_p1-3.pdf")).unwrap();
    let truncated = t.join("truncated.pdf");
    std::fs::write(&truncated, &sample[..sample.len() / 2]).unwrap();
    let text_as_pdf = t.join("notes.pdf");
    std::fs::write(&text_as_pdf, "Meeting notes\nThis is plain text that someone renamed to .pdf\n").unwrap();
    let empty_pdf = t.join("empty.pdf");
    std::fs::write(&empty_pdf, b"").unwrap();
    let empty_png = t.join("empty.png");
    std::fs::write(&empty_png, b"").unwrap();
    let bomb = t.join("bomb.png");
    std::fs::write(&bomb, png_header_only(100_000, 100_000)).unwrap();
    let corrupt_png = t.join("corrupt.png");
    std::fs::write(&corrupt_png, png_header_only(20, 20)).unwrap();
    let zero = t.join("zero_pages.pdf");
    std::fs::write(&zero, zero_page_pdf()).unwrap();
    let missing = t.join("does-not-exist.pdf");
    let folder = t.join("a-folder.pdf");
    std::fs::create_dir(&folder).unwrap();
    let encrypted = data().join("encrypted_aes256.pdf");

    let out_dir = t.join("out");
    let inputs: Vec<&Path> = vec![
        &truncated,
        &good_pdf,
        &text_as_pdf,
        &empty_pdf,
        &empty_png,
        &bomb,
        &corrupt_png,
        &zero,
        &missing,
        &folder,
        &encrypted,
        &good_png,
    ];
    let out = pages(&inputs, &["--out", out_dir.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}");
    assert_eq!(stdout.lines().count(), 2, "one line per rendered input on stdout:\n{stdout}");
    let errors = stderr.lines().filter(|l| l.starts_with("error ")).count();
    assert_eq!(errors, inputs.len() - 2, "one line per failed input on stderr:\n{stderr}");

    let expect = |input: &Path, needle: &str| {
        let line = line_for(&stderr, input);
        assert!(line.starts_with("error "), "{line}");
        assert!(line.contains(needle), "expected '{needle}' in: {line}");
    };
    expect(&truncated, "corrupt or truncated PDF");
    expect(&text_as_pdf, "not a PDF or a supported image");
    expect(&text_as_pdf, "plain text");
    expect(&empty_pdf, "empty input (0 bytes)");
    expect(&empty_png, "empty input (0 bytes)");
    expect(&bomb, "100000x100000");
    expect(&bomb, "max_image_pixels");
    expect(&corrupt_png, "corrupt or unsupported PNG image");
    expect(&zero, "the PDF has no pages");
    expect(&missing, "no such file");
    expect(&folder, "is a directory");
    expect(&encrypted, "encrypted: give its password");

    // The good ones were rendered despite their neighbours.
    assert!(line_for(&stdout, &good_pdf).starts_with("ok    "), "{stdout}");
    assert!(line_for(&stdout, &good_png).starts_with("ok    "), "{stdout}");
    let p1 = image::open(out_dir.join("en_tracemonkey_p1/page-0001.png")).unwrap();
    assert_eq!((p1.width(), p1.height()), (1224, 1584), "US letter at 144 dpi");
    let g = image::open(out_dir.join("good/page-0001.png")).unwrap().to_rgb8();
    assert_eq!((g.width(), g.height()), (64, 48));
    assert_eq!(g.get_pixel(5, 5).0, [10, 200, 30]);
}

#[test]
fn passwords_right_and_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let enc = data().join("encrypted_aes256.pdf");
    let out_dir = tmp.path().join("out");
    let o = out_dir.to_str().unwrap();

    let wrong = pages(&[&enc], &["--out", o, "--password", "not-it"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("password given is wrong"));

    let right = pages(&[&enc], &["--out", o, "--password", "docseek-user", "--text"]);
    assert!(right.status.success(), "{}", String::from_utf8_lossy(&right.stdout));
    let txt = std::fs::read_to_string(out_dir.join("encrypted_aes256/page-0001.txt")).unwrap();
    assert!(txt.contains("Secret page"), "{txt}");
    let page = image::open(out_dir.join("encrypted_aes256/page-0001.png")).unwrap();
    assert_eq!((page.width(), page.height()), (600, 400), "300x200 pt at 144 dpi");
}

#[test]
fn text_layer_json_has_char_boxes_in_points() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    let out = pages(&[&data().join("plain_hello.pdf")], &["--out", out_dir.to_str().unwrap(), "--text", "--dpi", "72"]);
    assert!(out.status.success());
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("plain_hello/page-0001.json")).unwrap()).unwrap();
    assert_eq!(json["width_pt"], 300.0);
    assert_eq!(json["width_px"], 300, "72 dpi: one pixel per point");
    let chars = json["chars"].as_array().unwrap();
    let s = chars.iter().find(|c| c["c"] == "S").expect("an 'S'");
    // The text starts at x = 40 pt, baseline y = 100 pt, 24 pt Helvetica.
    let (l, b, t) = (
        s["bbox"]["left"].as_f64().unwrap(),
        s["bbox"]["bottom"].as_f64().unwrap(),
        s["bbox"]["top"].as_f64().unwrap(),
    );
    assert!((39.0..43.0).contains(&l), "left {l}");
    assert!((98.0..102.0).contains(&b), "bottom {b}");
    assert!((112.0..120.0).contains(&t), "top {t}");
}

#[test]
fn page_selection_and_unwritable_output() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = samples().join("en_tracemonkey_p1-3.pdf");
    let out_dir = tmp.path().join("out");
    let out = pages(&[&sample], &["--out", out_dir.to_str().unwrap(), "--pages", "1,3", "--dpi", "36"]);
    assert!(out.status.success());
    let mut names: Vec<String> = std::fs::read_dir(out_dir.join("en_tracemonkey_p1-3"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["page-0001.png", "page-0003.png"]);

    let none = pages(&[&sample], &["--out", out_dir.to_str().unwrap(), "--pages", "7-9"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("picks no page of this 3-page document"));

    // An output folder below a regular file cannot be created (works even as root).
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let bad_out = file.join("out");
    let out = pages(&[&sample], &["--out", bad_out.to_str().unwrap(), "--pages", "1", "--dpi", "36"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot write") && stderr.contains("a-file/out"), "{stderr}");
}

#[test]
fn missing_pdfium_says_how_to_get_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = pages(
        &[&samples().join("en_tracemonkey_p1.pdf")],
        &["--out", tmp.path().to_str().unwrap(), "--pdfium-lib", "/nonexistent/libpdfium.so"],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("libpdfium not found") && stderr.contains("scripts/setup.sh"), "{stderr}");
    let version = Command::new(BIN).arg("--version").output().unwrap();
    let v = String::from_utf8_lossy(&version.stdout);
    assert!(v.contains("features:") && v.contains("pdfium chromium/8149"), "{v}");
}
