//! The special tokens of the DeepSeek-OCR tokenizer and their ids: the one list every other
//! module (prompt layout, n-gram whitelist, config fallbacks, synthetic checkpoints) uses.
//!
//! The ids are the released tokenizer's (`deepseek-ai/DeepSeek-OCR`, `tokenizer.json`); a
//! checkpoint's own `config.json` may override `bos_token_id`, `eos_token_id` and
//! `image_token_id`, which the loaders prefer.

/// Beginning of sequence, `<｜begin▁of▁sentence｜>`.
pub const BOS_ID: u32 = 0;
/// End of sequence, `<｜end▁of▁sentence｜>`.
pub const EOS_ID: u32 = 1;
/// Padding, `<｜▁pad▁｜>`.
pub const PAD_ID: u32 = 2;
/// `<image>`: one per vision-token slot of the prompt (hard-coded in the official
/// `modeling_deepseekocr.py`).
pub const IMAGE_ID: u32 = 128815;
/// `<td>`, opening a table cell.
pub const TD_ID: u32 = 128821;
/// `</td>`, closing a table cell.
pub const TD_CLOSE_ID: u32 = 128822;
/// Token ids the n-gram guard never bans: table cells repeat by nature (the official PDF
/// script's whitelist).
pub const TABLE_CELL_IDS: [u32; 2] = [TD_ID, TD_CLOSE_ID];

/// Every special token of the tokenizer with its id.
pub const SPECIAL_TOKENS: &[(&str, u32)] = &[
    ("<｜begin▁of▁sentence｜>", BOS_ID),
    ("<｜end▁of▁sentence｜>", EOS_ID),
    ("<｜▁pad▁｜>", PAD_ID),
    ("<｜User｜>", 128803),
    ("<｜Assistant｜>", 128804),
    ("<|EOT|>", 128805),
    ("<image>", IMAGE_ID),
    ("<|ref|>", 128816),
    ("<|/ref|>", 128817),
    ("<|det|>", 128818),
    ("<|/det|>", 128819),
    ("<|grounding|>", 128820),
    ("<td>", TD_ID),
    ("</td>", TD_CLOSE_ID),
    ("<tr>", 128823),
    ("</tr>", 128824),
    ("<|User|>", 128825),
    ("<|Assistant|>", 128826),
];
