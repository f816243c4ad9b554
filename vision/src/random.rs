//! Random weights with the official names and shapes of a vision config, for shape tests,
//! benchmarks and `docseek dev random-checkpoint` (never committed, generated on demand).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::config::VisionConfig;
use crate::encoder::tensor_specs;
use crate::error::Result;

/// Standard deviation of position tables, queries and special vectors.
const EMBED_STD: f64 = 0.02;

/// One random tensor for `name`/`shape`: norm scales 1, biases 0, matrices and convs
/// `N(0, 1/sqrt(fan_in))`, tables `N(0, 0.02)`.
pub fn random_tensor(name: &str, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    let is_norm = ["norm", "layer_norm", "pre_layrnorm", "neck.1", "neck.3"].iter().any(|k| name.contains(k));
    let t = if name.ends_with(".bias") {
        Tensor::zeros(shape, DType::F32, device)?
    } else if is_norm && shape.len() == 1 {
        Tensor::ones(shape, DType::F32, device)?
    } else if shape.len() >= 2 && !name.contains("pos") && !name.contains("query") && !name.contains("position") {
        let fan_in: usize = shape[1..].iter().product();
        Tensor::randn(0f32, (1.0 / (fan_in as f64).sqrt()) as f32, shape, device)?
    } else {
        Tensor::randn(0f32, EMBED_STD as f32, shape, device)?
    };
    Ok(t.to_dtype(dtype)?)
}

/// Every vision tensor of `cfg`, randomly initialised.
pub fn random_weights(cfg: &VisionConfig, dtype: DType, device: &Device) -> Result<HashMap<String, Tensor>> {
    tensor_specs(cfg)
        .into_iter()
        .map(|(name, shape)| {
            let t = random_tensor(&name, &shape, dtype, device)?;
            Ok((name, t))
        })
        .collect()
}
