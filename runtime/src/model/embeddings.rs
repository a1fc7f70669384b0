//! `BertEmbeddings`: word + position + token-type embeddings, then LayerNorm.
//!
//! Each table is int8 with a scale per row (one shared scale loses accuracy: the position
//! table's range is ten times a typical word row's); each element becomes Q.16 through its
//! row's multiplier and the three are summed in i32 Q.16.

use super::position::{add_position, table_row};
use crate::blob::{ModelView, PositionMode};
use crate::error::RunError;
use crate::kernels::Kernels;
use crate::quant::sat_i32_from_i64;

/// Writes the embedding LayerNorm output of every token into `hidden` (`[n, d]`, Q.16).
pub(crate) fn embed<K: Kernels>(
    k: &K,
    model: &ModelView<'_>,
    ids: &[u32],
    token_types: Option<&[u32]>,
    positions: PositionMode,
    hidden: &mut [i32],
) -> Result<(), RunError> {
    let c = &model.config;
    let e = &model.embeddings;
    let d = c.hidden_size as usize;
    let ln = super::dense::layer_norm(&e.layer_norm, c.layer_norm_eps_q32);
    for (t, row) in hidden.chunks_exact_mut(d).take(ids.len()).enumerate() {
        let id = ids.get(t).copied().unwrap_or(0) as usize;
        let ty = token_types.and_then(|ts| ts.get(t).copied()).unwrap_or(0) as usize;
        let values = table_row(&e.word, id, d).zip(table_row(&e.token_type, ty, d));
        for (x, (w, tt)) in row.iter_mut().zip(values) {
            *x = sat_i32_from_i64(w + tt);
        }
        add_position(&e.position, c, positions, t, row)?;
        if let Some(ln) = &ln {
            k.layer_norm_row(row, ln);
        }
    }
    Ok(())
}
