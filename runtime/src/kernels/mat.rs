//! Matrix operands of the kernels: strided views whose checked constructors are the
//! precondition every kernel (SIMD ones included) relies on, and the operand kinds of a
//! product ([`Lhs`], [`Rhs`]) bundled into one checked call ([`Gemm`]).
//!
//! A [`MatRef`] is `rows` rows of `cols` elements, row `r` starting at `data[r * ld]`. Its
//! constructor checks `cols <= ld` and that `data` holds every addressed element
//! (`(rows - 1) * ld + cols`, without overflow), so code holding a view may read
//! `row(r)[..cols]` for every `r < rows` with unchecked loads. [`Gemm::new`] additionally
//! checks that the three operands agree (`a.cols == depth`, `a.rows == out.rows`,
//! `b`'s channel count `== out.cols`).

/// Element types of matrix operands.
pub trait Element:
    Copy + Default + PartialEq + core::fmt::Debug + 'static + sealed::Sealed
{
}

impl Element for i8 {}
impl Element for u8 {}
impl Element for i16 {}
impl Element for u16 {}
impl Element for i32 {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for i8 {}
    impl Sealed for u8 {}
    impl Sealed for i16 {}
    impl Sealed for u16 {}
    impl Sealed for i32 {}
}

/// Whether `rows` rows of `width` elements, `ld` apart, lie within `len` elements (no
/// overflow). Empty shapes always fit.
pub const fn strided_covers(rows: usize, width: usize, ld: usize, len: usize) -> bool {
    if rows == 0 || width == 0 {
        return true;
    }
    match (rows - 1).checked_mul(ld) {
        Some(x) => match x.checked_add(width) {
            Some(end) => end <= len,
            None => false,
        },
        None => false,
    }
}

/// A read-only strided matrix view (see the module docs for its invariant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    ld: usize,
}

impl<'a, T: Element> MatRef<'a, T> {
    /// The empty view.
    pub const EMPTY: Self = Self {
        data: &[],
        rows: 0,
        cols: 0,
        ld: 0,
    };

    /// A view of `rows x cols` elements of `data`, rows `ld` apart; `None` when
    /// `cols > ld` or `data` does not hold every element the shape addresses.
    pub const fn new(data: &'a [T], rows: usize, cols: usize, ld: usize) -> Option<Self> {
        if cols > ld || !strided_covers(rows, cols, ld, data.len()) {
            return None;
        }
        Some(Self {
            data,
            rows,
            cols,
            ld,
        })
    }

    /// `data` as `rows` contiguous rows of `cols` (`None` unless it holds them).
    pub const fn contiguous(data: &'a [T], rows: usize, cols: usize) -> Option<Self> {
        Self::new(data, rows, cols, cols)
    }

    /// Rows.
    pub const fn rows(&self) -> usize {
        self.rows
    }

    /// Elements per row.
    pub const fn cols(&self) -> usize {
        self.cols
    }

    /// Elements from one row's start to the next's.
    pub const fn ld(&self) -> usize {
        self.ld
    }

    /// Whether the view has no elements.
    pub const fn is_empty(&self) -> bool {
        self.rows == 0 || self.cols == 0
    }

    /// The whole underlying slice (at least `(rows - 1) * ld + cols` elements when the view
    /// is not empty): what SIMD kernels take their pointer from.
    pub const fn data(&self) -> &'a [T] {
        self.data
    }

    /// Row `r` (`cols` elements); empty past the last row.
    pub fn row(&self, r: usize) -> &'a [T] {
        if r >= self.rows {
            return &[];
        }
        self.data
            .get(r * self.ld..r * self.ld + self.cols)
            .unwrap_or_default()
    }

    /// Rows `start..start + count` (`None` past the end).
    pub fn rows_range(&self, start: usize, count: usize) -> Option<Self> {
        if start.checked_add(count)? > self.rows {
            return None;
        }
        let data = if count == 0 {
            &[]
        } else {
            self.data.get(start * self.ld..)?
        };
        Self::new(data, count, self.cols, self.ld)
    }

    /// Columns `start..start + width` of every row (an attention head's slice).
    pub fn cols_range(&self, start: usize, width: usize) -> Option<Self> {
        if start.checked_add(width)? > self.cols {
            return None;
        }
        let data = if self.rows == 0 || width == 0 {
            &[]
        } else {
            self.data.get(start..)?
        };
        Self::new(data, self.rows, width, self.ld)
    }

    /// Element `(r, c)`, or the default past the shape.
    pub fn at(&self, r: usize, c: usize) -> T {
        self.row(r).get(c).copied().unwrap_or_default()
    }
}

/// A mutable strided matrix view (the same invariant as [`MatRef`]).
#[derive(Debug, PartialEq, Eq)]
pub struct MatMut<'a, T> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
    ld: usize,
}

impl<'a, T: Element> MatMut<'a, T> {
    /// A view of `rows x cols` elements of `data`, rows `ld` apart (see [`MatRef::new`]).
    pub fn new(data: &'a mut [T], rows: usize, cols: usize, ld: usize) -> Option<Self> {
        if cols > ld || !strided_covers(rows, cols, ld, data.len()) {
            return None;
        }
        Some(Self {
            data,
            rows,
            cols,
            ld,
        })
    }

