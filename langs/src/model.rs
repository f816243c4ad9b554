//! The profile model: per script class, a naive Bayes model over hashed word features
//! (character n-grams, word edges and whole words, see [`crate::ngram`]), stored compactly in
//! `data/profiles.bin` and loaded once.
//!
//! Per class, each row (language) has a log prior and a log-probability floor per feature kind
//! (the smoothed probability of a feature it never showed) and, for the features it did show, a
//! quantised gain over that floor. Scoring a text adds, per feature known to the class, the
//! floor of every row and the gains of the rows that have it: an inverted index, so cost
//! follows the postings.
//!
//! File layout (little endian): magic `DSLP2\n`, u32 class count, then per class: class name,
//! u32 row count, row keys (`code-Script`), per row its f32 prior, `rows x KINDS` f32 floors,
//! u32 feature count, the feature hashes (u32, ascending), per feature its posting count (u8),
//! then the postings as (row u8, gain u8) pairs. Strings are u16 length + UTF-8.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::ngram::{for_each_feature, KINDS};
use crate::LangsError;

/// File magic and version.
const MAGIC: &[u8] = b"DSLP2\n";
/// Nats per unit of a quantised gain.
pub const GAIN_STEP: f32 = 1.0 / 16.0;
/// Most rows a class can hold (row indices are bytes).
pub const MAX_ROWS: usize = 255;
/// Posting lists at least this long are expanded at load into a dense gain per row, which
/// adds in a vectorised loop (common n-grams are shown by most languages of a class).
const DENSE_MIN_POSTINGS: usize = 12;
/// Marker length of a dense entry in the index.
const DENSE: u16 = u16::MAX;

