//! Position embeddings, absolute or hierarchical (Su Jianlin's decomposition).
//!
//! With the trained table `p` of `n` rows and `alpha` from the blob,
//! `u_i = (p_i - alpha p_0) / (1 - alpha)` and `q_{i n + j} = alpha u_i + (1 - alpha) u_j`
//! simplify to `q_k = p_{k mod n} + beta (p_{k div n} - p_0)` with
//! `beta = alpha / (1 - alpha)`. Position `k` therefore needs rows `k mod n`, `k div n`
//! and 0 of the trained table, computed when token `k` is embedded: no table larger than
//! the trained one ever exists. Positions below `n` are exactly the trained rows.
//! (Su Jianlin, "Hierarchical decomposition of position embeddings", kexue.fm 7947, 2020.)

use crate::blob::{Config, EmbeddingTable, PositionMode};
use crate::error::RunError;
use crate::kernels::scalar::le_i32;
use crate::quant::{FRAC_BITS, mul_shift, round_shift_i64, sat_i32_from_i64};

/// Q.16 values of row `row` of an int8-per-row embedding table, `d` of them (0 past the
/// table's data): `round(w * multiplier / 2^shift)` with the row's multiplier and shift.
pub(crate) fn table_row<'t>(
    t: &EmbeddingTable<'t>,
    row: usize,
    d: usize,
) -> impl Iterator<Item = i64> + 't {
    let data = t.weight.data.get(row * d..).unwrap_or_default();
    let m = le_i32(t.row_multiplier.data, row);
    let s = t.row_shift.data.get(row).copied().unwrap_or(0);
    let values = data.iter().map(move |&b| {
        let w = i64::from(b as i8);
        // |w * m| < 2^38: below a shift of 63 the i64 rounding is exact (and equal to
        // `mul_shift`'s i128 one), which keeps the per-element work cheap.
        if s < 63 {
            i64::from(sat_i32_from_i64(round_shift_i64(
                w * i64::from(m),
                s.into(),
            )))
        } else {
            i64::from(mul_shift(w, m, s))
        }
    });
    values.chain(core::iter::repeat(0)).take(d)
}

/// Adds position `k`'s embedding (Q.16) to `row`.
pub(crate) fn add_position(
    t: &EmbeddingTable<'_>,
    c: &Config,
    mode: PositionMode,
    k: usize,
    row: &mut [i32],
) -> Result<(), RunError> {
    let n = c.max_position_embeddings as usize;
    let limit = c.max_positions(mode);
    if k >= limit {
        return Err(RunError::PositionOutOfRange { position: k, limit });
    }
    let d = row.len();
    if k < n {
        for (x, p) in row.iter_mut().zip(table_row(t, k, d)) {
            *x = sat_i32_from_i64(i64::from(*x) + p);
        }
        return Ok(());
    }
    let (i, j) = (k / n, k % n);
    let beta = i64::from(c.position_beta_q16);
    let rows = table_row(t, i, d)
        .zip(table_row(t, 0, d))
        .zip(table_row(t, j, d));
    for (x, ((p_i, p_0), p_j)) in row.iter_mut().zip(rows) {
        // |p_i - p_0| < 2^32 and beta < 2^24: the product stays below 2^56.
        let q = p_j + round_shift_i64((p_i - p_0) * beta, FRAC_BITS);
        *x = sat_i32_from_i64(i64::from(*x) + q);
    }
    Ok(())
}
