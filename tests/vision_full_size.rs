//! Full-size DeepSeek-OCR / DeepSeek-OCR-2 encoders built from random weights with the official
//! names and shapes (generated here, never committed).

use std::path::PathBuf;

use candle_core::{DType, Device};
use docseek_vision::{slot_count, tensor_specs, Architecture, Mode, VisionConfig, VisionEncoder};
use image::{Rgb, RgbImage};

fn params(cfg: &VisionConfig, prefix: &str) -> usize {
    tensor_specs(cfg).iter().filter(|(n, _)| n.starts_with(prefix)).map(|(_, s)| s.iter().product::<usize>()).sum()
}

#[test]
fn official_vision_parameter_counts() {
    // Figures of the real checkpoint (the layer-by-layer sum that reproduces the `total_size` of
    // its `model.safetensors.index.json`).
    let c = VisionConfig::deepseek_ocr();
    assert_eq!(params(&c, "model.sam_model."), 95_569_152);
    assert_eq!(params(&c, "model.vision_model."), 303_177_728);
    assert_eq!(params(&c, "model.projector."), 2_622_720);
    assert_eq!(params(&c, "model.image_newline") + params(&c, "model.view_seperator"), 2_560);
    let names: Vec<String> = tensor_specs(&c).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"model.sam_model.blocks.11.attn.rel_pos_h".to_string()));
    let spec = |n: &str| tensor_specs(&c).into_iter().find(|(k, _)| k == n).unwrap().1;
    assert_eq!(spec("model.sam_model.blocks.2.attn.rel_pos_w"), vec![127, 64]);
    assert_eq!(spec("model.sam_model.blocks.3.attn.rel_pos_w"), vec![27, 64]);
    let c2 = VisionConfig::deepseek_ocr2();
    let spec2 = |n: &str| tensor_specs(&c2).into_iter().find(|(k, _)| k == n).unwrap().1;
    assert_eq!(spec2("model.sam_model.net_3.weight"), vec![896, 512, 3, 3]);
    assert_eq!(spec2("model.qwen2_model.query_768.weight"), vec![144, 896]);
    assert_eq!(spec2("model.qwen2_model.query_1024.weight"), vec![256, 896]);
    assert_eq!(spec2("model.qwen2_model.model.model.layers.23.self_attn.k_proj.weight"), vec![128, 896]);
    assert_eq!(spec2("model.projector.layers.weight"), vec![1280, 896]);
}

#[test]
fn official_slot_counts() {
    let c = VisionConfig::deepseek_ocr();
    let a4 = (1191, 1684);
    let s = |m: Mode, (w, h): (u32, u32)| slot_count(&c, w, h, &m.spec(Architecture::Ocr1));
    assert_eq!(s(Mode::Tiny, a4), 73);
    assert_eq!(s(Mode::Small, a4), 111);
    assert_eq!(s(Mode::Base, a4), 273);
    assert_eq!(s(Mode::Large, a4), 421);
    assert_eq!(s(Mode::Gundam, a4), 903);
    assert_eq!(s(Mode::Gundam, (1000, 1000)), 693);
    assert_eq!(s(Mode::Gundam, (1920, 1080)), 1093);
    assert_eq!(s(Mode::Gundam, (600, 400)), 273);
    let mut vllm = Mode::Gundam.spec(Architecture::Ocr1);
    vllm.max_tiles = 6;
    assert_eq!(slot_count(&c, 1920, 1080, &vllm), 483);
    // Gundam-master: 1280 global (400 + 20 newlines + sep) + 1024 tiles of 16x16.
    assert_eq!(s(Mode::GundamMaster, (2048, 1024)), 421 + (2 * 16 + 1) * 16);
    let c2 = VisionConfig::deepseek_ocr2();
    let s2 = |m: Mode, (w, h): (u32, u32)| slot_count(&c2, w, h, &m.spec(Architecture::Ocr2));
    assert_eq!(s2(Mode::Gundam, a4), 256 + 6 * 144 + 1);
    assert_eq!(s2(Mode::Base, a4), 257);
}

fn page() -> RgbImage {
    // Small landscape page so gundam tiles (2 tiles of 640 or 768).
    RgbImage::from_fn(1300, 700, |x, y| Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 256) as u8]))
}

/// A full-size random checkpoint folder written by `docseek dev random-checkpoint DIR --arch
/// ...`, named by `var`; fails loudly when the variable is unset or names no checkpoint.
fn checkpoint_from_env(var: &str, arch: &str) -> PathBuf {
    let dir = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!("set {var} to a folder written by `docseek dev random-checkpoint DIR --arch {arch}`")
    });
    assert!(
        dir.join("config.json").is_file() && dir.join("model.safetensors").is_file(),
        "{var}={} holds no checkpoint",
        dir.display()
    );
    dir
}

/// Loads the full-size encoders from checkpoint files with the official names and shapes
/// (through the real loader) and runs every mode, checking the output shapes.
/// Minutes on 2 CPU cores: run with `--ignored` (release build recommended) and
/// DOCSEEK_RANDOM_OCR1 / DOCSEEK_RANDOM_OCR2 set.
#[test]
#[ignore = "full-size random checkpoints: minutes on CPU"]
fn full_size_shapes_every_mode() {
    let dev = Device::Cpu;
    let img = page();
    for (var, name, arch, modes) in [
        ("DOCSEEK_RANDOM_OCR1", "ocr1", Architecture::Ocr1, Mode::ALL.to_vec()),
        ("DOCSEEK_RANDOM_OCR2", "ocr2", Architecture::Ocr2, vec![Mode::Base, Mode::Gundam]),
    ] {
        let dir = checkpoint_from_env(var, name);
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let vb = docseek::model::loader::open_weights(&dir, DType::F32, &dev).unwrap();
        let enc = VisionEncoder::load(&text, vb).unwrap();
        assert_eq!(enc.config().arch, arch);
        for m in modes {
            let spec = m.spec(arch);
            let t0 = std::time::Instant::now();
            let out = enc.encode(&img, &spec).unwrap();
            let slots = enc.slot_count(img.width(), img.height(), &spec);
            assert_eq!(out.dims(), &[slots, 1280], "{arch:?} {m}");
            let v = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(v.iter().all(|x| x.is_finite()), "{arch:?} {m}: non-finite output");
            println!("{arch:?} {m}: {slots} slots in {:.1} s", t0.elapsed().as_secs_f64());
        }
        if arch == Architecture::Ocr2 {
            assert!(enc.encode(&img, &Mode::Tiny.spec(arch)).is_err(), "OCR-2 has no 512-px queries");
        }
    }
}
