//! When a convolution's im2col matrix can be gathered with whole-tile reads.
//!
//! In the pixel-major layout (`[n * h * w, c]`, one row per pixel, see [`Op::Im2Col`]), a
//! stride-1 convolution whose output keeps the input's size ("same" padding) finds, for window
//! offset `(ky, kx)`, its input pixel `shift = (ky * dh - top) * w + (kx * dw - left)` rows away
//! from the output pixel, or nothing where the window leaves the image. A block of `m` output
//! row tiles of that offset's columns is then `m + 1` consecutive input row tiles times a
//! constant 0/1 selection matrix (the [`TileGather::table`]): a matmul kernel's reader reads the
//! tiles, and its compute thread selects rows with one matmul, exactly, since every output is
//! one input times one.

use super::Op;

/// Rows of a tile.
const TILE: usize = 32;

/// Tiles of a convolution's weights `[o, c, kh, kw]` as the `[kh * kw * c, o]` matrix its
/// im2col multiplies (the layout TTNN prepares convolution weights in, once, before it runs
/// the convolution).
pub fn weight_matrix_tiles(weights: &[usize]) -> Option<usize> {
    let &[o, c, kh, kw] = weights else {
        return None;
    };
    Some((kh * kw * c).div_ceil(TILE) * o.div_ceil(TILE))
}

/// An `Im2Col` that a matmul kernel gathers with whole-tile reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileGather {
    /// Images, height and width.
    pub image: [usize; 3],
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Channels, a multiple of 32.
    pub channels: usize,
    /// The row shift of each window offset, in `ky * kw + kx` order.
    pub shifts: Vec<isize>,
    /// Dilation (h, w).
    dilation: [usize; 2],
    /// Padding (top, left).
    origin: [usize; 2],
}

impl TileGather {
    /// The gather of `op` over `channels` input channels, when `op` is an `Im2Col` with stride
    /// 1 and "same" padding, whole tiles of channels and at least two row tiles of pixels.
    pub fn of(op: &Op, channels: usize) -> Option<TileGather> {
        let Op::Im2Col {
            image,
            kernel,
            stride,
            pads,
            dilation,
        } = op
        else {
            return None;
        };
        let [n, h, w] = *image;
        let pixels = n * h * w;
        let same = (0..2).all(|i| pads[i] + pads[i + 2] == dilation[i] * (kernel[i] - 1));
        let tiled = channels.is_multiple_of(TILE) && channels > 0 && pixels > TILE;
        if *stride != [1, 1] || !same || !tiled || kernel.contains(&0) {
            return None;
        }
        let mut shifts = Vec::with_capacity(kernel[0] * kernel[1]);
        for ky in 0..kernel[0] {
            for kx in 0..kernel[1] {
                let dy = (ky * dilation[0]) as isize - pads[0] as isize;
                let dx = (kx * dilation[1]) as isize - pads[1] as isize;
                shifts.push(dy * w as isize + dx);
            }
        }
        Some(TileGather {
            image: *image,
            kernel: *kernel,
            channels,
            shifts,
            dilation: *dilation,
            origin: [pads[0], pads[1]],
        })
    }

    /// `[kw, row_step, col_step, origin]`, with which offset `o`'s shift is
    /// `(o / kw) * row_step + (o % kw) * col_step - origin`: the reader computes it so.
    pub fn shift_terms(&self) -> [usize; 4] {
        let w = self.image[2];
        [
            self.kernel[1],
            self.dilation[0] * w,
            self.dilation[1],
            self.origin[0] * w + self.origin[1],
        ]
    }

    /// Pixels of all images: the pixel matrix's real rows.
    fn pixels(&self) -> usize {
        self.image.iter().product()
    }

    /// Row tiles of the pixel matrix (the last one padded when the pixels do not fill it).
    pub fn row_tiles(&self) -> usize {
        self.pixels().div_ceil(TILE)
    }

    /// Window offsets (`kh * kw`).
    pub fn offsets(&self) -> usize {
        self.shifts.len()
    }

    /// Whether blocks of `rows` row tiles can be gathered: the `rows + 1` input row tiles each
    /// reads fit in the matrix, and the blocks cover it.
    pub fn fits_block(&self, rows: usize) -> bool {
        rows > 0 && self.row_tiles() > rows && self.row_tiles().is_multiple_of(rows)
    }

    /// The first of the `rows + 1` input row tiles that the block of `rows` output row tiles
    /// from `t` on reads for offset `o`: the tile holding row `32 t + shift`, kept inside the
    /// matrix (the table masks rows outside the image).
    pub fn first_tile(&self, t: usize, o: usize, rows: usize) -> usize {
        let row = (t * TILE) as isize + self.shifts[o];
        let last = (self.row_tiles() - rows - 1) as isize;
        row.div_euclid(TILE as isize).clamp(0, last) as usize
    }

    /// The input pixel under offset `o` of output pixel `p`, when it lies inside the image.
    fn source(&self, p: usize, o: usize) -> Option<usize> {
        let [_, h, w] = self.image;
        let (y, x) = ((p / w) % h, p % w);
        let (ky, kx) = (o / self.kernel[1], o % self.kernel[1]);
        let iy = (y + ky * self.dilation[0]).checked_sub(self.origin[0])?;
        let ix = (x + kx * self.dilation[1]).checked_sub(self.origin[1])?;
        (iy < h && ix < w).then(|| (p as isize + self.shifts[o]) as usize)
    }

    /// Columns of the selection table for blocks of `rows` row tiles.
    pub fn table_cols(&self, rows: usize) -> usize {
        self.offsets() * (rows + 1) * TILE
    }

