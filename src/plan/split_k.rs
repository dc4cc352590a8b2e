//! Splitting K over the grid's rows ([`Partition::split_k`]). A product with few block rows
//! (128 tokens are 4 row tiles) laid out as the grid fills only as many grid rows: GPT-2's
//! MLP down-projection at 128 tokens is 32 blocks of 1x3 tiles on 8x4 of Wormhole's 8x8
//! cores, each summing all 96 tiles of K. With K in two parts on two copies of that grid, each
//! core sums 48, and the second copy's cores send their partial sums to the first's through
//! pipes: 57.10 against 33.45 us on the runtime. Kernels of several products of one A split
//! too (LLaMA's gated MLP at 128 tokens: 47.18 against 42.40 us).

use super::matmul_info::MatmulInfo;
use super::partition::{divisors, Partition};
use super::target::Target;

/// The layouts with K split of matmul `info`, laid out as `laid` (a whole kernel that fits),
/// each with its K chunk width: every number of parts whose copies of the grid fit the
/// target, the K chunk the widest up to `laid`'s that gives every part the same number of
/// chunks, two or more (the template streams a part's K). None unless [`splittable`].
pub(super) fn layouts(
    info: &MatmulInfo,
    laid: &Partition,
    target: &Target,
) -> Vec<(Partition, usize)> {
    let Some(bk) = laid.k_block.filter(|_| splittable(info)) else {
        return Vec::new();
    };
    part_counts(laid, target)
        .filter_map(|parts| {
            let chunk = divisors(info.kt)
                .into_iter()
                .filter(|&d| d <= bk && divides(info.kt, d, parts))
                .max()?;
            Some((laid.clone().split_k(target, parts)?, chunk))
        })
        .collect()
}

/// Whether the kernel of matmul `info` only sums its products of one A and runs its epilogue,
/// which K split in parts leaves to the first part's cores: no normalized A, no gathered A, no
/// causal attention.
pub(super) fn splittable(info: &MatmulInfo) -> bool {
    info.norm.is_none() && info.a_gather.is_none() && info.causal.is_none()
}

/// The numbers of parts, two or more, whose copies of layout `laid`'s grid fit the target's.
pub(super) fn part_counts(laid: &Partition, target: &Target) -> std::ops::RangeInclusive<usize> {
    2..=target.grid_y as usize / (laid.grid.1 as usize).max(1)
}

/// Whether K chunks of `bk` of `kt` tiles give each of `parts` parts the same number of chunks,
/// two or more (the template streams a part's K): always for a K not split.
pub(super) fn divides(kt: usize, bk: usize, parts: usize) -> bool {
    let chunks = kt / bk;
    parts == 1 || chunks.is_multiple_of(parts) && chunks / parts >= 2
}
