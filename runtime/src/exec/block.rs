//! Blocks of tiles and the math on them. A block of `rows x cols` tiles is kept as one row-major
//! f32 matrix of `rows*32 x cols*32` elements (the Dst register is f32); stores into circular
//! buffers and DRAM round it to bf16.

use half::bf16;

use crate::tensor::TILE;

/// Elements per tile.
pub(crate) const TILE_ELEMS: usize = TILE * TILE;

/// A block of `rows x cols` tiles.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Block {
    /// Rows in tiles.
    pub rows: usize,
    /// Columns in tiles.
    pub cols: usize,
    /// Row-major elements, `rows*32` by `cols*32`.
    pub data: Vec<f32>,
}

/// Rounds an f32 to the nearest bf16 value (ties to even), kept as f32.
#[inline]
pub(crate) fn round_bf16(v: f32) -> f32 {
    bf16::from_f32(v).to_f32()
}

pub(crate) use crate::ttl::ops::UnaryFn;

/// The executor's meaning of each TT-Lang unary function.
impl UnaryFn {
    #[inline]
    fn apply(self, x: f32) -> f32 {
        match self {
            UnaryFn::Exp => x.exp(),
            UnaryFn::Log => x.ln(),
            UnaryFn::Sqrt => x.sqrt(),
            UnaryFn::Rsqrt => 1.0 / x.sqrt(),
            UnaryFn::Recip => 1.0 / x,
            UnaryFn::Tanh => x.tanh(),
            UnaryFn::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            UnaryFn::Relu => x.max(0.0),
            UnaryFn::Abs => x.abs(),
            UnaryFn::Neg => -x,
            UnaryFn::Floor => x.floor(),
        }
    }
}

/// Elementwise binary functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinFn {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

impl BinFn {
    /// The operator or function as written in TT-Lang.
    pub fn symbol(self) -> &'static str {
        match self {
            BinFn::Add => "+",
            BinFn::Sub => "-",
            BinFn::Mul => "*",
            BinFn::Div => "/",
            BinFn::Max => "ttl.math.max",
            BinFn::Min => "ttl.math.min",
        }
    }
}

/// Which reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReduceKind {
    Sum,
    Max,
}

/// Reduce/broadcast dimensions as TT-Lang spells them: `[0]` keeps rows (per-row results in
/// column 0), `[1]` keeps columns (per-column results in row 0), `[0, 1]` a scalar at `[0, 0]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dims {
    Rows,
    Cols,
    Scalar,
}

impl Dims {
    /// Parses a `dims=[...]` list.
    pub fn from_list(d: &[i64]) -> Option<Dims> {
        match d {
            [0] => Some(Dims::Rows),
            [1] => Some(Dims::Cols),
            [0, 1] | [1, 0] => Some(Dims::Scalar),
            _ => None,
        }
    }
}

impl Block {
    /// A hollow block: its shape without elements. The timing pass (see
    /// [`super::kernel`]) runs on hollow blocks, so every block operation below passes a hollow
    /// block through as a hollow result of the right shape without touching elements.
    pub fn hollow(rows: usize, cols: usize) -> Block {
        Block {
            rows,
            cols,
            data: Vec::new(),
        }
    }

    /// Whether this block is hollow (shape only, see [`Block::hollow`]).
    pub fn is_hollow(&self) -> bool {
        self.data.is_empty()
    }

    /// A zero block.
    pub fn zeros(rows: usize, cols: usize) -> Block {
        Block {
            rows,
            cols,
            data: vec![0.0; rows * cols * TILE_ELEMS],
        }
    }

    /// Tiles in the block.
    pub fn tiles(&self) -> usize {
        self.rows * self.cols
    }

    /// Element columns.
    pub fn width(&self) -> usize {
        self.cols * TILE
    }

    /// Element rows.
    pub fn height(&self) -> usize {
        self.rows * TILE
    }

    /// Rounds every element to bf16 in place.
    pub fn round_to_bf16(&mut self) {
        for v in &mut self.data {
            *v = round_bf16(*v);
        }
    }

    /// Applies `f` to every element in place.
    pub fn map_in_place(&mut self, f: UnaryFn) {
        for v in &mut self.data {
            *v = f.apply(*v);
        }
    }

    /// Raises every element to the integer power `n` in place.
    pub fn powi_in_place(&mut self, n: i32) {
        for v in &mut self.data {
            *v = v.powi(n);
        }
    }