    /// The selection table for blocks of `rows` row tiles ([`TileGather::fits_block`]),
    /// row-major `[row tiles * 32, offsets * 32 (rows + 1)]`: row `p`, columns
    /// `32 (rows + 1) o ..` hold a one where output pixel `p`'s offset-`o` input sits among the
    /// `rows + 1` tiles its block reads from [`TileGather::first_tile`] on, and zeros where the
    /// window leaves the image (and in the padding rows past the last pixel, so that no padding
    /// row of the pixel matrix is ever selected).
    pub fn table(&self, rows: usize) -> Vec<f32> {
        let padded = self.row_tiles() * TILE;
        let (span, width) = ((rows + 1) * TILE, self.table_cols(rows));
        let mut table = vec![0.0f32; padded * width];
        for p in 0..self.pixels() {
            let block = p / TILE / rows * rows;
            for o in 0..self.offsets() {
                if let Some(src) = self.source(p, o) {
                    let j = src - self.first_tile(block, o, rows) * TILE;
                    debug_assert!(j < span, "pixel {p} offset {o} is outside its tiles");
                    table[p * width + o * span + j] = 1.0;
                }
            }
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn im2col(image: [usize; 3], kernel: [usize; 2], pads: [usize; 4]) -> Op {
        Op::Im2Col {
            image,
            kernel,
            stride: [1, 1],
            pads,
            dilation: [1, 1],
        }
    }

    /// Checks that `g`'s table times the tiles a block reads is im2col of `images` images of
    /// `h x w` pixels under 3x3 windows with padding 1, for blocks of each of `blocks` row
    /// tiles, with the pixel matrix's padding rows (if any) holding NaN, which no table entry
    /// may select.
    fn selects_im2col(g: &TileGather, [images, h, w]: [usize; 3], blocks: &[usize]) {
        let pixels = images * h * w;
        let padded = g.row_tiles() * 32;
        let x: Vec<f32> = (0..padded)
            .map(|p| if p < pixels { p as f32 + 1.0 } else { f32::NAN })
            .collect();
        for &rows in blocks {
            assert!(g.fits_block(rows));
            let table = g.table(rows);
            let (span, width) = ((rows + 1) * 32, g.table_cols(rows));
            for p in 0..pixels {
                let (b, y, xx) = (p / (h * w), (p / w) % h, p % w);
                for o in 0..9 {
                    let first = g.first_tile(p / 32 / rows * rows, o, rows) * 32;
                    let got: f32 = (0..span)
                        .filter(|&j| table[p * width + o * span + j] != 0.0)
                        .map(|j| table[p * width + o * span + j] * x[first + j])
                        .sum();
                    let (iy, ix) = (
                        y as isize + (o / 3) as isize - 1,
                        xx as isize + (o % 3) as isize - 1,
                    );
                    let inside = (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix);
                    let want = if inside {
                        x[b * h * w + iy as usize * w + ix as usize]
                    } else {
                        0.0
                    };
                    assert_eq!(got, want, "rows {rows} pixel {p} offset {o}");
                }
            }
        }
    }

    #[test]
    fn the_table_selects_what_im2col_gathers() {
        // 2 images of 6x16 pixels, 3x3 windows, for blocks of 1, 2 and 3 row tiles.
        let g = TileGather::of(&im2col([2, 6, 16], [3, 3], [1; 4]), 32).unwrap();
        selects_im2col(&g, [2, 6, 16], &[1, 2, 3]);
        assert!(!g.fits_block(4), "6 row tiles are not blocks of 4");
        assert!(
            !g.fits_block(6),
            "a block needs one more tile than it has rows"
        );
    }

    #[test]
    fn pixels_that_do_not_fill_the_last_tile_gather_too() {
        // 14x14 and 7x7 images (196 and 49 pixels): the last row tile is part padding.
        let g = TileGather::of(&im2col([1, 14, 14], [3, 3], [1; 4]), 32).unwrap();
        assert_eq!(g.row_tiles(), 7);
        selects_im2col(&g, [1, 14, 14], &[1]);
        let g = TileGather::of(&im2col([1, 7, 7], [3, 3], [1; 4]), 64).unwrap();
        selects_im2col(&g, [1, 7, 7], &[1]);
    }

    #[test]
    fn strided_or_shrinking_or_single_tile_gathers_are_not_tile_gathers() {
        let strided = Op::Im2Col {
            image: [1, 16, 16],
            kernel: [3, 3],
            stride: [2, 2],
            pads: [1; 4],
            dilation: [1, 1],
        };
        assert!(TileGather::of(&strided, 32).is_none());
        assert!(TileGather::of(&im2col([1, 16, 16], [3, 3], [0; 4]), 32).is_none());
        assert!(TileGather::of(&im2col([1, 16, 16], [3, 3], [1; 4]), 48).is_none());
        assert!(TileGather::of(&im2col([1, 4, 8], [3, 3], [1; 4]), 32).is_none());
        assert!(TileGather::of(&im2col([1, 4, 7], [3, 3], [1; 4]), 32).is_none());
        assert!(TileGather::of(&im2col([1, 16, 16], [1, 1], [0; 4]), 64).is_some());
    }

    #[test]
    fn shift_terms_give_every_offset_s_shift() {
        let op = Op::Im2Col {
            image: [1, 8, 16],
            kernel: [3, 5],
            stride: [1, 1],
            pads: [2, 4, 2, 4],
            dilation: [2, 2],
        };
        let g = TileGather::of(&op, 32).unwrap();
        let [kw, row, col, origin] = g.shift_terms();
        for (o, &s) in g.shifts.iter().enumerate() {
            let from_terms = ((o / kw) * row + (o % kw) * col) as isize - origin as isize;
            assert_eq!(from_terms, s, "offset {o}");
        }
    }
}
