//! Preprocessing of the official HF `infer()` path: `ImageOps.pad` / `contain` semantics,
//! the stretch of small non-crop modes, dynamic tiling into square tiles, and the
//! `ToTensor + Normalize(0.5, 0.5)` conversion to `[-1, 1]`.
//!
//! Views are 8-bit RGB images, byte-identical to what Pillow produces (checked against the
//! fixtures' `views/<mode>/*.png`).

use candle_core::{DType, Device, Tensor};
use image::{Rgb, RgbImage};

use crate::error::{Result, VisionError};
use crate::mode::ModeSpec;
use crate::resample::resize_bicubic;
use crate::tiling::{candidate_grids, closest_grid, TileGrid};

/// Grey the views are padded with: `int(0.5 * 255)` per channel.
pub const PAD_COLOR: [u8; 3] = [127, 127, 127];
/// Largest side accepted: a guard against pixel bombs reaching the resampler.
pub const MAX_SIDE: u32 = 32_768;

/// The model inputs derived from one image.
#[derive(Debug, Clone)]
pub struct Views {
    /// The global view (`base_size`² in crop modes, `image_size`² otherwise).
    pub global: RgbImage,
    /// Local tiles, row-major (empty when the image is not tiled).
    pub tiles: Vec<RgbImage>,
    /// The tile grid (`[1, 1]` when not tiled), as `images_spatial_crop`.
    pub grid: TileGrid,
}

/// Python's `round()` for a float: half to even.
fn py_round(x: f64) -> u32 {
    x.round_ties_even().max(0.0) as u32
}

/// `ImageOps.contain(image, (size_w, size_h), BICUBIC)`: largest aspect-preserving fit.
pub fn contain(img: &RgbImage, size_w: u32, size_h: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let im_ratio = w as f64 / h as f64;
    let dest_ratio = size_w as f64 / size_h as f64;
    let (mut ow, mut oh) = (size_w, size_h);
    if im_ratio != dest_ratio {
        if im_ratio > dest_ratio {
            let nh = py_round(h as f64 / w as f64 * size_w as f64);
            if nh != size_h {
                oh = nh;
            }
        } else {
            let nw = py_round(w as f64 / h as f64 * size_h as f64);
            if nw != size_w {
                ow = nw;
            }
        }
    }
    resize_bicubic(img, ow.max(1), oh.max(1))
}

/// `ImageOps.pad(image, (size_w, size_h), BICUBIC, color, centering=(0.5, 0.5))`.
pub fn pad(img: &RgbImage, size_w: u32, size_h: u32, color: [u8; 3]) -> RgbImage {
    let (w, h) = img.dimensions();
    let im_ratio = w as f64 / h as f64;
    let dest_ratio = size_w as f64 / size_h as f64;
    if im_ratio == dest_ratio {
        return resize_bicubic(img, size_w, size_h);
    }
    let resized = contain(img, size_w, size_h);
    let mut out = RgbImage::from_pixel(size_w, size_h, Rgb(color));
    let (rw, rh) = resized.dimensions();
    let (x, y) = if rw != size_w {
        (py_round((size_w - rw) as f64 * 0.5), 0)
    } else {
        (0, py_round((size_h - rh) as f64 * 0.5))
    };
    image::imageops::replace(&mut out, &resized, x as i64, y as i64);
    out
}

/// Whether `spec` tiles an image of this size, and into which grid.
pub fn tile_grid(width: u32, height: u32, spec: &ModeSpec) -> Option<TileGrid> {
    if !spec.crop_mode || (width <= spec.tile_size && height <= spec.tile_size) {
        return None;
    }
    let candidates = candidate_grids(spec.min_tiles, spec.max_tiles);
    Some(closest_grid(width, height, &candidates, spec.tile_size))
}

/// Checks an input image before any work is done on it.
pub fn check_image(img: &RgbImage) -> Result<()> {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return Err(VisionError::Image("empty image".into()));
    }
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(VisionError::Image(format!("image {w}x{h} exceeds {MAX_SIDE} px per side")));
    }
    Ok(())
}

