//! Hostile inputs, each built by the test itself: file names that try to leave `--out` (`...pdf`,
//! `..pdf`), names that are not UTF-8, PDF decompression bombs (caught by the stream guard, or
//! by the worker's address-space limit when the guard is off), image headers that claim too
//! much, damaged images whose errors must read as plain words, and a FIFO.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_docseek");

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples").join(name)
}

fn docseek(args: &[&std::ffi::OsStr]) -> Output {
    let out = Command::new(BIN).args(args).output().expect("run docseek");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "docseek panicked:\n{stderr}");
    out
}

/// Every file below `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([200, 200, 200]));
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

#[test]
fn names_made_of_dots_stay_inside_the_output_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = tmp.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    let pdf = std::fs::read(sample("en_tracemonkey_p1.pdf")).unwrap();
    for name in ["...pdf", "..pdf", ".pdf"] {
        std::fs::write(inputs.join(name), &pdf).unwrap();
    }
    std::fs::write(inputs.join("....png"), png(40, 30)).unwrap();
    let names = ["...pdf", "..pdf", ".pdf", "....png"];
    let paths: Vec<PathBuf> = names.iter().map(|n| inputs.join(n)).collect();

    // `docseek pages`: one folder per input, all inside --out.
    let parent = tmp.path().join("pages");
    let out = parent.join("out");
    let mut args = vec![os("pages"), os("--dpi"), os("36"), os("--out"), out.as_os_str()];
    args.extend(paths.iter().map(|p| p.as_os_str()));
    let run = docseek(&args);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let written = files_under(&parent);
    assert_eq!(written.len(), 4, "{written:?}");
    assert!(written.iter().all(|f| f.starts_with("out") && f.components().count() == 3), "{written:?}");
    let folders: Vec<String> =
        written.iter().map(|f| f.components().nth(1).unwrap().as_os_str().to_string_lossy().into_owned()).collect();
    assert_eq!(folders.iter().collect::<std::collections::BTreeSet<_>>().len(), 4, "one folder each: {folders:?}");
    assert!(!folders.iter().any(|f| f == "." || f == ".."), "{folders:?}");

    // `docseek ocr`: outputs and manifest inside --out.
    let parent = tmp.path().join("ocr");
    let out = parent.join("out");
    let mut args = vec![os("ocr"), os("--model"), os("fake"), os("--dpi"), os("36"), os("--quiet"), os("--out")];
    args.push(out.as_os_str());
    args.extend(paths.iter().map(|p| p.as_os_str()));
    let run = docseek(&args);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let written = files_under(&parent);
    assert!(written.iter().all(|f| f.starts_with("out")), "{written:?}");
    let markdown = written.iter().filter(|f| f.extension().is_some_and(|e| e == "md")).count();
    assert_eq!(markdown, 4, "{written:?}");
}

