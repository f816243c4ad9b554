//! The routed-expert feed-forward of a DeepSeek MoE layer in one call: for every token its k
//! experts' `down(silu(gate(x)) * up(x))`, weighted and summed, plus the shared experts (weight
//! 1), all in f32, rounded once by the caller.
//!
//! Tokens are grouped by expert, so each active expert's weights are read once per call.
//! Small groups (decode: one token, or a few in a batch) run in two threaded passes over all
//! of them together: gate+up rows split across threads, then down rows split across threads
//! with each thread owning its output columns, so nothing is allocated per expert and no two
//! threads write the same value. Large groups (prefill) run whole experts one per thread (a
//! group that is a large share of the work, the shared experts of a long prompt, runs alone on
//! the threaded GEMM), then their outputs are added by column ranges.

use std::ops::Range;

use super::gemm_bf16::{self, Bf16Rows, PanelSource};
use super::gemv_bf16::{prepare, Acts, PreparedActs};
use super::isa::Isa;
use super::matmul::{rows_kernel, Prepared, WeightRef, GEMV_MAX_ROWS};
use super::pool;
use super::qmatmul::QPanels;
use super::quant::QActs;
use super::vmath::{self, Activation};

/// Rows per task in the small-group passes.
const ROWS_PER_TASK: usize = 64;

/// One SwiGLU expert: `gate`, `up` `[inter, hidden]`, `down` `[hidden, inter]`.
#[derive(Debug, Clone, Copy)]
pub struct ExpertRef<'a> {
    /// Gate projection.
    pub gate: WeightRef<'a>,
    /// Up projection.
    pub up: WeightRef<'a>,
    /// Down projection.
    pub down: WeightRef<'a>,
}

impl ExpertRef<'_> {
    fn inter(&self) -> usize {
        self.gate.rows()
    }
}

/// `silu(g) * u`, in f32 as the reference computes it.
#[inline]
pub fn silu_mul(g: f32, u: f32) -> f32 {
    g / (1.0 + (-g).exp()) * u
}

/// Tokens of one expert with their weights.
struct Group<'e, 'a> {
    expert: &'e ExpertRef<'a>,
    tokens: Vec<usize>,
    weights: Vec<f32>,
}

/// Adds the MoE output of `t` tokens `x` `[t, hidden]` to `out` `[t, hidden]` (f32).
///
/// `ids` / `weights` are `[t * k]` (token-major) routed expert ids and their weights; `shared`
/// is applied to every token with weight 1.
#[allow(clippy::too_many_arguments)]
pub fn moe_forward(
    isa: Isa,
    experts: &[ExpertRef],
    shared: Option<&ExpertRef>,
    x: Acts,
    t: usize,
    ids: &[u32],
    weights: &[f32],
    k: usize,
    out: &mut [f32],
) {
    let hidden = match experts.first().or(shared) {
        Some(e) => e.gate.cols(),
        None => return,
    };
    assert_eq!(ids.len(), t * k);
    assert_eq!(weights.len(), t * k);
    assert!(x.len() >= t * hidden && out.len() >= t * hidden);
    let mut by_expert: Vec<Option<Group>> = (0..experts.len()).map(|_| None).collect();
    for (p, (&e, &w)) in ids.iter().zip(weights).enumerate() {
        let e = e as usize;
        assert!(e < experts.len(), "routed to missing expert {e}");
        let g =
            by_expert[e].get_or_insert_with(|| Group { expert: &experts[e], tokens: Vec::new(), weights: Vec::new() });
        g.tokens.push(p / k);
        g.weights.push(w);
    }
    let mut groups: Vec<Group> = by_expert.into_iter().flatten().collect();
    if let Some(s) = shared {
        groups.push(Group { expert: s, tokens: (0..t).collect(), weights: vec![1.0; t] });
    }
    let (small, large): (Vec<Group>, Vec<Group>) = groups.into_iter().partition(|g| g.tokens.len() <= GEMV_MAX_ROWS);
    run_large_groups(isa, &large, x, hidden, out);
    if !small.is_empty() {
        run_small(isa, &small, x, hidden, out);
    }
}

/// The rows of `x` named by `tokens`, as their own activations.
fn gather(x: Acts, tokens: &[usize], hidden: usize) -> GatheredActs {
    match x {
        Acts::F32(v) => {
            GatheredActs::F32(tokens.iter().flat_map(|&t| v[t * hidden..(t + 1) * hidden].iter().copied()).collect())
        }
        Acts::Bf16(v) => {
            GatheredActs::Bf16(tokens.iter().flat_map(|&t| v[t * hidden..(t + 1) * hidden].iter().copied()).collect())
        }
    }
}

enum GatheredActs {
    F32(Vec<f32>),
    Bf16(Vec<half::bf16>),
}

