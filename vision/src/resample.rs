//! Pillow-exact `Image.resize(size, Image.BICUBIC)` for 8-bit images.
//!
//! Written from the algorithm of Pillow's `libImaging/Resample.c` (facts only): a separable
//! convolution, horizontal pass then vertical pass, with the cubic kernel `a = -0.5` whose support
//! is widened by the scale when downscaling (antialiasing). Coefficients are computed in double,
//! normalised per output pixel, then converted to fixed point with `PRECISION_BITS = 22`
//! (round half away from zero); each pass accumulates in integers starting from the rounding
//! half, shifts right and clips to 0..=255, so the intermediate image is 8-bit like Pillow's.
//! A float resize would differ by ±1 on many pixels; the preprocessing parity depends on this.

use image::RgbImage;

/// Fixed-point precision of Pillow's 8-bit resampler (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;
/// Support of the bicubic filter at scale 1.
const BICUBIC_SUPPORT: f64 = 2.0;
/// Pillow's bicubic parameter.
const BICUBIC_A: f64 = -0.5;

/// Pillow's bicubic kernel (`a = -0.5`).
pub fn bicubic_kernel(x: f64) -> f64 {
    let a = BICUBIC_A;
    let x = x.abs();
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * a
    } else {
        0.0
    }
}

/// Fixed-point coefficients of one resampling pass.
struct Coeffs {
    /// Per output pixel: first input index and number of taps.
    bounds: Vec<(usize, usize)>,
    /// `ksize` coefficients per output pixel.
    kk: Vec<i32>,
    ksize: usize,
}

/// Pillow `precompute_coeffs` + `normalize_coeffs_8bpc` for the box `[0, in_size)`.
fn precompute(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = BICUBIC_SUPPORT * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    let ss = 1.0 / filterscale;
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C casts truncate toward zero; the clamp to 0 follows.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            let w = bicubic_kernel((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        let unit = (1u64 << PRECISION_BITS) as f64;
        for x in 0..xmax {
            let w = if ww != 0.0 { k[x] / ww } else { k[x] };
            kk[xx * ksize + x] = if w < 0.0 { (-0.5 + w * unit) as i32 } else { (0.5 + w * unit) as i32 };
        }
        bounds.push((xmin, xmax));
    }
    Coeffs { bounds, kk, ksize }
}

#[inline]
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes interleaved 8-bit pixels (`channels` per pixel) exactly like Pillow's BICUBIC.
pub fn resize_bicubic_u8(
    src: &[u8],
    width: usize,
    height: usize,
    channels: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<u8> {
    assert_eq!(src.len(), width * height * channels, "buffer does not match its size");
    let half = 1i64 << (PRECISION_BITS - 1);
    // Horizontal pass (skipped when the width does not change, as in Pillow).
    let horiz: Vec<u8> = if out_w != width {
        let c = precompute(width, out_w);
        let mut out = vec![0u8; out_w * height * channels];
        for y in 0..height {
            let row = &src[y * width * channels..(y + 1) * width * channels];
            let orow = &mut out[y * out_w * channels..(y + 1) * out_w * channels];
            for (xx, &(xmin, xmax)) in c.bounds.iter().enumerate() {
                let k = &c.kk[xx * c.ksize..xx * c.ksize + xmax];
                for ch in 0..channels {
                    let mut acc = half;
                    for (x, &kx) in k.iter().enumerate() {
                        acc += row[(xmin + x) * channels + ch] as i64 * kx as i64;
                    }
                    orow[xx * channels + ch] = clip8(acc);
                }
            }
        }
        out
    } else {
        src.to_vec()
    };
    if out_h == height {
        return horiz;
    }
    // Vertical pass.
    let c = precompute(height, out_h);
    let stride = out_w * channels;
    let mut out = vec![0u8; out_h * stride];
    for (yy, &(ymin, ymax)) in c.bounds.iter().enumerate() {
        let k = &c.kk[yy * c.ksize..yy * c.ksize + ymax];
        let orow = &mut out[yy * stride..(yy + 1) * stride];
        for (i, o) in orow.iter_mut().enumerate() {
            let mut acc = half;
            for (y, &ky) in k.iter().enumerate() {
                acc += horiz[(ymin + y) * stride + i] as i64 * ky as i64;
            }
            *o = clip8(acc);
        }
    }
    out
}

/// `image.resize((w, h), Image.BICUBIC)` for an RGB image; same size returns a copy.
pub fn resize_bicubic(img: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if (w, h) == (out_w, out_h) {
        return img.clone();
    }
    let data = resize_bicubic_u8(img.as_raw(), w as usize, h as usize, 3, out_w as usize, out_h as usize);
    RgbImage::from_raw(out_w, out_h, data).expect("buffer sized for the output")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_shape() {
        assert_eq!(bicubic_kernel(0.0), 1.0);
        assert_eq!(bicubic_kernel(1.0), 0.0);
        assert_eq!(bicubic_kernel(2.0), 0.0);
        assert!((bicubic_kernel(0.5) - 0.5625).abs() < 1e-12);
        assert!((bicubic_kernel(1.5) + 0.0625).abs() < 1e-12);
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(37, 23, image::Rgb([200, 13, 127]));
        for (w, h) in [(10, 10), (80, 51), (37, 7), (3, 90)] {
            let r = resize_bicubic(&img, w, h);
            assert!(r.pixels().all(|p| p.0 == [200, 13, 127]), "{w}x{h}");
        }
    }

    #[test]
    fn identity_size_is_copy() {
        let mut img = RgbImage::new(5, 4);
        img.put_pixel(2, 1, image::Rgb([9, 8, 7]));
        assert_eq!(resize_bicubic(&img, 5, 4), img);
    }
}
