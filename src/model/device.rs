//! Where the model runs and in which float format: the typed values of `--device` and
//! `--dtype`, parsed once (by clap, through [`FromStr`]) and turned into candle's types here.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use super::ModelError;

/// The dtype of weights and activations (`--dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// 32-bit floats (the parity reference).
    F32,
    /// bfloat16, as the released checkpoints are stored.
    Bf16,
    /// IEEE half precision.
    F16,
}

impl Dtype {
    /// Every dtype, in the order the help lists them.
    pub const ALL: [Dtype; 3] = [Dtype::F32, Dtype::Bf16, Dtype::F16];

    /// candle's dtype.
    pub fn candle(self) -> DType {
        match self {
            Dtype::F32 => DType::F32,
            Dtype::Bf16 => DType::BF16,
            Dtype::F16 => DType::F16,
        }
    }

    /// The dtype used when none is asked for: bf16 on GPUs and on CPUs with native bf16 products
    /// (AVX-512 BF16: docseek's kernels stream bf16 weights at twice the f32 rate and multiply
    /// them natively), f32 on other CPUs (where bf16 would be widened on every product).
    pub fn default_for(device: &Device) -> Dtype {
        if !device.is_cpu() || docseek_kernels::cpu::Isa::active().has_native_bf16() {
            Dtype::Bf16
        } else {
            Dtype::F32
        }
    }

    /// The name users type (`f32`, `bf16`, `f16`).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::Bf16 => "bf16",
            Dtype::F16 => "f16",
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dtype {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Dtype::F32),
            "bf16" | "bfloat16" => Ok(Dtype::Bf16),
            "f16" | "float16" => Ok(Dtype::F16),
            other => Err(format!("unknown dtype '{other}' (f32, bf16, f16)")),
        }
    }
}

/// A device to run on (`--device`): `auto`, `cpu`, or `cuda` / `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeviceSpec {
    /// GPU 0 when this is a `--features cuda` build and a GPU answers, else the CPU.
    Auto,
    /// The CPU.
    #[default]
    Cpu,
    /// CUDA GPU number N (`cuda` is GPU 0).
    Cuda(usize),
}

impl DeviceSpec {
    /// Opens the device; a CUDA device needs a build with `--features cuda`.
    pub fn open(self) -> Result<Device, ModelError> {
        match self {
            DeviceSpec::Auto => {
                if cfg!(feature = "cuda") {
                    match Device::new_cuda(0) {
                        Ok(d) => return Ok(d),
                        Err(e) => tracing::info!("--device auto: no usable GPU ({e}); using the CPU"),
                    }
                }
                Ok(Device::Cpu)
            }
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(_) if !cfg!(feature = "cuda") => Err(ModelError::Config(format!(
                "device '{self}' needs a build with `--features cuda`; this build is CPU only"
            ))),
            DeviceSpec::Cuda(ordinal) => Ok(Device::new_cuda(ordinal)?),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let s = spec.trim().to_ascii_lowercase();
        match s.as_str() {
            "cpu" => return Ok(DeviceSpec::Cpu),
            "auto" => return Ok(DeviceSpec::Auto),
            _ => {}
        }
        match s.strip_prefix("cuda") {
            Some("") => Ok(DeviceSpec::Cuda(0)),
            Some(rest) => rest
                .strip_prefix(':')
                .and_then(|n| n.parse::<usize>().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| format!("bad device '{spec}' (auto, cpu, cuda, cuda:N)")),
            None => Err(format!("unknown device '{spec}' (auto, cpu, cuda, cuda:N)")),
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_ones_say_what_is_allowed() {
        for d in Dtype::ALL {
            assert_eq!(d.to_string().parse::<Dtype>().unwrap(), d);
        }
        assert_eq!("BFloat16".parse::<Dtype>().unwrap(), Dtype::Bf16);
        assert!("f8".parse::<Dtype>().unwrap_err().contains("f32, bf16, f16"));
        for (s, d) in [
            ("cpu", DeviceSpec::Cpu),
            ("auto", DeviceSpec::Auto),
            ("cuda", DeviceSpec::Cuda(0)),
            ("CUDA:3", DeviceSpec::Cuda(3)),
        ] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap(), d);
        }
        assert_eq!(DeviceSpec::Cuda(2).to_string(), "cuda:2");
        assert!("cuda:x".parse::<DeviceSpec>().is_err() && "tpu".parse::<DeviceSpec>().is_err());
        let native = docseek_kernels::cpu::Isa::active().has_native_bf16();
        assert_eq!(Dtype::default_for(&Device::Cpu), if native { Dtype::Bf16 } else { Dtype::F32 });
        if !cfg!(feature = "cuda") {
            assert!(DeviceSpec::Cuda(0).open().unwrap_err().to_string().contains("--features cuda"));
            assert!(DeviceSpec::Auto.open().unwrap().is_cpu());
        }
    }
}