impl GatheredActs {
    fn acts(&self) -> Acts<'_> {
        match self {
            GatheredActs::F32(v) => Acts::F32(v),
            GatheredActs::Bf16(v) => Acts::Bf16(v),
        }
    }
}

/// The large groups (prefill): a group worth more than [`THREADED_SHARE`] of a thread's share
/// runs alone on the threaded GEMM; the others run whole, one per thread at a time (largest
/// first), so threads never wait on each other inside an expert and each weight block is
/// packed once. Their outputs are added to `out` afterwards, threads owning column ranges.
fn run_large_groups(isa: Isa, groups: &[Group], x: Acts, hidden: usize, out: &mut [f32]) {
    if groups.is_empty() {
        return;
    }
    let work = |g: &Group| g.tokens.len() * g.expert.inter();
    let total: usize = groups.iter().map(work).sum();
    let threads = pool::threads();
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(work(&groups[i])));
    let big =
        order.iter().take_while(|&&i| threads == 1 || work(&groups[i]) * threads * THREADED_SHARE > total).count();
    let mut ys: Vec<Vec<f32>> = vec![Vec::new(); groups.len()];
    for &i in &order[..big] {
        ys[i] = expert_output(isa, &groups[i], x, hidden, true);
    }
    let rest = &order[big..];
    let slots: Vec<std::sync::Mutex<Vec<f32>>> = rest.iter().map(|_| std::sync::Mutex::new(Vec::new())).collect();
    pool::for_each_task(rest.len(), |t| {
        let y = expert_output(isa, &groups[rest[t]], x, hidden, false);
        *slots[t].lock().expect("expert output") = y;
    });
    for (t, slot) in rest.iter().zip(slots) {
        ys[*t] = slot.into_inner().expect("expert output");
    }
    let col_tasks: Vec<Range<usize>> = chunks(hidden).collect();
    let op = SendPtr(out.as_mut_ptr());
    pool::for_each_task(col_tasks.len(), |ti| {
        let r = col_tasks[ti].clone();
        for (g, y) in groups.iter().zip(&ys) {
            for (i, (&tok, &w)) in g.tokens.iter().zip(&g.weights).enumerate() {
                // SAFETY: this task alone writes columns r of every token row.
                let o = unsafe { std::slice::from_raw_parts_mut(op.get().add(tok * hidden + r.start), r.len()) };
                o.iter_mut().zip(&y[i * hidden + r.start..i * hidden + r.end]).for_each(|(o, y)| *o += w * y);
            }
        }
    });
}

/// A group above `1 / THREADED_SHARE` of one thread's share of the work runs threaded.
const THREADED_SHARE: usize = 2;

/// One expert on its tokens through the GEMM (threaded or on this thread): `[m, hidden]`.
fn expert_output(isa: Isa, g: &Group, x: Acts, hidden: usize, threaded: bool) -> Vec<f32> {
    let m = g.tokens.len();
    let inter = g.expert.inter();
    let xg = gather(x, &g.tokens, hidden);
    let a = prepare(isa, xg.acts());
    let mut gate = vec![0f32; m * inter];
    let mut up = vec![0f32; m * inter];
    gemm_weight(isa, &g.expert.gate, &a, m, &mut gate, inter, threaded);
    gemm_weight(isa, &g.expert.up, &a, m, &mut up, inter, threaded);
    // silu(g) * u, as `silu_mul`, vectorised.
    vmath::apply(isa, Activation::Silu, &mut gate);
    gate.iter_mut().zip(&up).for_each(|(g, u)| *g *= u);
    let h = prepare(isa, Acts::F32(&gate));
    let mut y = up;
    y.resize(m * hidden, 0.0);
    gemm_weight(isa, &g.expert.down, &h, m, &mut y, hidden, threaded);
    y
}

/// The packed GEMM on a bf16 or quantized weight.
fn gemm_weight(isa: Isa, w: &WeightRef, a: &PreparedActs, m: usize, out: &mut [f32], ldc: usize, threaded: bool) {
    let mut run = |src: &dyn PanelSource| {
        if threaded {
            gemm_bf16::gemm(isa, src, a, m, out, ldc)
        } else {
            gemm_bf16::gemm_serial(isa, src, a, m, out, ldc)
        }
    };
    match w {
        WeightRef::Bf16 { data, rows, cols } => run(&Bf16Rows { data, rows: *rows, cols: *cols }),
        WeightRef::Quant(q) => run(&QPanels(*q)),
    }
}

