//! The one option contract at the command line: `docseek ocr` and `docseek serve` refuse what
//! the server refuses in a request (`OcrOptions::validate`), before any work, with exit 2.

use std::process::Command;

fn docseek(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_docseek")).args(args).output().expect("run docseek")
}

#[test]
fn ocr_and_serve_refuse_what_the_server_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("page.png");
    image::RgbImage::from_pixel(20, 20, image::Rgb([200, 200, 200])).save(&png).unwrap();
    let png = png.to_str().unwrap();
    let data = dir.path().join("data");
    for (args, needle) in [
        (vec!["ocr", png, "--model", "fake", "--max-new-tokens", "0"], "max_new_tokens must be at least 1"),
        (vec!["ocr", png, "--model", "fake", "--dpi", "5000"], "dpi 5000 is outside"),
        (vec!["ocr", png, "--model", "fake", "--task", "locate"], "needs a 'locate' text"),
        (
            vec![
                "serve",
                "--model",
                "fake",
                "--port",
                "0",
                "--data-dir",
                data.to_str().unwrap(),
                "--max-new-tokens",
                "0",
            ],
            "max_new_tokens must be at least 1",
        ),
        (vec!["ocr", png, "--model", "fake", "--device", "tpu"], "unknown device 'tpu'"),
        (vec!["ocr", png, "--model", "fake", "--dtype", "int3"], "unknown dtype 'int3'"),
    ] {
        let out = docseek(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: expected '{needle}' in {stderr}");
    }
}
