//! Helpers of the kernel tests: fresh random inputs (seed printed, `DOCSEEK_TEST_SEED`
//! replays one) and float comparisons.

#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};

/// A small deterministic generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    /// Seeded from `DOCSEEK_TEST_SEED` or the clock; prints the seed so a failure can be replayed.
    pub fn fresh(test: &str) -> Self {
        let seed = std::env::var("DOCSEEK_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
        });
        eprintln!("{test}: DOCSEEK_TEST_SEED={seed}");
        Rng(seed)
    }

    /// Next raw value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Approximately normal (sum of uniforms), mean 0, std `std`.
    pub fn normal(&mut self, std: f32) -> f32 {
        let s: f32 = (0..4).map(|_| self.unit()).sum::<f32>() - 2.0;
        s * std * 1.732
    }

    /// Uniform integer in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `n` normal values.
    pub fn vec(&mut self, n: usize, std: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal(std)).collect()
    }

    /// A tensor of normal values in `dtype` on the CPU.
    pub fn tensor(&mut self, shape: &[usize], std: f32, dtype: DType) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_vec(self.vec(n, std), shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
    }
}

/// Values of a tensor as f32 on the host.
pub fn values(t: &Tensor) -> Vec<f32> {
    t.to_device(&Device::Cpu).unwrap().to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// Asserts `max |got - want| <= rel * max |want|` (and no NaN); prints the figures.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, rel: f32) {
    let (g, w) = (values(got), values(want));
    assert_eq!(g.len(), w.len(), "{what}: {} vs {} values", g.len(), w.len());
    let scale = w.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    let mut worst = 0f32;
    let mut at = 0;
    let (mut num, mut den) = (0f64, 0f64);
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(!a.is_nan(), "{what}: NaN at {i}");
        let d = (a - b).abs();
        if d > worst {
            worst = d;
            at = i;
        }
        num += (d as f64).powi(2);
        den += (*b as f64).powi(2);
    }
    let l2 = (num / den.max(1e-300)).sqrt();
    eprintln!(
        "{what}: max |diff| / max |ref| = {:.3e} (at {at}), l2 rel = {l2:.3e}, {} values",
        worst / scale,
        g.len()
    );
    assert!(
        worst <= rel * scale,
        "{what}: max diff {worst} at {at} (got {}, want {}) over {rel} * {scale}",
        g[at],
        w[at]
    );
}