    /// `data` as `rows` contiguous rows of `cols`.
    pub fn contiguous(data: &'a mut [T], rows: usize, cols: usize) -> Option<Self> {
        Self::new(data, rows, cols, cols)
    }

    /// Rows.
    pub const fn rows(&self) -> usize {
        self.rows
    }

    /// Elements per row.
    pub const fn cols(&self) -> usize {
        self.cols
    }

    /// Elements from one row's start to the next's.
    pub const fn ld(&self) -> usize {
        self.ld
    }

    /// The whole underlying slice (see [`MatRef::data`]).
    pub fn data_mut(&mut self) -> &mut [T] {
        self.data
    }

    /// Row `r` (`cols` elements); empty past the last row.
    pub fn row_mut(&mut self, r: usize) -> &mut [T] {
        if r >= self.rows {
            return &mut [];
        }
        let (ld, cols) = (self.ld, self.cols);
        self.data.get_mut(r * ld..r * ld + cols).unwrap_or_default()
    }

    /// A shorter-lived view of the same elements.
    pub fn reborrow(&mut self) -> MatMut<'_, T> {
        MatMut {
            data: self.data,
            rows: self.rows,
            cols: self.cols,
            ld: self.ld,
        }
    }

    /// A read-only view of the same elements.
    pub fn view(&self) -> MatRef<'_, T> {
        MatRef {
            data: self.data,
            rows: self.rows,
            cols: self.cols,
            ld: self.ld,
        }
    }
}

