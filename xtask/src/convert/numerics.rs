//! The converter's numerics choices for each encoder layer: how the three dense inputs a
//! blob may choose (`microbert::blob::QuantizedInput`) are quantised, and the SmoothQuant
//! factors folded into the weights that read them. Made by calibration (`crate::calibrate`)
//! and written as the blob's numerics section plus each dense layer's `input_smoothing`.

use microbert::blob::InputFormat;

/// How one dense input is quantised, and its SmoothQuant factors: the runtime multiplies
/// input element `j` by `smoothing[j]` (a Q.16 value, given here as the exact real number it
/// stands for) and the converter divides weight column `j` by it.
#[derive(Debug, Clone, PartialEq)]
pub struct InputPlan {
    /// The per-row format.
    pub format: InputFormat,
    /// Factors, one per input element, each a multiple of 2^-16.
    pub smoothing: Option<Vec<f64>>,
}

impl InputPlan {
    /// Symmetric int8, no smoothing (the runtime's format of before numerics).
    pub const fn int8() -> Self {
        Self {
            format: InputFormat::Int8,
            smoothing: None,
        }
    }

    /// Symmetric int16, no smoothing (the task heads' inputs, docs/blob-format.md).
    pub const fn int16() -> Self {
        Self {
            format: InputFormat::Int16,
            smoothing: None,
        }
    }
}

/// The plans of one layer's inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNumerics {
    /// The query, key and value projections' input (one plan for the three).
    pub attention: InputPlan,
    /// FFN1's input.
    pub intermediate: InputPlan,
    /// FFN2's input (the GELU output).
    pub output: InputPlan,
}

impl LayerNumerics {
    /// int8 everywhere, no smoothing.
    pub const fn plain() -> Self {
        Self {
            attention: InputPlan::int8(),
            intermediate: InputPlan::int8(),
            output: InputPlan::int8(),
        }
    }
}

/// Every layer's plans, with a one-line description for the provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct Numerics {
    /// One per encoder layer.
    pub layers: Vec<LayerNumerics>,
    /// What was chosen and from what (recorded in the blob's provenance settings).
    pub description: String,
}
