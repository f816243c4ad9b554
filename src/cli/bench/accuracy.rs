//! `docseek bench accuracy`: how far bf16 and the quantized formats move each stage from f32
//! on a (full-size) checkpoint: the vision encoder's stage tensors in bf16, and the decoder's
//! prefill logits and greedy ids in bf16, q8 and q4, each against the f32 run of the same
//! weights and inputs. Errors are relative L2 norms `‖x - x_f32‖ / ‖x_f32‖`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use docseek_kernels::linear::Quant;
use docseek_vision::{make_views, Mode, VisionEncoder};

use crate::model::loader::{load_decoder, open_weights};
use crate::model::{DeepseekDecoder, LogitsFor, ModelConfig};

/// Arguments of `docseek bench accuracy`.
#[derive(Debug, clap::Args)]
pub struct AccuracyBenchArgs {
    /// Model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// Prompt length of the decoder comparison.
    #[arg(long, default_value_t = 64)]
    pub prompt_tokens: usize,
    /// Greedy steps compared after the prompt.
    #[arg(long, default_value_t = 16)]
    pub steps: usize,
    /// Vision mode of the encoder comparison.
    #[arg(long, default_value = "base")]
    pub mode: Mode,
    /// Page image (default: the synthetic A4 page of `bench encode`).
    #[arg(long)]
    pub image: Option<PathBuf>,
}

fn values(t: &Tensor) -> anyhow::Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
}

/// `‖a - b‖ / ‖b‖`.
fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        num += (*x as f64 - *y as f64).powi(2);
        den += (*y as f64).powi(2);
    }
    (num / den.max(1e-300)).sqrt()
}

/// Prefill logits of the last position and `steps` greedy ids.
fn decode(dec: &DeepseekDecoder, ids: &[u32], steps: usize) -> anyhow::Result<(Vec<f32>, Vec<u32>)> {
    let mut cache = dec.new_cache(ids.len() + steps)?;
    let logits = dec.forward(&dec.embed(ids)?, &mut cache, LogitsFor::Last)?;
    let first = values(&logits)?;
    let mut next = DeepseekDecoder::argmax(&logits)?;
    let mut out = vec![next];
    for _ in 1..steps {
        let l = dec.forward(&dec.embed(&[next])?, &mut cache, LogitsFor::Last)?;
        next = DeepseekDecoder::argmax(&l)?;
        out.push(next);
    }
    Ok((first, out))
}

/// Runs `docseek bench accuracy`.
pub fn run(args: AccuracyBenchArgs) -> anyhow::Result<ExitCode> {
    let cfg = ModelConfig::from_dir(&args.model).context("reading the model config")?;
    let cpu = Device::Cpu;
    let img = match &args.image {
        Some(p) => image::open(p).with_context(|| format!("decoding {}", p.display()))?.to_rgb8(),
        None => super::encode::synthetic_page(),
    };
    println!("accuracy against f32: {} ({})", args.model.display(), super::roofline::machine_line());
    // Vision: every stage of one view set, bf16 against f32.
    let vision_cfg = cfg.vision.as_ref().context("the checkpoint has no vision_config")?;
    let stages = |dtype: DType| -> anyhow::Result<Vec<(&'static str, Vec<f32>)>> {
        let enc = VisionEncoder::from_config(vision_cfg, open_weights(&args.model, dtype, &cpu)?)?;
        let spec = args.mode.spec(enc.config().arch);
        let s = enc.encode_views(&make_views(&img, &spec)?)?;
        Ok(vec![
            ("sam (global view)", values(&s.sam_global)?),
            ("clip / qwen2 encoder", values(&s.feat_global)?),
            ("projector", values(&s.proj_global)?),
            ("image embeds", values(&s.image_embeds)?),
        ])
    };
    let want = stages(DType::F32)?;
    let got = stages(DType::BF16)?;
    for ((name, w), (_, g)) in want.iter().zip(&got) {
        println!("  vision {:<22} bf16 rel L2 {:.2e}", name, rel_l2(g, w));
    }
    // Decoder: prefill logits and greedy ids.
    let dcfg = &cfg.decoder;
    let ids: Vec<u32> =
        (0..args.prompt_tokens as u64).map(|i| ((i * 7919 + 13) % dcfg.vocab_size as u64) as u32).collect();
    let (ref_logits, ref_ids) = {
        let dec = load_decoder(&args.model, dcfg, DType::F32, &cpu, Quant::None)?;
        decode(&dec, &ids, args.steps)?
    };
    for (dtype, quant) in
        [(DType::BF16, Quant::None), (DType::BF16, Quant::Q8), (DType::BF16, Quant::Q4), (DType::F32, Quant::Q8)]
    {
        let dec = load_decoder(&args.model, dcfg, dtype, &cpu, quant)?;
        let (logits, got_ids) = decode(&dec, &ids, args.steps)?;
        let same = ref_ids.iter().zip(&got_ids).take_while(|(a, b)| a == b).count();
        println!(
            "  decoder {:>4} activations, {:<4} weights: prefill logits rel L2 {:.2e}, first {same} of {} greedy ids identical",
            format!("{dtype:?}").to_lowercase(),
            quant.name(),
            rel_l2(&logits, &ref_logits),
            args.steps
        );
    }
    Ok(ExitCode::SUCCESS)
}