    /// Per element, `a` where `cond` is nonzero, else `b` (`ttl.where`); shapes must already
    /// match.
    pub fn select(cond: &Block, a: &Block, b: &Block) -> Block {
        if cond.is_hollow() || a.is_hollow() || b.is_hollow() {
            return Block::hollow(cond.rows, cond.cols);
        }
        let data = cond
            .data
            .iter()
            .zip(a.data.iter().zip(&b.data))
            .map(|(&c, (&x, &y))| if c != 0.0 { x } else { y })
            .collect();
        Block {
            rows: cond.rows,
            cols: cond.cols,
            data,
        }
    }

    /// `self op other` elementwise into `self`; shapes must already match (a hollow `self`
    /// stays hollow).
    pub fn zip_in_place(&mut self, other: &Block, f: BinFn) {
        let it = self.data.iter_mut().zip(other.data.iter());
        match f {
            BinFn::Add => it.for_each(|(a, b)| *a += b),
            BinFn::Sub => it.for_each(|(a, b)| *a -= b),
            BinFn::Mul => it.for_each(|(a, b)| *a *= b),
            BinFn::Div => it.for_each(|(a, b)| *a /= b),
            BinFn::Max => it.for_each(|(a, b)| *a = a.max(*b)),
            BinFn::Min => it.for_each(|(a, b)| *a = a.min(*b)),
        }
    }

    /// `other op self` elementwise into `self` (for when only the right operand is owned).
    pub fn zip_in_place_rev(&mut self, other: &Block, f: BinFn) {
        let it = self.data.iter_mut().zip(other.data.iter());
        match f {
            BinFn::Add => it.for_each(|(a, b)| *a += b),
            BinFn::Sub => it.for_each(|(a, b)| *a = b - *a),
            BinFn::Mul => it.for_each(|(a, b)| *a *= b),
            BinFn::Div => it.for_each(|(a, b)| *a = b / *a),
            BinFn::Max => it.for_each(|(a, b)| *a = a.max(*b)),
            BinFn::Min => it.for_each(|(a, b)| *a = a.min(*b)),
        }
    }

