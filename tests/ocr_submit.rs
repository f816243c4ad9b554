//! `docseek ocr DIR --submit URL --out OUT`: a folder sent to a running `docseek serve` (the
//! embedded store here; a fleet's API node works the same) comes back as the local batch run
//! would write it.

mod server_support;

use server_support::{png, ServeProcess};

#[test]
fn a_folder_is_submitted_and_its_results_written_in_place() {
    let data = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(&["--model", "fake", "--data-dir", data.path().to_str().unwrap()], &[]);
    let inputs = tempfile::tempdir().unwrap();
    std::fs::create_dir(inputs.path().join("sub")).unwrap();
    std::fs::write(inputs.path().join("a.png"), png(64, 32)).unwrap();
    std::fs::write(inputs.path().join("sub/b.png"), png(48, 40)).unwrap();
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_docseek"))
        .args(["ocr", inputs.path().to_str().unwrap(), "--format", "md,json", "--mode", "tiny", "--submit"])
        .arg(format!("http://{}", server.addr))
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());
    let md = std::fs::read_to_string(out.path().join("a.md")).unwrap();
    assert!(md.starts_with("# Page 64x32"), "{md}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("sub/b.json")).unwrap()).unwrap();
    assert_eq!(json["pages"][0]["pixel_size"]["width"], 48, "{json}");
    // The raw model text is not served: refused before anything is sent.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_docseek"))
        .args(["ocr", inputs.path().to_str().unwrap(), "--format", "raw", "--submit"])
        .arg(format!("http://{}", server.addr))
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("raw"));
}