#[cfg(unix)]
#[test]
fn names_that_are_not_utf8_are_rendered() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let pdf_name = tmp.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9 r\xe9sum\xe9.pdf"));
    let png_name = tmp.path().join(std::ffi::OsStr::from_bytes(b"\xff\xfe scan.png"));
    std::fs::copy(sample("en_tracemonkey_p1.pdf"), &pdf_name).unwrap();
    std::fs::write(&png_name, png(40, 30)).unwrap();

    let out = tmp.path().join("pages");
    let run = docseek(&[
        os("pages"),
        os("--dpi"),
        os("36"),
        os("--out"),
        out.as_os_str(),
        pdf_name.as_os_str(),
        png_name.as_os_str(),
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let written = files_under(&out);
    assert_eq!(written.len(), 2, "{written:?}");
    assert!(written.iter().all(|f| f.ends_with("page-0001.png")), "{written:?}");

    let out = tmp.path().join("ocr");
    let run = docseek(&[
        os("ocr"),
        os("--model"),
        os("fake"),
        os("--dpi"),
        os("36"),
        os("--quiet"),
        os("--out"),
        out.as_os_str(),
        pdf_name.as_os_str(),
        png_name.as_os_str(),
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let manifest = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
    assert_eq!(manifest.lines().filter(|l| l.contains(r#""status":"ok""#)).count(), 2, "{manifest}");
}

/// A one-page PDF whose content stream is `layers` times Flate-compressed and inflates to
/// `inflated` bytes of spaces (valid content: whitespace draws nothing).
fn flate_bomb_pdf(inflated: usize, layers: usize) -> Vec<u8> {
    use flate2::write::ZlibEncoder;
    use flate2::Compression;
    let mut enc = ZlibEncoder::new(Vec::new(), Compression::fast());
    let chunk = vec![b' '; 16 << 20];
    for _ in 0..inflated / chunk.len() {
        enc.write_all(&chunk).unwrap();
    }
    let mut data = enc.finish().unwrap();
    for _ in 1..layers {
        let mut enc = ZlibEncoder::new(Vec::new(), Compression::best());
        enc.write_all(&data).unwrap();
        data = enc.finish().unwrap();
    }
    let filters = vec!["/FlateDecode"; layers].join(" ");
    let objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>".to_vec(),
        [
            format!("<< /Length {} /Filter [{filters}] >>\nstream\n", data.len()).into_bytes(),
            data,
            b"\nendstream".to_vec(),
        ]
        .concat(),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        pdf.extend_from_slice(o);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for o in offsets {
        pdf.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    pdf
}

#[test]
fn pdf_decompression_bombs_fail_that_document_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    // 1 GiB of content in a file of a few KB (two Flate layers).
    let bomb = tmp.path().join("bomb.pdf");
    let bytes = flate_bomb_pdf(1 << 30, 2);
    assert!(bytes.len() < 64 * 1024, "{} bytes", bytes.len());
    std::fs::write(&bomb, &bytes).unwrap();
    let good = sample("en_tracemonkey_p1.pdf");
    let out = tmp.path().join("out");

    // The stream guard refuses it before pdfium reads it.
    let run = docseek(&[
        os("pages"),
        os("--dpi"),
        os("36"),
        os("--out"),
        out.as_os_str(),
        bomb.as_os_str(),
        good.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("error ") && l.contains("bomb.pdf")).expect(&stderr);
    assert!(line.contains("inflates to over") && line.contains("max_stream_bytes"), "{line}");
    assert!(out.join("en_tracemonkey_p1/page-0001.png").is_file(), "the next document still renders");

    // With the guard off, the worker's address-space limit stops pdfium, that document fails
    // with a message naming the limit, and a fresh worker renders the next one.
    let out = tmp.path().join("out2");
    let run = docseek(&[
        os("pages"),
        os("--dpi"),
        os("36"),
        os("--max-stream-mb"),
        os("0"),
        os("--max-worker-memory-mb"),
        os("512"),
        os("--out"),
        out.as_os_str(),
        bomb.as_os_str(),
        good.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("error ") && l.contains("bomb.pdf")).expect(&stderr);
    assert!(
        line.contains("more memory than the renderer may use") && line.contains("max_worker_memory_mb = 512"),
        "{line}"
    );
    assert!(out.join("en_tracemonkey_p1/page-0001.png").is_file(), "the next document still renders");
}

/// A lossless WebP whose header declares `w` x `h` pixels (the pixel data is junk).
fn webp_header(w: u32, h: u32) -> Vec<u8> {
    let bits: u32 = (w - 1) | ((h - 1) << 14);
    let mut chunk = vec![0x2f];
    chunk.extend_from_slice(&bits.to_le_bytes());
    chunk.extend_from_slice(&[0u8; 32]);
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&((4 + 8 + chunk.len()) as u32).to_le_bytes());
    out.extend_from_slice(b"WEBPVP8L");
    out.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
    out.extend_from_slice(&chunk);
    out
}

#[test]
fn damaged_images_fail_in_plain_words() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let write = |name: &str, bytes: &[u8]| {
        let p = t.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let webp = write("huge.webp", &webp_header(16384, 16384));
    let mut tiff = Vec::new();
    image::RgbImage::from_pixel(300, 200, image::Rgb([1, 2, 3]))
        .write_to(&mut std::io::Cursor::new(&mut tiff), image::ImageFormat::Tiff)
        .unwrap();
    let tiff = write("cut.tif", &tiff[..tiff.len() / 2]);
    let mut crc = png(300, 200);
    let at = crc.len() - 20; // inside the IDAT data
    crc[at] ^= 0xff;
    let crc = write("crc.png", &crc);
    let inputs = [&webp, &tiff, &crc];
    let out = t.join("out");
    let mut args = vec![os("pages"), os("--out"), out.as_os_str()];
    args.extend(inputs.iter().map(|p| p.as_os_str()));
    let run = docseek(&args);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    let line = |p: &Path| {
        let key = format!(" {}:", p.display());
        stderr.lines().find(|l| l.starts_with("error ") && l.contains(&key)).expect(&stderr).to_string()
    };
    let webp_line = line(&webp);
    assert!(webp_line.contains("16384x16384") && webp_line.contains("max_image_pixels"), "{webp_line}");
    let tiff_line = line(&tiff);
    assert!(tiff_line.contains("cut short") && !tiff_line.contains("fill whole buffer"), "{tiff_line}");
    let crc_line = line(&crc);
    assert!(crc_line.contains("CRC") && crc_line.contains("IDAT") && !crc_line.contains('{'), "{crc_line}");
    for l in stderr.lines() {
        assert!(!l.contains("Error(") && !l.contains(" { "), "a debug dump reached the user: {l}");
    }
}

#[cfg(unix)]
#[test]
fn a_fifo_is_reported_as_not_a_regular_file() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("pipe.pdf");
    let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    let run = docseek(&[os("pages"), os("--out"), tmp.path().join("out").as_os_str(), fifo.as_os_str()]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("pipe.pdf is not a regular file"), "{stderr}");
}