/// A hasher that passes through keys that are already hashes.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u32(&mut self, v: u32) {
        // Spread the 32-bit hash over the high bits too (hashbrown uses the top 7 bits).
        self.0 = (v as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdentityMap<V> = HashMap<u32, V, BuildHasherDefault<IdentityHasher>>;

/// Scores of the rows of one class for one text.
#[derive(Debug, Clone)]
pub struct Scores {
    /// Log prior plus log-likelihood per row (same order as [`ClassModel::rows`]).
    pub log_likelihood: Vec<f32>,
    /// Number of features known to the class that were scored.
    pub features: usize,
    /// Letters of the class in the text.
    pub letters: usize,
}

/// The model of one script class.
#[derive(Debug, Clone)]
pub struct ClassModel {
    /// The script class (ISO 15924, or `Hani`/`Jpan`/`Kore`).
    pub class: String,
    /// Row keys (`code-Script`), indexed by row number.
    pub rows: Vec<String>,
    priors: Vec<f32>,
    floors: Vec<[f32; KINDS]>,
    /// Per n-gram: (start, len) into `postings`, or (start, DENSE) into `dense`.
    index: IdentityMap<(u32, u16)>,
    postings: Vec<(u8, u8)>,
    dense: Vec<u8>,
}

impl ClassModel {
    /// Builds a class model from its parts: per row its log prior and floors, and per feature
    /// hash the (row, quantised gain) postings.
    pub fn from_parts(
        class: String,
        rows: Vec<String>,
        priors: Vec<f32>,
        floors: Vec<[f32; KINDS]>,
        mut entries: Vec<(u32, Vec<(u8, u8)>)>,
    ) -> Result<Self, LangsError> {
        if rows.len() > MAX_ROWS || rows.len() != floors.len() || rows.len() != priors.len() {
            return Err(LangsError::BadProfiles(format!("class {class}: bad row count")));
        }
        entries.sort_by_key(|e| e.0);
        let nrows = rows.len();
        let mut index = IdentityMap::default();
        let mut postings = Vec::new();
        let mut dense = Vec::new();
        for (key, list) in entries {
            if list.len() >= DENSE_MIN_POSTINGS {
                let start = dense.len();
                dense.resize(start + nrows, 0u8);
                for (row, gain) in list {
                    dense[start + row as usize] = gain;
                }
                index.insert(key, ((start / nrows.max(1)) as u32, DENSE));
            } else {
                index.insert(key, (postings.len() as u32, list.len() as u16));
                postings.extend(list);
            }
        }
        Ok(Self { class, rows, priors, floors, index, postings, dense })
    }

    /// The (row, gain) postings of an index entry.
    fn entry_postings(&self, start: u32, len: u16) -> Vec<(u8, u8)> {
        if len == DENSE {
            let n = self.rows.len();
            let d = &self.dense[start as usize * n..(start as usize + 1) * n];
            d.iter().enumerate().filter(|(_, &g)| g > 0).map(|(r, &g)| (r as u8, g)).collect()
        } else {
            self.postings[start as usize..start as usize + len as usize].to_vec()
        }
    }

    /// The quantised gain of every row for feature `hash` (0 where it has none).
    pub fn gains_of(&self, hash: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.rows.len()];
        if let Some(&(start, len)) = self.index.get(&hash) {
            for (row, g) in self.entry_postings(start, len) {
                out[row as usize] = g;
            }
        }
        out
    }

    /// Replaces the gains of feature `hash` (one per row), adding the feature if new. For
    /// training: the old postings stay in the arrays, unreferenced, until the model is
    /// serialised and read back.
    pub fn set_gains(&mut self, hash: u32, gains: &[u8]) {
        let n = self.rows.len();
        let list: Vec<(u8, u8)> =
            gains.iter().enumerate().filter(|(_, &g)| g > 0).map(|(r, &g)| (r as u8, g)).collect();
        if list.len() >= DENSE_MIN_POSTINGS {
            let start = self.dense.len();
            self.dense.extend((0..n).map(|r| gains.get(r).copied().unwrap_or(0)));
            self.index.insert(hash, ((start / n.max(1)) as u32, DENSE));
        } else if list.is_empty() {
            self.index.remove(&hash);
        } else {
            self.index.insert(hash, (self.postings.len() as u32, list.len() as u16));
            self.postings.extend(list);
        }
    }

    /// The log prior of each row.
    pub fn priors(&self) -> &[f32] {
        &self.priors
    }

    /// Number of distinct features held.
    pub fn ngram_count(&self) -> usize {
        self.index.len()
    }

    /// Scores `text` (only the words of this class count).
    pub fn score(&self, text: &str) -> Scores {
        let nrows = self.rows.len();
        let mut gains = vec![0u32; nrows];
        let mut per_kind = [0u32; KINDS];
        let mut features = 0usize;
        let letters = for_each_feature(text, &self.class, |kind, h| {
            if let Some(&(start, len)) = self.index.get(&h) {
                per_kind[kind] += 1;
                features += 1;
                if len == DENSE {
                    let d = &self.dense[start as usize * nrows..(start as usize + 1) * nrows];
                    for (acc, &g) in gains.iter_mut().zip(d) {
                        *acc += g as u32;
                    }
                } else {
                    for &(row, gain) in &self.postings[start as usize..start as usize + len as usize] {
                        gains[row as usize] += gain as u32;
                    }
                }
            }
        });
        let ll = gains
            .iter()
            .zip(&self.floors)
            .zip(&self.priors)
            .map(|((&g, floors), &prior)| {
                let base: f32 = (0..KINDS).map(|k| per_kind[k] as f32 * floors[k]).sum();
                prior + g as f32 * GAIN_STEP + base
            })
            .collect();
        Scores { log_likelihood: ll, features, letters }
    }

    fn write(&self, out: &mut Vec<u8>) {
        write_str(out, &self.class);
        out.extend_from_slice(&(self.rows.len() as u32).to_le_bytes());
        for r in &self.rows {
            write_str(out, r);
        }
        for p in &self.priors {
            out.extend_from_slice(&p.to_le_bytes());
        }
        for f in &self.floors {
            for v in f {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        let mut keys: Vec<(&u32, &(u32, u16))> = self.index.iter().collect();
        keys.sort_by_key(|e| *e.0);
        out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
        for (k, _) in &keys {
            out.extend_from_slice(&k.to_le_bytes());
        }
        let lists: Vec<Vec<(u8, u8)>> = keys.iter().map(|(_, &(start, len))| self.entry_postings(start, len)).collect();
        for list in &lists {
            out.push(list.len() as u8);
        }
        for list in &lists {
            for &(row, gain) in list {
                out.push(row);
                out.push(gain);
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, LangsError> {
        let class = r.string()?;
        let nrows = r.u32()? as usize;
        if nrows > MAX_ROWS {
            return Err(LangsError::BadProfiles(format!("class {class}: {nrows} rows")));
        }
        let rows = (0..nrows).map(|_| r.string()).collect::<Result<Vec<_>, _>>()?;
        let mut priors = Vec::with_capacity(nrows);
        for _ in 0..nrows {
            priors.push(f32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes")));
        }
        let mut floors = Vec::with_capacity(nrows);
        for _ in 0..nrows {
            let mut f = [0.0f32; KINDS];
            for v in &mut f {
                *v = f32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes"));
            }
            floors.push(f);
        }
        let nkeys = r.u32()? as usize;
        let keys = r.take(nkeys * 4)?;
        let lens = r.take(nkeys)?;
        let total: usize = lens.iter().map(|&l| l as usize).sum();
        let raw = r.take(total * 2)?;
        let mut entries = Vec::with_capacity(nkeys);
        let mut at = 0usize;
        for i in 0..nkeys {
            let key = u32::from_le_bytes(keys[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
            let len = lens[i] as usize;
            let list: Vec<(u8, u8)> = raw[at * 2..(at + len) * 2].chunks(2).map(|p| (p[0], p[1])).collect();
            if list.iter().any(|&(row, _)| row as usize >= nrows) {
                return Err(LangsError::BadProfiles(format!("class {class}: row out of range")));
            }
            at += len;
            entries.push((key, list));
        }
        Self::from_parts(class, rows, priors, floors, entries)
    }
}

/// All class models.
#[derive(Debug, Clone, Default)]
pub struct ProfileModel {
    /// One model per script class with more than one row.
    pub classes: Vec<ClassModel>,
}

impl ProfileModel {
    /// The model of a class, if any.
    pub fn class(&self, class: &str) -> Option<&ClassModel> {
        self.classes.iter().find(|m| m.class == class)
    }

    /// Serialises the model (see the module docs for the layout).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&(self.classes.len() as u32).to_le_bytes());
        for c in &self.classes {
            c.write(&mut out);
        }
        out
    }

    /// Parses a serialised model.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LangsError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err(LangsError::BadProfiles("bad magic".into()));
        }
        let n = r.u32()? as usize;
        let classes = (0..n).map(|_| ClassModel::read(&mut r)).collect::<Result<Vec<_>, _>>()?;
        if r.at != bytes.len() {
            return Err(LangsError::BadProfiles("trailing bytes".into()));
        }
        Ok(Self { classes })
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A bounds-checked cursor over the file bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LangsError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| LangsError::BadProfiles("truncated".into()))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, LangsError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn string(&mut self) -> Result<String, LangsError> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| LangsError::BadProfiles("bad utf-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ngram::hash_chars;

    #[test]
    fn round_trip_and_scoring_prefers_the_row_with_the_ngrams() {
        let a = hash_chars(&['a', 'b']);
        let m = ClassModel::from_parts(
            "Latn".into(),
            vec!["xxx-Latn".into(), "yyy-Latn".into()],
            vec![0.0, 0.5],
            vec![[-5.0; KINDS], [-5.0; KINDS]],
            vec![(a, vec![(1, 32)])],
        )
        .unwrap();
        let model = ProfileModel { classes: vec![m] };
        let back = ProfileModel::from_bytes(&model.to_bytes()).unwrap();
        let s = back.class("Latn").unwrap().score("ab ab");
        assert_eq!(s.features, 2);
        assert_eq!(s.log_likelihood, vec![-10.0, 0.5 - 10.0 + 2.0 * 32.0 * GAIN_STEP]);
        assert!(ProfileModel::from_bytes(&model.to_bytes()[..20]).is_err());
    }
}
