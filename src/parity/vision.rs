//! Vision checks of an OCR fixture: preprocessing views (byte-exact against `views/<mode>/*.png`),
//! tile grid and slot count (`views.json`), every stage tensor (`<mode>.sam.*`, `.clip.*` /
//! `.enc.*`, `.proj.*`, `.image_embeds`) and the `aux.*` position tables.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use docseek_vision::{make_views, Architecture, ModeSpec, Views, VisionConfig, VisionEncoder};
use image::RgbImage;
use serde_json::Value;

use super::fixture::Fixture;
use super::{compare_floats, Check, ParityOptions, Report};

/// Decodes an image file to RGB8 (grey PNGs are replicated, as the fixture README requires).
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    Ok(image::open(path).with_context(|| format!("decoding {}", path.display()))?.to_rgb8())
}

/// A mode folder's settings and reference views.
struct ModeFixture {
    name: String,
    spec: ModeSpec,
    grid: [u32; 2],
    slots: usize,
    views: Views,
}

fn read_mode(dir: &Path, name: &str, arch: Architecture) -> Result<ModeFixture> {
    let j: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("views.json"))?)
        .with_context(|| format!("{}/views.json", dir.display()))?;
    let u = |k: &str| -> Result<u32> {
        j.get(k).and_then(Value::as_u64).map(|v| v as u32).with_context(|| format!("views.json: missing {k}"))
    };
    let crop_mode = j.get("crop_mode").and_then(Value::as_bool).context("views.json: missing crop_mode")?;
    let spec = ModeSpec {
        base_size: u("base_size")?,
        image_size: u("image_size")?,
        crop_mode,
        tile_size: j.get("tile_size").and_then(Value::as_u64).map_or(arch.tile_size(), |v| v as u32),
        min_tiles: j.get("min_num").and_then(Value::as_u64).map_or(2, |v| v as u32),
        max_tiles: j.get("max_num").and_then(Value::as_u64).map_or(arch.default_max_tiles(), |v| v as u32),
        stretch_max: arch.stretch_max(),
    };
    let grid = j.get("crop_grid").and_then(Value::as_array).context("views.json: missing crop_grid")?;
    let grid = [grid[0].as_u64().unwrap_or(0) as u32, grid[1].as_u64().unwrap_or(0) as u32];
    let global = load_rgb(&dir.join(j.get("global").and_then(Value::as_str).unwrap_or("global.png")))?;
    let tiles = j
        .get("tiles")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(|t| load_rgb(&dir.join(t))).collect::<Result<Vec<_>>>())
        .transpose()?
        .unwrap_or_default();
    let views = Views { global, tiles, grid: docseek_vision::TileGrid { w: grid[0], h: grid[1] } };
    Ok(ModeFixture { name: name.to_string(), spec, grid, slots: u("num_image_tokens")? as usize, views })
}

/// The [`ModeSpec`] a fixture's `views/<mode>/views.json` describes.
pub fn mode_spec(mode_dir: &Path, arch: Architecture) -> Result<ModeSpec> {
    let name = mode_dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    Ok(read_mode(mode_dir, name, arch)?.spec)
}

fn compare_images(name: &str, got: &RgbImage, want: &RgbImage) -> Check {
    if got.dimensions() != want.dimensions() {
        return Check {
            name: name.into(),
            passed: false,
            detail: format!("size {:?} != expected {:?}", got.dimensions(), want.dimensions()),
        };
    }
    let (mut differing, mut max) = (0usize, 0u8);
    for (a, b) in got.as_raw().iter().zip(want.as_raw()) {
        if a != b {
            differing += 1;
            max = max.max(a.abs_diff(*b));
        }
    }
    Check {
        name: name.into(),
        passed: differing == 0,
        detail: format!("{differing} of {} bytes differ, max diff {max}", got.as_raw().len()),
    }
}

fn tensor_check(fx: &Fixture, key: &str, got: &Tensor, tol: f32, seen: &mut HashSet<String>) -> Option<Check> {
    let (shape, want) = fx.expected_f32(key)?;
    seen.insert(key.to_string());
    let name = format!("{}/{key}", fx.name);
    let got_v = got.to_dtype(candle_core::DType::F32).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1::<f32>());
    Some(match got_v {
        Err(e) => Check { name, passed: false, detail: format!("error: {e}") },
        Ok(_) if got.elem_count() != want.len() => {
            Check { name, passed: false, detail: format!("shape {:?} != expected {shape:?}", got.dims()) }
        }
        Ok(g) => compare_floats(&name, &g, &want, tol),
    })
}