/// The left operand of a product: activations, one row per token (or query).
///
/// Element values and the accumulator bounds each kind promises (every product is
/// accumulated in i32, and the caller keeps the true sums in range):
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lhs<'a> {
    /// Symmetric int8 in [-127, 127] (never -128): with int8 weights, every depth below
    /// 133,000 is exact.
    I8(MatRef<'a, i8>),
    /// Unsigned int8 with a zero point: element `q` stands for `q - zero_point`. Backends
    /// may compute `sum q w - zero_point * sum w` with the per-channel `sum w` precomputed
    /// when the weights are prepared.
    U8 {
        /// The stored values.
        values: MatRef<'a, u8>,
        /// Subtracted from every element.
        zero_point: u8,
    },
    /// int16 activations with int8 weights (W8A16). The caller keeps
    /// `max |x| * 127 * depth < 2^31`.
    I16(MatRef<'a, i16>),
    /// Unsigned 16-bit values (attention probabilities, 65,535 standing for 1). The caller
    /// keeps every row's sum times 127 below 2^31.
    U16(MatRef<'a, u16>),
}

impl<'a> Lhs<'a> {
    /// Rows (tokens).
    pub const fn rows(&self) -> usize {
        match self {
            Self::I8(m) => m.rows(),
            Self::U8 { values, .. } => values.rows(),
            Self::I16(m) => m.rows(),
            Self::U16(m) => m.rows(),
        }
    }

    /// Depth of the product (elements per row).
    pub const fn depth(&self) -> usize {
        match self {
            Self::I8(m) => m.cols(),
            Self::U8 { values, .. } => values.cols(),
            Self::I16(m) => m.cols(),
            Self::U16(m) => m.cols(),
        }
    }

    /// Element `(r, k)` as the value it stands for.
    pub fn value(&self, r: usize, k: usize) -> i32 {
        match self {
            Self::I8(m) => i32::from(m.at(r, k)),
            Self::U8 { values, zero_point } => i32::from(values.at(r, k)) - i32::from(*zero_point),
            Self::I16(m) => i32::from(m.at(r, k)),
            Self::U16(m) => i32::from(m.at(r, k)),
        }
    }
}

/// The right operand of a product: int8 weights (or attention keys and values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rhs<'a> {
    /// One row of `depth` elements per output channel, `b[c][k]` (a checkpoint's
    /// `[out, in]` weights, attention keys).
    Channels(MatRef<'a, i8>),
    /// One row of `channels` elements per step of depth, `b[k][c]` (attention values,
    /// `[keys, width]`).
    Depths(MatRef<'a, i8>),
    /// [`Rhs::Channels`] weights with the copy the backend prepared from them (see
    /// [`crate::Kernels::prepare`]).
    Prepared(Prepared<'a>),
    /// [`Rhs::Depths`] values (its `raw` is `[depth, channels]`) with the copy the backend
    /// prepared from them (see [`crate::Kernels::prepare_depths`]).
    PreparedDepths(Prepared<'a>),
}

impl<'a> Rhs<'a> {
    /// Output channels (`n`).
    pub const fn channels(&self) -> usize {
        match self {
            Self::Channels(m) => m.rows(),
            Self::Depths(m) | Self::PreparedDepths(Prepared { raw: m, .. }) => m.cols(),
            Self::Prepared(p) => p.raw.rows(),
        }
    }

    /// Depth of the product.
    pub const fn depth(&self) -> usize {
        match self {
            Self::Channels(m) => m.cols(),
            Self::Depths(m) | Self::PreparedDepths(Prepared { raw: m, .. }) => m.rows(),
            Self::Prepared(p) => p.raw.cols(),
        }
    }

    /// Element `(c, k)`: channel `c`, depth `k`.
    pub fn at(&self, c: usize, k: usize) -> i8 {
        match self {
            Self::Channels(m) => m.at(c, k),
            Self::Depths(m) | Self::PreparedDepths(Prepared { raw: m, .. }) => m.at(k, c),
            Self::Prepared(p) => p.raw.at(c, k),
        }
    }
}

/// Weights in their blob layout (`[channels, depth]`) together with a backend's prepared
/// copy of them. The prepared bytes are opaque to the runtime: only the backend that wrote
/// them reads them, after checking their length; any other backend uses `raw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared<'a> {
    raw: MatRef<'a, i8>,
    bytes: &'a [u8],
}

impl<'a> Prepared<'a> {
    /// Pairs weights with prepared bytes (whatever their content: a backend validates the
    /// length it needs before reading them).
    pub const fn new(raw: MatRef<'a, i8>, bytes: &'a [u8]) -> Self {
        Self { raw, bytes }
    }

    /// The weights as stored in the blob.
    pub const fn raw(&self) -> MatRef<'a, i8> {
        self.raw
    }

    /// The backend's copy.
    pub const fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// One checked matrix product `out[r][c] = sum_k a(r, k) * b(c, k)` over `k < depth`, i32
/// accumulators (modulo 2^32; the operand kinds' bounds keep true sums in range).
#[derive(Debug, PartialEq, Eq)]
pub struct Gemm<'a, 'o> {
    a: Lhs<'a>,
    b: Rhs<'a>,
    out: MatMut<'o, i32>,
}

impl<'a, 'o> Gemm<'a, 'o> {
    /// The product of `a` and `b` into `out`; `None` unless `a.depth() == b.depth()`,
    /// `a.rows() == out.rows()` and `b.channels() == out.cols()`.
    pub fn new(a: Lhs<'a>, b: Rhs<'a>, out: MatMut<'o, i32>) -> Option<Self> {
        (a.depth() == b.depth() && a.rows() == out.rows() && b.channels() == out.cols())
            .then_some(Self { a, b, out })
    }

    /// The left operand.
    pub const fn a(&self) -> &Lhs<'a> {
        &self.a
    }

    /// The right operand.
    pub const fn b(&self) -> &Rhs<'a> {
        &self.b
    }

    /// Rows (`m`).
    pub const fn rows(&self) -> usize {
        self.out.rows()
    }

    /// Output channels (`n`).
    pub const fn channels(&self) -> usize {
        self.out.cols()
    }

    /// Depth (`k`).
    pub const fn depth(&self) -> usize {
        self.a.depth()
    }

    /// The operands and the output, for a kernel to run.
    pub fn parts(self) -> (Lhs<'a>, Rhs<'a>, MatMut<'o, i32>) {
        (self.a, self.b, self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_check_the_shape() {
        let data = [0i8; 10];
        assert!(MatRef::new(&data, 3, 4, 3).is_none(), "cols > ld");
        assert!(MatRef::new(&data, 3, 4, 4).is_none(), "needs 12");
        assert!(MatRef::new(&data, 3, 2, 4).is_some(), "needs 10");
        assert!(MatRef::new(&data, usize::MAX, 1, 2).is_none(), "overflow");
        assert!(MatRef::new(&data[..0], 0, 5, 5).is_some(), "empty");
        let m = MatRef::new(&data, 3, 2, 4).unwrap();
        assert_eq!(m.row(2).len(), 2);
        assert!(m.row(3).is_empty());
        assert_eq!(m.cols_range(1, 1).unwrap().row(2).len(), 1);
        assert!(m.cols_range(1, 2).is_none());
        assert!(m.rows_range(1, 3).is_none());
        assert_eq!(m.rows_range(3, 0).unwrap().rows(), 0);
    }

    #[test]
    fn gemm_checks_agreement() {
        let a = [1i8; 6];
        let b = [1i8; 12];
        let mut o = [0i32; 8];
        let lhs = Lhs::I8(MatRef::contiguous(&a, 2, 3).unwrap());
        let rhs = Rhs::Channels(MatRef::contiguous(&b, 4, 3).unwrap());
        assert!(Gemm::new(lhs, rhs, MatMut::contiguous(&mut o, 2, 4).unwrap()).is_some());
        let rhs = Rhs::Depths(MatRef::contiguous(&b, 3, 4).unwrap());
        assert!(Gemm::new(lhs, rhs, MatMut::contiguous(&mut o, 2, 4).unwrap()).is_some());
        let rhs = Rhs::Depths(MatRef::contiguous(&b, 4, 3).unwrap());
        assert!(Gemm::new(lhs, rhs, MatMut::contiguous(&mut o, 2, 4).unwrap()).is_none());
    }
}
