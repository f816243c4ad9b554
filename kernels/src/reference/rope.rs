//! Reference of the rotary embedding over token-major activations with per-token positions
//! (a batch mixes sequences at different positions).

use super::Elem;

/// Pair layout of the rotated dims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// `rotate_half`: dim `i` pairs with `i + d/2` (LLaMA / the OCR decoder's MHA).
    Neox,
    /// Adjacent pairs `(2i, 2i+1)` (the MLA rope part, candle's `rope_i`).
    Interleaved,
}

/// Rotates `x` `[tokens, heads, dim]` in f32 and rounds once: token `t` uses row
/// `positions[t]` of the `[rows, dim/2]` tables `cos` and `sin`.
pub fn rope<T: Elem>(
    x: &[T],
    heads: usize,
    dim: usize,
    positions: &[u32],
    cos: &[T],
    sin: &[T],
    style: RopeStyle,
) -> Vec<T> {
    assert!(dim.is_multiple_of(2) && dim > 0, "rope: odd head dim {dim}");
    let half = dim / 2;
    assert_eq!(x.len(), positions.len() * heads * dim, "rope: x shape");
    let mut out = vec![T::from_f32(0.0); x.len()];
    for (t, &p) in positions.iter().enumerate() {
        let row = p as usize * half;
        assert!(row + half <= cos.len() && row + half <= sin.len(), "rope: position {p} past the tables");
        for h in 0..heads {
            let base = (t * heads + h) * dim;
            for i in 0..half {
                let (c, s) = (cos[row + i].to_f32(), sin[row + i].to_f32());
                let (a, b) = match style {
                    RopeStyle::Neox => (base + i, base + i + half),
                    RopeStyle::Interleaved => (base + 2 * i, base + 2 * i + 1),
                };
                let (xa, xb) = (x[a].to_f32(), x[b].to_f32());
                out[a] = T::from_f32(xa * c - xb * s);
                out[b] = T::from_f32(xb * c + xa * s);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarter_turn_swaps_pairs() {
        // cos 0, sin 1 at position 1: (a, b) -> (-b, a).
        let cos = [1.0f32, 1.0, 0.0, 0.0];
        let sin = [0.0f32, 0.0, 1.0, 1.0];
        let x = [1.0f32, 2.0, 3.0, 4.0];
        assert_eq!(rope(&x, 1, 4, &[1], &cos, &sin, RopeStyle::Neox), vec![-3.0, -4.0, 1.0, 2.0]);
        assert_eq!(rope(&x, 1, 4, &[1], &cos, &sin, RopeStyle::Interleaved), vec![-2.0, 1.0, -4.0, 3.0]);
        assert_eq!(rope(&x, 1, 4, &[0], &cos, &sin, RopeStyle::Neox), x.to_vec());
    }
}