/// Builds the global view and local tiles of an RGB image for a mode.
pub fn make_views(img: &RgbImage, spec: &ModeSpec) -> Result<Views> {
    check_image(img)?;
    spec.validate()?;
    let (w, h) = img.dimensions();
    if spec.crop_mode {
        let global = pad(img, spec.base_size, spec.base_size, PAD_COLOR);
        let Some(grid) = tile_grid(w, h, spec) else {
            return Ok(Views { global, tiles: Vec::new(), grid: TileGrid { w: 1, h: 1 } });
        };
        let t = spec.tile_size;
        let resized = resize_bicubic(img, t * grid.w, t * grid.h);
        let tiles = (0..grid.count())
            .map(|i| {
                let (col, row) = (i % grid.w, i / grid.w);
                image::imageops::crop_imm(&resized, col * t, row * t, t, t).to_image()
            })
            .collect();
        Ok(Views { global, tiles, grid })
    } else {
        let s = spec.image_size;
        let src = if s <= spec.stretch_max { resize_bicubic(img, s, s) } else { img.clone() };
        Ok(Views { global: pad(&src, s, s, PAD_COLOR), tiles: Vec::new(), grid: TileGrid { w: 1, h: 1 } })
    }
}

/// `ToTensor()` + `Normalize(0.5, 0.5)` of a batch of equally sized views: `[B, 3, H, W]` in
/// `[-1, 1]`, computed in f32 as torch does (`(u8 / 255 - 0.5) / 0.5`), then cast to `dtype`.
pub fn to_tensor(views: &[&RgbImage], dtype: DType, device: &Device) -> Result<Tensor> {
    let Some(first) = views.first() else {
        return Err(VisionError::Image("no views to convert".into()));
    };
    let (w, h) = first.dimensions();
    let plane = (w * h) as usize;
    let mut data = vec![0f32; views.len() * 3 * plane];
    for (b, v) in views.iter().enumerate() {
        if v.dimensions() != (w, h) {
            return Err(VisionError::Image("views of one batch differ in size".into()));
        }
        let base = b * 3 * plane;
        for (i, p) in v.pixels().enumerate() {
            for c in 0..3 {
                data[base + c * plane + i] = (p.0[c] as f32 / 255.0 - 0.5) / 0.5;
            }
        }
    }
    let t = Tensor::from_vec(data, (views.len(), 3, h as usize, w as usize), device)?;
    Ok(t.to_dtype(dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_round_is_bankers() {
        assert_eq!(py_round(2.5), 2);
        assert_eq!(py_round(3.5), 4);
        assert_eq!(py_round(0.5), 0);
    }

    #[test]
    fn pad_centres_on_grey() {
        let img = RgbImage::from_pixel(100, 50, Rgb([10, 20, 30]));
        let p = pad(&img, 64, 64, PAD_COLOR);
        assert_eq!(p.dimensions(), (64, 64));
        assert_eq!(p.get_pixel(0, 0).0, PAD_COLOR);
        assert_eq!(p.get_pixel(32, 32).0, [10, 20, 30]);
        // 100x50 → 64x32, pasted at y = 16.
        assert_eq!(p.get_pixel(5, 15).0, PAD_COLOR);
        assert_eq!(p.get_pixel(5, 16).0, [10, 20, 30]);
        assert_eq!(p.get_pixel(5, 47).0, [10, 20, 30]);
        assert_eq!(p.get_pixel(5, 48).0, PAD_COLOR);
    }

    #[test]
    fn normalises_to_unit_range() {
        let img = RgbImage::from_pixel(2, 2, Rgb([0, 255, 127]));
        let t = to_tensor(&[&img], DType::F32, &Device::Cpu).unwrap();
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v[0], -1.0);
        assert_eq!(v[4], 1.0);
        assert!((v[8] - (127.0 / 255.0 - 0.5) / 0.5).abs() < 1e-7);
    }
}