    /// `c + a @ b` for blocks of MxK, KxN and MxN tiles; shapes must already match.
    pub fn matmul_acc(a: &Block, b: &Block, mut c: Block) -> Block {
        if a.is_hollow() || b.is_hollow() || c.is_hollow() {
            return Block::hollow(c.rows, c.cols);
        }
        let (m, k, n) = (a.height(), a.width(), b.width());
        // SAFETY: the three slices hold m*k, k*n and m*n elements with the row and column
        // strides given (checked by the caller's shape validation), and `c` does not alias.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.data.as_ptr(),
                k as isize,
                1,
                b.data.as_ptr(),
                n as isize,
                1,
                1.0,
                c.data.as_mut_ptr(),
                n as isize,
                1,
            );
        }
        c
    }

    /// The reduction of the whole block, laid out per TT-Lang and multiplied elementwise by the
    /// scaler tile (one 32x32 tile) in every output tile.
    pub fn reduce(&self, kind: ReduceKind, dims: Dims, scaler: &Block) -> Block {
        if self.is_hollow() || scaler.is_hollow() {
            return match dims {
                Dims::Rows => Block::hollow(self.rows, 1),
                Dims::Cols => Block::hollow(1, self.cols),
                Dims::Scalar => Block::hollow(1, 1),
            };
        }
        let (h, w) = (self.height(), self.width());
        let fold = |acc: f32, v: f32| match kind {
            ReduceKind::Sum => acc + v,
            ReduceKind::Max => acc.max(v),
        };
        let init = match kind {
            ReduceKind::Sum => 0.0,
            ReduceKind::Max => f32::NEG_INFINITY,
        };
        let mut out = match dims {
            Dims::Rows => {
                let mut out = Block::zeros(self.rows, 1);
                for i in 0..h {
                    let row = &self.data[i * w..(i + 1) * w];
                    out.data[i * TILE] = row.iter().copied().fold(init, fold);
                }
                out
            }
            Dims::Cols => {
                let mut out = Block::zeros(1, self.cols);
                let mut acc = vec![init; w];
                for i in 0..h {
                    for (a, &v) in acc.iter_mut().zip(&self.data[i * w..(i + 1) * w]) {
                        *a = fold(*a, v);
                    }
                }
                out.data[..w].copy_from_slice(&acc);
                out
            }
            Dims::Scalar => {
                let mut out = Block::zeros(1, 1);
                out.data[0] = self.data.iter().copied().fold(init, fold);
                out
            }
        };
        out.scale_tiles(scaler);
        out
    }

    /// Multiplies every tile elementwise by the 32x32 tile `t`.
    fn scale_tiles(&mut self, t: &Block) {
        let w = self.width();
        for i in 0..self.height() {
            let trow = &t.data[(i % TILE) * TILE..(i % TILE + 1) * TILE];
            for (j, v) in self.data[i * w..(i + 1) * w].iter_mut().enumerate() {
                *v *= trow[j % TILE];
            }
        }
    }

    /// Broadcast into a block of `rows x cols` tiles: `Cols` copies column 0 across columns
    /// (TT-Lang `dims=[1]`), `Rows` copies row 0 down the rows (`dims=[0]`), `Scalar` copies
    /// element `[0, 0]` everywhere. Shapes must already be validated.
    pub fn broadcast(&self, dims: Dims, rows: usize, cols: usize) -> Block {
        if self.is_hollow() {
            return Block::hollow(rows, cols);
        }
        let mut out = Block::zeros(rows, cols);
        let (h, w) = (out.height(), out.width());
        let sw = self.width();
        match dims {
            Dims::Cols => {
                for i in 0..h {
                    let v = self.data[i * sw];
                    out.data[i * w..(i + 1) * w].fill(v);
                }
            }
            Dims::Rows => {
                for i in 0..h {
                    out.data[i * w..(i + 1) * w].copy_from_slice(&self.data[..w]);
                }
            }
            Dims::Scalar => out.data.fill(self.data[0]),
        }
        out
    }

    /// The transpose: `rows x cols` tiles become `cols x rows`, each tile transposed.
    pub fn transpose(&self) -> Block {
        if self.is_hollow() {
            return Block::hollow(self.cols, self.rows);
        }
        let (h, w) = (self.height(), self.width());
        let mut out = Block::zeros(self.cols, self.rows);
        for i in 0..h {
            for j in 0..w {
                out.data[j * h + i] = self.data[i * w + j];
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(rows: usize, cols: usize) -> Block {
        let mut b = Block::zeros(rows, cols);
        for (i, v) in b.data.iter_mut().enumerate() {
            *v = (i % 7) as f32 - 3.0;
        }
        b
    }

    /// Every block operation maps hollow operands to a hollow result of the shape the same
    /// operation gives on full operands (the timing pass relies on it).
    #[test]
    fn hollow_blocks_keep_the_shapes_of_full_ones() {
        let shape = |b: &Block| (b.rows, b.cols, b.is_hollow());
        let (a, b, c, s) = (full(2, 3), full(3, 4), full(2, 4), full(1, 1));
        let h = |x: &Block| Block::hollow(x.rows, x.cols);
        let pairs = [
            (
                Block::matmul_acc(&a, &b, c.clone()),
                Block::matmul_acc(&h(&a), &h(&b), h(&c)),
            ),
            (
                Block::select(&c, &c, &c),
                Block::select(&h(&c), &h(&c), &h(&c)),
            ),
            (a.transpose(), h(&a).transpose()),
            (
                s.broadcast(Dims::Scalar, 2, 3),
                h(&s).broadcast(Dims::Scalar, 2, 3),
            ),
            (
                a.reduce(ReduceKind::Sum, Dims::Rows, &s),
                h(&a).reduce(ReduceKind::Sum, Dims::Rows, &h(&s)),
            ),
            (
                a.reduce(ReduceKind::Max, Dims::Cols, &s),
                h(&a).reduce(ReduceKind::Max, Dims::Cols, &h(&s)),
            ),
            (
                a.reduce(ReduceKind::Sum, Dims::Scalar, &s),
                h(&a).reduce(ReduceKind::Sum, Dims::Scalar, &h(&s)),
            ),
        ];
        for (f, e) in &pairs {
            assert!(!f.is_hollow());
            assert_eq!(shape(e), (f.rows, f.cols, true));
        }
        let mut e = h(&c);
        e.zip_in_place(&h(&c), BinFn::Add);
        e.map_in_place(UnaryFn::Exp);
        e.round_to_bf16();
        assert_eq!(shape(&e), (2, 4, true));
    }
}