/// Runs every vision check `fx` supports; returns the expected tensors it compared.
pub fn run_checks(fx: &Fixture, opts: &ParityOptions, report: &mut Report) -> Result<HashSet<String>> {
    let mut seen = HashSet::new();
    let cfg = VisionConfig::from_json_str(&fx.config_text)?;
    let tol = opts.tolerance();
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[fx.weights()], opts.dtype, &opts.device)? };
    let enc = match VisionEncoder::from_config(&cfg, vb) {
        Ok(e) => e,
        Err(e) => {
            report.push(Check { name: format!("{}/load", fx.name), passed: false, detail: e.to_string() });
            return Ok(seen);
        }
    };
    let page = fx.dir.join("input/page.png");
    let page = if page.is_file() { Some(load_rgb(&page)?) } else { None };
    let views_dir = fx.dir.join("views");
    let mut modes: Vec<String> = if views_dir.is_dir() {
        std::fs::read_dir(&views_dir)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("views.json").is_file())
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .collect()
    } else {
        Vec::new()
    };
    modes.sort();
    for mode in &modes {
        let mf = read_mode(&views_dir.join(mode), mode, cfg.arch)?;
        let prefix = format!("{}/{}", fx.name, mf.name);
        if let Some(page) = &page {
            check_preprocessing(&prefix, page, &mf, &enc, report);
        }
        let stages = match enc.encode_views(&mf.views) {
            Ok(s) => s,
            Err(e) => {
                report.push(Check { name: format!("{prefix}/encode"), passed: false, detail: e.to_string() });
                continue;
            }
        };
        let feat = if cfg.arch == Architecture::Ocr1 { "clip" } else { "enc" };
        let m = &mf.name;
        let pairs: Vec<(String, Option<&Tensor>)> = vec![
            (format!("{m}.sam.global"), Some(&stages.sam_global)),
            (format!("{m}.sam.tile"), stages.sam_tiles.as_ref()),
            (format!("{m}.{feat}.global"), Some(&stages.feat_global)),
            (format!("{m}.{feat}.tile"), stages.feat_tiles.as_ref()),
            (format!("{m}.proj.global"), Some(&stages.proj_global)),
            (format!("{m}.proj.tile"), stages.proj_tiles.as_ref()),
            (format!("{m}.image_embeds"), Some(&stages.image_embeds)),
        ];
        for (key, got) in pairs {
            match (got, fx.expected.contains_key(&key)) {
                (Some(t), true) => report.push(tensor_check(fx, &key, t, tol, &mut seen).expect("present")),
                (None, true) => report.push(Check {
                    name: format!("{}/{key}", fx.name),
                    passed: false,
                    detail: "expected by the fixture but not produced".into(),
                }),
                _ => {}
            }
        }
    }
    check_aux(fx, &enc, tol, report, &mut seen);
    Ok(seen)
}

fn check_preprocessing(prefix: &str, page: &RgbImage, mf: &ModeFixture, enc: &VisionEncoder, report: &mut Report) {
    let views = match make_views(page, &mf.spec) {
        Ok(v) => v,
        Err(e) => {
            report.push(Check { name: format!("{prefix}/views"), passed: false, detail: e.to_string() });
            return;
        }
    };
    report.push(compare_images(&format!("{prefix}/view.global"), &views.global, &mf.views.global));
    let got_grid = if views.tiles.is_empty() { [1, 1] } else { [views.grid.w, views.grid.h] };
    report.push(Check {
        name: format!("{prefix}/crop_grid"),
        passed: got_grid == mf.grid && views.tiles.len() == mf.views.tiles.len(),
        detail: format!(
            "got {got_grid:?} ({} tiles), want {:?} ({} tiles)",
            views.tiles.len(),
            mf.grid,
            mf.views.tiles.len()
        ),
    });
    for (i, (g, w)) in views.tiles.iter().zip(&mf.views.tiles).enumerate() {
        report.push(compare_images(&format!("{prefix}/view.tile_{i:02}"), g, w));
    }
    let (w, h) = page.dimensions();
    let slots = enc.slot_count(w, h, &mf.spec);
    report.push(Check {
        name: format!("{prefix}/slot_count"),
        passed: slots == mf.slots,
        detail: format!("got {slots}, want {}", mf.slots),
    });
}

/// `aux.sam_pos_embed.<g>`, `aux.clip_pos_embed.<g>`, `aux.sam_rel_pos_{h,w}.block<i>.<g>`.
fn check_aux(fx: &Fixture, enc: &VisionEncoder, tol: f32, report: &mut Report, seen: &mut HashSet<String>) {
    let mut keys: Vec<&String> = fx.expected.keys().filter(|k| k.starts_with("aux.")).collect();
    keys.sort();
    for key in keys {
        let parts: Vec<&str> = key.split('.').collect();
        let grid = parts.last().and_then(|g| g.parse::<usize>().ok());
        let got: Option<Result<Tensor>> = match (parts.get(1).copied(), grid) {
            (Some("sam_pos_embed"), Some(g)) => Some(enc.sam().pos_embed_for(g).map_err(Into::into)),
            (Some("clip_pos_embed"), Some(g)) => enc.clip().map(|c| c.positions_for(g).map_err(Into::into)),
            (Some(which @ ("sam_rel_pos_h" | "sam_rel_pos_w")), Some(g)) => {
                let block = parts.get(2).and_then(|b| b.strip_prefix("block")).and_then(|b| b.parse().ok());
                block.and_then(|b| enc.sam().rel_pos_tables(b, g)).map(|(h, w)| {
                    let v = if which == "sam_rel_pos_h" { h } else { w };
                    let n = v.len();
                    Tensor::from_vec(v, n, &Device::Cpu).map_err(Into::into)
                })
            }
            _ => None,
        };
        match got {
            Some(Ok(t)) => {
                if let Some(c) = tensor_check(fx, key, &t, tol, seen) {
                    report.push(c);
                }
            }
            Some(Err(e)) => {
                report.push(Check { name: format!("{}/{key}", fx.name), passed: false, detail: e.to_string() })
            }
            None => {}
        }
    }
}