/// All small groups together in two threaded passes.
fn run_small(isa: Isa, groups: &[Group], x: Acts, hidden: usize, out: &mut [f32]) {
    // x is prepared once per weight kind (bf16 / quantized); each group takes its rows.
    let t = x.len() / hidden;
    let mut full: Vec<Prepared> = Vec::new();
    let mut kind = |w: &WeightRef| -> usize {
        let same = |p: &Prepared| {
            matches!((p, w), (Prepared::Quant(_), WeightRef::Quant(_)) | (Prepared::Bf16(_), WeightRef::Bf16 { .. }))
        };
        match full.iter().position(same) {
            Some(i) => i,
            None => {
                full.push(prepare_rows(isa, w, x, t, hidden));
                full.len() - 1
            }
        }
    };
    let kinds: Vec<(usize, usize)> = groups.iter().map(|g| (kind(&g.expert.gate), kind(&g.expert.up))).collect();
    let prepared: Vec<(Prepared, Option<Prepared>)> = groups
        .iter()
        .zip(&kinds)
        .map(|(g, &(kg, ku))| {
            let pg = full[kg].gather(&g.tokens, hidden);
            let pu = (ku != kg).then(|| full[ku].gather(&g.tokens, hidden));
            (pg, pu)
        })
        .collect();
    // Pass 1: h = silu(gate x) * (up x) for every group, split into row chunks.
    let h_offsets: Vec<usize> = groups
        .iter()
        .scan(0, |acc, g| {
            let o = *acc;
            *acc += g.tokens.len() * g.expert.inter();
            Some(o)
        })
        .collect();
    let h_len = groups.iter().map(|g| g.tokens.len() * g.expert.inter()).sum();
    let mut h = vec![0f32; h_len];
    let tasks: Vec<(usize, Range<usize>)> =
        groups.iter().enumerate().flat_map(|(gi, g)| chunks(g.expert.inter()).map(move |r| (gi, r))).collect();
    let hp = SendPtr(h.as_mut_ptr());
    pool::for_each_task(tasks.len(), |ti| {
        let (gi, ref r) = tasks[ti];
        let g = &groups[gi];
        let (m, inter) = (g.tokens.len(), g.expert.inter());
        let mut gate = vec![0f32; m * r.len()];
        let mut up = vec![0f32; m * r.len()];
        let (pg, pu) = &prepared[gi];
        rows_kernel(isa, &g.expert.gate, pg, m, r.clone(), &mut gate, r.len());
        rows_kernel(isa, &g.expert.up, pu.as_ref().unwrap_or(pg), m, r.clone(), &mut up, r.len());
        for i in 0..m {
            for (j, n) in r.clone().enumerate() {
                // SAFETY: task (gi, r) alone writes columns r of group gi's rows.
                unsafe {
                    *hp.get().add(h_offsets[gi] + i * inter + n) = silu_mul(gate[i * r.len() + j], up[i * r.len() + j])
                };
            }
        }
    });
    let hprep: Vec<Prepared> = groups
        .iter()
        .zip(&h_offsets)
        .map(|(g, &o)| {
            let m = g.tokens.len();
            Prepared::new(isa, &g.expert.down, Acts::F32(&h[o..o + m * g.expert.inter()]), m)
        })
        .collect();
    // Pass 2: each task owns output columns r of every token and adds every group's share.
    let col_tasks: Vec<Range<usize>> = chunks(hidden).collect();
    let op = SendPtr(out.as_mut_ptr());
    pool::for_each_task(col_tasks.len(), |ti| {
        let r = col_tasks[ti].clone();
        let mut y = Vec::new();
        for (g, p) in groups.iter().zip(&hprep) {
            let m = g.tokens.len();
            y.clear();
            y.resize(m * r.len(), 0.0);
            rows_kernel(isa, &g.expert.down, p, m, r.clone(), &mut y, r.len());
            for (i, (&tok, &w)) in g.tokens.iter().zip(&g.weights).enumerate() {
                for (j, n) in r.clone().enumerate() {
                    // SAFETY: this task alone writes columns r of every token row.
                    unsafe { *op.get().add(tok * hidden + n) += w * y[i * r.len() + j] };
                }
            }
        }
    });
}

/// All `t` rows of `x` in the GEMV form for `w`'s kind (quantized activations for quantized
/// weights, whatever the row count).
fn prepare_rows<'a>(isa: Isa, w: &WeightRef, x: Acts<'a>, t: usize, hidden: usize) -> Prepared<'a> {
    match (w, x) {
        (WeightRef::Quant(_), Acts::F32(v)) => Prepared::Quant(QActs::quantize_f32(&v[..t * hidden], t, hidden)),
        (WeightRef::Quant(_), Acts::Bf16(v)) => Prepared::Quant(QActs::quantize_bf16(&v[..t * hidden], t, hidden)),
        _ => Prepared::new(isa, w, x, t),
    }
}

fn chunks(n: usize) -> impl Iterator<Item = Range<usize>> {
    (0..n).step_by(ROWS_PER_TASK).map(move |s| s..(s + ROWS_PER_TASK).min(n))
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint output ranges to tasks.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}
