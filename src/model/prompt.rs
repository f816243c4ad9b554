//! Prompt layout of the official `infer()`: `[BOS] + [image_token_id] * slots + text ids`
//! (no role tokens, no EOS; the text is the prompt after `<image>`, tokenised without special
//! tokens), and the splice of vision features into the image slots of the embeddings
//! (`masked_scatter` in the reference: slots are filled in order).

use std::path::Path;

use candle_core::{Result, Tensor};

use super::decoder::DeepseekDecoder;
use super::ModelError;

/// A `tokenizers` tokenizer loaded from a model folder's `tokenizer.json`.
pub struct PromptTokenizer {
    inner: tokenizers::Tokenizer,
}

impl std::fmt::Debug for PromptTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptTokenizer").field("vocab", &self.inner.get_vocab_size(true)).finish()
    }
}

impl PromptTokenizer {
    /// Loads `DIR/tokenizer.json`.
    pub fn from_dir(dir: &Path) -> std::result::Result<Self, ModelError> {
        let path = dir.join("tokenizer.json");
        let inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", path.display())))?;
        Ok(PromptTokenizer { inner })
    }

    /// Wraps an already built tokenizer.
    pub fn new(inner: tokenizers::Tokenizer) -> Self {
        PromptTokenizer { inner }
    }

    /// Ids of `text` without BOS/EOS (special tokens such as `<|grounding|>` stay single ids).
    pub fn encode(&self, text: &str) -> std::result::Result<Vec<u32>, ModelError> {
        let enc = self.inner.encode(text, false).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens kept (the raw model output keeps `<|ref|>` etc.).
    pub fn decode(&self, ids: &[u32]) -> std::result::Result<String, ModelError> {
        self.inner.decode(ids, false).map_err(|e| ModelError::Tokenizer(e.to_string()))
    }

    /// The id of a token string, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}

/// Prompt ids: `[bos] + [image_token_id] * slots + text_ids`.
pub fn prompt_ids(bos: u32, image_token_id: u32, slots: usize, text_ids: &[u32]) -> Vec<u32> {
    let mut ids = Vec::with_capacity(1 + slots + text_ids.len());
    ids.push(bos);
    ids.extend(std::iter::repeat_n(image_token_id, slots));
    ids.extend_from_slice(text_ids);
    ids
}

/// Embeds `ids` and puts the rows of `image` `[slots, hidden]` at the positions holding
/// `image_token_id`, in order. Errors when the counts differ.
pub fn embed_with_image(
    decoder: &DeepseekDecoder,
    ids: &[u32],
    image_token_id: u32,
    image: Option<&Tensor>,
) -> Result<Tensor> {
    let text = decoder.embed(ids)?;
    let slots: Vec<usize> = ids.iter().enumerate().filter(|(_, &t)| t == image_token_id).map(|(i, _)| i).collect();
    let Some(image) = image else {
        if !slots.is_empty() {
            candle_core::bail!("the prompt has {} image slots but no image features", slots.len());
        }
        return Ok(text);
    };
    let n_img = image.dim(0)?;
    if n_img != slots.len() {
        candle_core::bail!("{} image features for {} image slots", n_img, slots.len());
    }
    // Row i of the result is row map[i] of cat([text, image]).
    let mut map: Vec<u32> = (0..ids.len() as u32).collect();
    for (k, &pos) in slots.iter().enumerate() {
        map[pos] = (ids.len() + k) as u32;
    }
    let all = Tensor::cat(&[&text, &image.to_dtype(text.dtype())?], 0)?;
    let map = Tensor::from_vec(map, ids.len(), text.device())?;
    all.index_select(&map, 0)
}
