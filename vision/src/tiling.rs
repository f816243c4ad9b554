//! Dynamic tiling (`dynamic_preprocess` / `find_closest_aspect_ratio`, InternVL-style) as the
//! official DeepSeek-OCR code runs it.
//!
//! The candidate grids are a Python `set` of `(w_tiles, h_tiles)` tuples sorted by tile count;
//! the sort is stable, so grids with equal counts keep CPython's set iteration order, and that
//! order decides exact aspect-ratio ties. We reproduce it by simulating CPython's tuple hash
//! (xxHash-style, 3.8+) and its set table (linear probing + perturbation, growth at 60 % fill);
//! the unit tests check the result against the orders the reference printed for (2, 9) and (2, 6).

/// A tile grid: `w` tiles across, `h` tiles down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileGrid {
    /// Tiles across.
    pub w: u32,
    /// Tiles down.
    pub h: u32,
}

impl TileGrid {
    /// Number of tiles.
    pub fn count(self) -> u32 {
        self.w * self.h
    }
}

const XXPRIME_1: u64 = 11400714785074694791;
const XXPRIME_2: u64 = 14029467366897019727;
const XXPRIME_5: u64 = 2870177450012600261;
/// CPython's `PySet_MINSIZE`.
const SET_MIN_SIZE: usize = 8;
/// CPython's `LINEAR_PROBES` in setobject.c.
const LINEAR_PROBES: usize = 9;
/// CPython's `PERTURB_SHIFT`.
const PERTURB_SHIFT: u32 = 5;

/// `hash((a, b))` for small non-negative ints on 64-bit CPython >= 3.8.
fn tuple_hash(items: &[u64]) -> u64 {
    let mut acc = XXPRIME_5;
    for &lane in items {
        acc = acc.wrapping_add(lane.wrapping_mul(XXPRIME_2));
        acc = acc.rotate_left(31);
        acc = acc.wrapping_mul(XXPRIME_1);
    }
    acc = acc.wrapping_add(items.len() as u64 ^ (XXPRIME_5 ^ 3527539));
    if acc == u64::MAX {
        1546275796
    } else {
        acc
    }
}

/// Simulated CPython set of distinct keys (no deletions).
struct PySet {
    table: Vec<Option<(u64, TileGrid)>>,
    fill: usize,
}

impl PySet {
    fn new() -> Self {
        PySet { table: vec![None; SET_MIN_SIZE], fill: 0 }
    }

    /// Slot for `hash` in `table` following CPython's probe sequence (first free or equal slot).
    fn probe(table: &[Option<(u64, TileGrid)>], hash: u64, key: Option<TileGrid>) -> usize {
        let mask = table.len() - 1;
        let mut perturb = hash;
        let mut i = (hash as usize) & mask;
        loop {
            let probes = if i + LINEAR_PROBES <= mask { LINEAR_PROBES } else { 0 };
            for (j, slot) in table.iter().enumerate().skip(i).take(probes + 1) {
                match *slot {
                    None => return j,
                    Some((h, k)) if Some(k) == key && h == hash => return j,
                    _ => {}
                }
            }
            perturb >>= PERTURB_SHIFT;
            i = (i.wrapping_mul(5).wrapping_add(1).wrapping_add(perturb as usize)) & mask;
        }
    }

    fn add(&mut self, key: TileGrid) {
        let hash = tuple_hash(&[key.w as u64, key.h as u64]);
        let slot = Self::probe(&self.table, hash, Some(key));
        if self.table[slot].is_some() {
            return;
        }
        self.table[slot] = Some((hash, key));
        self.fill += 1;
        let mask = self.table.len() - 1;
        if self.fill * 5 >= mask * 3 {
            self.resize(self.fill * 4);
        }
    }

    fn resize(&mut self, minused: usize) {
        let mut size = SET_MIN_SIZE;
        while size <= minused {
            size <<= 1;
        }
        let old = std::mem::replace(&mut self.table, vec![None; size]);
        for (hash, key) in old.into_iter().flatten() {
            let slot = Self::probe(&self.table, hash, None);
            self.table[slot] = Some((hash, key));
        }
    }

    fn iter(&self) -> impl Iterator<Item = TileGrid> + '_ {
        self.table.iter().flatten().map(|&(_, k)| k)
    }
}

/// The candidate grids in the exact order `dynamic_preprocess(min_num, max_num)` tries them.
pub fn candidate_grids(min_tiles: u32, max_tiles: u32) -> Vec<TileGrid> {
    let mut set = PySet::new();
    for n in min_tiles..=max_tiles {
        for i in 1..=n {
            for j in 1..=n {
                if i * j <= max_tiles && i * j >= min_tiles {
                    set.add(TileGrid { w: i, h: j });
                }
            }
        }
    }
    let mut v: Vec<TileGrid> = set.iter().collect();
    v.sort_by_key(|g| g.count()); // stable, like Python's sorted
    v
}

/// `find_closest_aspect_ratio`: the grid whose aspect ratio is closest to the image's; on an
/// exact tie the later candidate wins iff the image area exceeds half the grid's pixel area.
pub fn closest_grid(width: u32, height: u32, candidates: &[TileGrid], tile_size: u32) -> TileGrid {
    let aspect = width as f64 / height as f64;
    let area = width as f64 * height as f64;
    let mut best_diff = f64::INFINITY;
    let mut best = TileGrid { w: 1, h: 1 };
    for &g in candidates {
        let diff = (aspect - g.w as f64 / g.h as f64).abs();
        if diff < best_diff {
            best_diff = diff;
            best = g;
        } else if diff == best_diff && area > 0.5 * tile_size as f64 * tile_size as f64 * g.w as f64 * g.h as f64 {
            best = g;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grids(v: &[(u32, u32)]) -> Vec<TileGrid> {
        v.iter().map(|&(w, h)| TileGrid { w, h }).collect()
    }

    #[test]
    #[rustfmt::skip] // the grids in the reference's order, eleven to a line
    fn reference_orders() {
        let hf = grids(&[
            (1, 2), (2, 1), (3, 1), (1, 3), (2, 2), (4, 1), (1, 4), (5, 1), (1, 5), (1, 6), (6, 1),
            (3, 2), (2, 3), (7, 1), (1, 7), (4, 2), (2, 4), (1, 8), (8, 1), (1, 9), (3, 3), (9, 1),
        ]);
        assert_eq!(candidate_grids(2, 9), hf);
        let vllm = grids(&[
            (1, 2), (2, 1), (3, 1), (1, 3), (4, 1), (1, 4), (2, 2), (1, 5), (5, 1), (6, 1), (2, 3),
            (1, 6), (3, 2),
        ]);
        assert_eq!(candidate_grids(2, 6), vllm);
    }

    #[test]
    fn a4_page_gets_two_by_three() {
        let c = candidate_grids(2, 9);
        assert_eq!(closest_grid(1191, 1684, &c, 640), TileGrid { w: 2, h: 3 });
        assert_eq!(closest_grid(1920, 1080, &c, 640), TileGrid { w: 4, h: 2 });
        assert_eq!(closest_grid(1920, 1080, &candidate_grids(2, 6), 640), TileGrid { w: 2, h: 1 });
    }
}
