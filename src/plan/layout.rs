//! How graph tensors sit on the device: flattened to 2-D (rows = product of the leading
//! dimensions, columns = the last), tilized, with size-1 dimensions padded to one tile the way
//! TTNN pads them (a row vector occupies row 0 of a tile row, a column vector column 0 of a tile
//! column, a scalar element `[0, 0]` of one tile) and any other dimension padded up to the next
//! multiple of 32 (`ttnn.pad` before, `ttnn.slice` after). Bindings fill the padding with zeros;
//! kernels never read results back from it, and reductions over a padded last axis mask it.

use serde::Serialize;

use ttfuse_runtime::tensor::TILE;

/// The device layout of one graph tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Layout {
    /// A matrix: stored with each dimension padded up to a multiple of 32.
    Full,
    /// One row (`[C]`, `[1, C]`, ...): stored in row 0 of a 32-row tensor.
    Row,
    /// One column (`[..., R, 1]`): stored in column 0 of a 32-column tensor.
    Col,
    /// One element: stored at `[0, 0]` of a 32x32 tile.
    Scalar,
}

/// The 2-D view `(rows, cols)` of a graph shape; a rank-0 shape is `(1, 1)`.
pub fn flat2d(shape: &[usize]) -> (usize, usize) {
    match shape.split_last() {
        None => (1, 1),
        Some((&last, lead)) => (lead.iter().product(), last),
    }
}

/// `n` rounded up to a whole number of tiles.
pub fn padded(n: usize) -> usize {
    n.div_ceil(TILE) * TILE
}

/// Whether `n` is not a whole number of tiles (the device holds it padded).
pub fn is_padded(n: usize) -> bool {
    !n.is_multiple_of(TILE)
}

/// The layout of a tensor with this shape, or `None` when it has no elements.
pub fn layout_of(shape: &[usize]) -> Option<Layout> {
    match flat2d(shape) {
        (0, _) | (_, 0) => None,
        (1, 1) => Some(Layout::Scalar),
        (1, _) => Some(Layout::Row),
        (_, 1) => Some(Layout::Col),
        _ => Some(Layout::Full),
    }
}

/// Rows and columns of the device tensor that holds a graph tensor of this shape and layout.
pub fn device_dims(shape: &[usize], layout: Layout) -> (usize, usize) {
    let (r, c) = flat2d(shape);
    match layout {
        Layout::Full => (padded(r), padded(c)),
        Layout::Row => (TILE, padded(c)),
        Layout::Col => (padded(r), TILE),
        Layout::Scalar => (TILE, TILE),
    }
}

/// Rows and columns in tiles of the device tensor.
pub fn tile_dims(shape: &[usize], layout: Layout) -> (usize, usize) {
    let (r, c) = device_dims(shape, layout);
    (r / TILE, c / TILE)
}

/// How an operand relates to a kernel's iteration space (both as 2-D views).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Class {
    /// The operand covers the whole space: read block by block.
    Full,
    /// One value per column (`(1, C)`): broadcast down the rows (`dims=[0]`).
    Row,
    /// One value per row (`(R, 1)`): broadcast across the columns (`dims=[1]`).
    Col,
    /// One value: broadcast everywhere (`dims=[0, 1]`).
    Scalar,
    /// The block's rows across all of another width, in tiles: a chained product's result
    /// (blocks of such kernels span whole rows).
    Wide(usize),
    /// One value per column of another width, in tiles (`(1, C)`, broadcast down the rows to
    /// [`Class::Wide`]): a bias of a chained product.
    WideRow(usize),
    /// A whole matrix of `(rows, cols)` tiles, the same for every block of a batch: a chained
    /// product's right operand.
    Matrix(usize, usize),
}

impl Class {
    /// The class of an operand with 2-D view `op` in space `space`, or `None` when NumPy
    /// broadcasting would need more than row/column/scalar replication.
    pub fn of(op: (usize, usize), space: (usize, usize)) -> Option<Class> {
        let (r, c) = op;
        let (sr, sc) = space;
        if (r, c) == (sr, sc) {
            Some(Class::Full)
        } else if (r, c) == (1, 1) {
            Some(Class::Scalar)
        } else if r == 1 && c == sc {
            Some(Class::Row)
        } else if r == sr && c == 1 {
            Some(Class::Col)
        } else {
            None
        }
    }

    /// The class of an elementwise result of operands of classes `a` and `b`.
    pub fn join(a: Class, b: Class) -> Class {
        use Class::*;
        match (a, b) {
            (Matrix(r, c), _) | (_, Matrix(r, c)) => Matrix(r, c),
            (Wide(c), _) | (_, Wide(c)) | (WideRow(c), Col) | (Col, WideRow(c)) => Wide(c),
            (WideRow(c), _) | (_, WideRow(c)) => WideRow(c),
            (Full, _) | (_, Full) | (Row, Col) | (Col, Row) => Full,
            (Row, _) | (_, Row) => Row,
            (Col, _) | (_, Col) => Col,
            (Scalar, Scalar) => Scalar,
        }
    }

    /// The block shape in tiles of a value of this class when the space is cut into blocks of
    /// `block` tiles.
    pub fn block(self, block: (usize, usize)) -> (usize, usize) {
        match self {
            Class::Full => block,
            Class::Row => (1, block.1),
            Class::Col => (block.0, 1),
            Class::Scalar => (1, 1),
            Class::Wide(cols) => (block.0, cols),
            Class::WideRow(cols) => (1, cols),
            Class::Matrix(rows, cols) => (rows, cols),
        }
    }

    /// The `dims` of the `ttl.math.broadcast` that expands this class to `target`.
    pub fn broadcast_dims(self, target: Class) -> Vec<i64> {
        match (self, target) {
            (Class::Row | Class::WideRow(_), _) => vec![0],
            (Class::Col, _) => vec![1],
            _ => vec![0, 1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_follow_tile_padding() {
        assert_eq!(layout_of(&[2, 32, 64]), Some(Layout::Full));
        assert_eq!(layout_of(&[64]), Some(Layout::Row));
        assert_eq!(layout_of(&[1, 64]), Some(Layout::Row));
        assert_eq!(layout_of(&[64, 1]), Some(Layout::Col));
        assert_eq!(layout_of(&[]), Some(Layout::Scalar));
        assert_eq!(layout_of(&[48, 64]), Some(Layout::Full));
        assert_eq!(device_dims(&[100, 50], Layout::Full), (128, 64));
        assert_eq!(device_dims(&[77], Layout::Row), (32, 96));
        assert_eq!(layout_of(&[0, 64]), None);
        assert_eq!(device_dims(&[64], Layout::Row), (32, 64));
        assert_eq!(tile_dims(&[2, 64, 1], Layout::Col), (4, 1));
    }

    #[test]
    fn classes_relate_operands_to_the_space() {
        assert_eq!(Class::of((64, 96), (64, 96)), Some(Class::Full));
        assert_eq!(Class::of((1, 96), (64, 96)), Some(Class::Row));
        assert_eq!(Class::of((64, 1), (64, 96)), Some(Class::Col));
        assert_eq!(Class::of((1, 1), (64, 96)), Some(Class::Scalar));
        assert_eq!(Class::of((32, 96), (64, 96)), None);
        assert_eq!(Class::join(Class::Row, Class::Col), Class::Full);
        assert_eq!(Class::join(Class::Col, Class::Scalar), Class::Col);
        assert_eq!(Class::Col.block((2, 4)), (2, 1));
    }
}
