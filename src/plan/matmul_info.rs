//! What a matmul kernel computes: its product in tiles ([`MatmulInfo`]), the products of the
//! same left operand beside it, a left operand gathered from a pixel matrix, normalized in the
//! kernel or computed by it, and the body that builds them from a matmul group
//! (`matmul_body`).

use petgraph::graph::NodeIndex;

use super::body::{Body, BodyBuilder};
use super::causal::Causal;
use super::gather::{gathered_in_place, tile_gather};
use super::group::{resolve, Group};
use super::heads::{read_in_place, HeadView};
use super::kernel::{add_outputs, deferrable_softmaxes, tiles, unsupported, zero_padded};
use super::layout::{flat2d, layout_of};
use super::partition::{divisors, Partition};
use super::PlanError;
use crate::graph::im2col::TileGather;
use crate::graph::{Graph, Op};

/// The matmul a matmul kernel computes, in tiles.
#[derive(Clone, Debug, PartialEq)]
pub struct MatmulInfo {
    /// The A tensor (graph node whose data is read).
    pub a: NodeIndex,
    /// The tensor B is read from (the transpose's input when `b_transposed`).
    pub b: NodeIndex,
    /// Whether B is read as `(N, K)` tiles and transposed in the kernel.
    pub b_transposed: bool,
    /// Whether B has one matrix per batch (otherwise one matrix for all rows of A).
    pub b_batched: bool,
    /// Batches.
    pub batches: usize,
    /// Output rows per batch, in tiles.
    pub mt: usize,
    /// K in tiles.
    pub kt: usize,
    /// Output columns in tiles.
    pub nt: usize,
    /// Kernel parameter A is read from.
    pub a_param: String,
    /// Kernel parameter B is read from (A's when both are the same tensor).
    pub b_param: String,
    /// Stem of A's buffer.
    pub a_stem: String,
    /// Stem of the buffer B's tiles are read into.
    pub b_stem: String,
    /// Stem of the buffer holding B's transposed block (transposed reads only).
    pub bt_stem: String,
    /// Stem of the running-sum buffer.
    pub acc_stem: String,
    /// Stem of the buffer of partial sums passed between the parts of a split K
    /// ([`crate::plan::Partition::k_split`]).
    pub part_stem: String,
    /// A read head by head from a column range of its source (`a` is the source).
    pub a_heads: Option<HeadView>,
    /// B read head by head from a column range of its source (`b` is the source).
    pub b_heads: Option<HeadView>,
    /// A gathered from the pixel matrix `a` window by window (a convolution's im2col).
    pub a_gather: Option<GatherInfo>,
    /// More products of the same A, computed after the first, each with its own B.
    pub others: Vec<OtherProduct>,
    /// Causal attention taken in key chunks ([`super::causal`]), if the kernel is planned so.
    pub causal: Option<Causal>,
    /// A is the input of an RMSNorm or LayerNorm the kernel applies itself ([`RowNorm`]).
    pub norm: Option<RowNorm>,
}

/// The RMSNorm of a matmul kernel's left operand, applied by the kernel
/// ([`super::group::GroupKind::Matmul::norm`]): `rmsnorm(x) @ W == (x @ W) * rsqrt(mean(x^2) + eps)` per row,
/// so the kernel reads `x` as A. As the first product's K chunks pass, the compute thread squares
/// each chunk and adds its row sums (scaled by `1 / K`) to a running mean square; after the
/// chunks it computes the rows' scale once (an SFPU `rsqrt`, ~1080 cycles a tile) and copies it
/// once per product, and each product's running sum is scaled by it before the epilogue. The
/// cores of a grid row that take the same rows share the sums ([`row_norm_sharers`]).
///
/// A LayerNorm ([`RowNorm::kept`]) is `((x - mean) @ W) * rsqrt(var + eps)`: its rows'
/// mean must be known before the first product, so each core of a grid row first reads the
/// chunk it multicasts, and the cores share its row sums (the mean). Each core then centers its
/// chunk, and shares its centered squares' row sums (the variance) as an RMSNorm's; the scale is
/// known before the products, which each scale their last chunk. The centered chunk stays in
/// L1: its core multicasts it for every block and product, and uses it itself, so A is read
/// from DRAM once. KeptChunk before the product, rather than subtracting `mean * colsum(W)`
/// after it, keeps the products as exact as the separate LayerNorm's: the two terms of the
/// other form cancel in bf16.
#[derive(Clone, Debug, PartialEq)]
pub struct RowNorm {
    /// Body value of the reduce scaler tile, `1 / K`.
    pub scaler: usize,
    /// Body value of the epsilon tile.
    pub eps: usize,
    /// Stem of the buffer of a K chunk's squares.
    pub squares_stem: String,
    /// Stem of the running mean square of the rows.
    pub mean_square_stem: String,
    /// Stem of the buffer of the rows' scale, computed once.
    pub rstd_stem: String,
    /// Stem of the buffer of the rows' scale copied once per product.
    pub scale_stem: String,
    /// Stems of the buffers through which the cores of a grid row share the sums
    /// ([`row_norm_sharers`]): this core's partial to send, the others' received, and their
    /// running total.
    pub send_stem: String,
    /// See [`RowNorm::send_stem`].
    pub peers_stem: String,
    /// See [`RowNorm::send_stem`].
    pub total_stem: String,
    /// Whether the cores of a grid row share the sums, where the layout lets them
    /// ([`row_norm_sharers`]): the planner weighs each layout both ways.
    pub shared: bool,
    /// The chunk of A each core takes before the products and keeps in L1 ([`KeptChunk`]):
    /// always for a LayerNorm, which centers it; for an RMSNorm, when the kernel computes A
    /// ([`KeptChunk::input`]). `None` when the first product's chunks sum an RMSNorm's squares
    /// as they pass.
    pub kept: Option<KeptChunk>,
}

/// The K chunk of A each core of a grid row multicasts, taken before the products (read, or
/// computed by [`KeptChunk::input`]) and kept in L1 for every block and product: the cores
/// share its row statistics (a LayerNorm's mean, then variance; an RMSNorm's mean square)
/// before the first product, and the products each scale their last chunk ([`RowNorm`]).
#[derive(Clone, Debug, PartialEq)]
pub struct KeptChunk {
    /// Whether the chunk is centered on its rows' mean (a LayerNorm).
    pub centered: bool,
    /// Stem of the buffer of the K chunk this core multicasts, read before the products.
    pub own_chunk_stem: String,
    /// Stem of the buffer of that chunk (centered) which the reader holds and multicasts.
    pub sent_stem: String,
    /// Stem of the buffer of the same, which the compute thread holds for its own products.
    pub kept_stem: String,
    /// The product computing the norm's input in the kernel, if it does
    /// ([`super::group::GroupKind::Matmul::norm_input`]).
    pub input: Option<NormInput>,
}

/// The product whose result, plus bias and residual adds, is a centered A's input, computed
/// by the kernel ([`KeptChunk::input`]): each core computes its K chunk of A (its rows of `a`
/// times its columns of `b`, plus the adds' same columns) before the norm's statistics, instead
/// of reading it, and writes it to A's tensor for the kernels after. The product's K is taken
/// in chunks, `a`'s multicast along the grid row and `b`'s down the grid column, as in a
/// multicast matmul kernel whose blocks are the chunks.
#[derive(Clone, Debug, PartialEq)]
pub struct NormInput {
    /// The left operand (a graph tensor of A's rows).
    pub a: NodeIndex,
    /// The right operand (a constant matrix with A's columns).
    pub b: NodeIndex,
    /// Kernel parameters `a` and `b` are read from.
    pub a_param: String,
    /// See [`NormInput::a_param`].
    pub b_param: String,
    /// The product's K, in tiles.
    pub kt: usize,
    /// Its K chunk, in tiles: the largest divisor of `kt` up to 8.
    pub bk: usize,
    /// The adds after the product, in order.
    pub adds: Vec<InputAdd>,
    /// Stems of the buffers of `a`'s and `b`'s chunks, of the running sum, and of the chunk of
    /// A the writer writes.
    pub a_stem: String,
    /// See [`NormInput::a_stem`].
    pub b_stem: String,
    /// See [`NormInput::a_stem`].
    pub acc_stem: String,
    /// See [`NormInput::a_stem`].
    pub written_stem: String,
}

impl NormInput {
    /// The K chunk of a product of `kt` tiles: the largest divisor of `kt` up to 8 tiles.
    fn k_block(kt: usize) -> usize {
        divisors(kt)
            .into_iter()
            .filter(|&d| d <= 8)
            .max()
            .unwrap_or(1)
    }
}

/// An add after a [`NormInput`]'s product: a bias row or a residual of A's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct InputAdd {
    /// The tensor added.
    pub tensor: NodeIndex,
    /// Kernel parameter it is read from, and the stem of its buffer.
    pub param: String,
    /// Whether it is a row vector, broadcast down the rows.
    pub row_vector: bool,
}

impl MatmulInfo {
    /// The norm input the kernel computes for the chunk it keeps ([`KeptChunk::input`]), if it
    /// does.
    pub fn norm_input(&self) -> Option<&NormInput> {
        let kept = self.norm.as_ref().and_then(|rn| rn.kept.as_ref());
        kept.and_then(|ce| ce.input.as_ref())
    }
}

/// How many cores of a grid row share the row sums of a normalized A ([`RowNorm`]) in a kernel
/// planned as `p` with `k_chunks` K chunks: with A multicast along grid rows and one block per
/// core, every core of a grid row takes the same rows, so each squares and sums its share of
/// the chunks (chunk `kc` on core `kc % GRID_X`) and sends its partial to the row's other
/// cores. With fewer chunks than cores, the cores from the last chunk's on all sum the last
/// chunk, so that every core sums one chunk (and uses the reductions' scaler tile it waits
/// for), and only the first `k_chunks` send: the sharers are the `k_chunks` cores whose
/// partials differ. `None` when every core sums all its chunks itself.
pub fn row_norm_sharers(info: &MatmulInfo, p: &Partition, k_chunks: usize) -> Option<usize> {
    let norm = info.norm.as_ref()?;
    row_norm_sharing(p, k_chunks, norm).filter(|_| norm.shared)
}

/// How many cores of a grid row could share `norm`'s row sums in a kernel planned as `p` with
/// `k_chunks` K chunks ([`row_norm_sharers`]), if any. A centered A (a LayerNorm,
/// [`RowNorm::kept`]) must share them, each core summing one chunk before the products;
/// since that happens once per core, the core may take several blocks, as long as they are
/// all on the same rows (its grid row's blocks make whole block rows), and K takes no more
/// chunks than the grid row has cores. The last block row may overlap the one before
/// ([`Partition::overlap`]): its grid row's cores all take its rows, from where that block
/// row starts.
pub(super) fn row_norm_sharing(p: &Partition, k_chunks: usize, norm: &RowNorm) -> Option<usize> {
    let cols = p.grid.0 as usize;
    let same_rows = match &norm.kept {
        None => p.blocks_per_core == 1,
        Some(_) => p.col_blocks == cols * p.blocks_per_core && k_chunks <= cols,
    };
    let one_row_block =
        p.multicast && p.batches == 1 && same_rows && !p.guarded && p.segments.is_none();
    let sharers = (p.grid.0 as usize).min(k_chunks);
    (one_row_block && sharers > 1).then_some(sharers)
}

/// A further product of a matmul kernel computing several products of one left operand (a gated
/// MLP's `x @ W1` and `x @ W3`): the reader streams A again with this B, K chunk by K chunk.
#[derive(Clone, Debug, PartialEq)]
pub struct OtherProduct {
    /// Its body value (a `MatMul` value like the first product's).
    pub value: usize,
    /// The tensor B is read from.
    pub b: NodeIndex,
    /// Kernel parameter B is read from.
    pub b_param: String,
    /// Stem of the running-sum buffer.
    pub acc_stem: String,
}

/// A matmul's left operand gathered from a pixel matrix ([`super::gather`]): per K chunk (one
/// window offset, all channels) the reader reads the block's `bm + 1` pixel row tiles and its
/// gather table tiles, and the compute thread selects the window's rows from them with a
/// matmul.
#[derive(Clone, Debug, PartialEq)]
pub struct GatherInfo {
    /// The gather.
    pub gather: TileGather,
    /// Kernel parameter of the gather table ([`TileGather::table`] for the block's rows).
    pub table_param: String,
    /// Stem of the buffer of the block's pixel row tiles.
    pub pixels_stem: String,
}

/// The [`MatmulInfo`] and epilogue body of matmul group `g` whose first product is `mm`: with
/// `heads`, operands read and results written by attention head in place; `siblings`, the
/// further products of its left operand; `norm_node`, a norm the kernel applies to A;
/// `norm_input`, the first node of the chain the kernel computes A from; `outputs`, the nodes
/// it writes.
pub(super) fn matmul_body(
    graph: &Graph,
    g: &Group,
    mm: NodeIndex,
    (b_transposed, heads, siblings, norm_node): (bool, bool, &[NodeIndex], Option<NodeIndex>),
    norm_input: Option<NodeIndex>,
    outputs: &[NodeIndex],
) -> Result<(MatmulInfo, Body), PlanError> {
    let ins = graph.inputs_of(mm);
    let (Some(&a_raw), Some(&b_raw)) = (ins.first(), ins.get(1)) else {
        return Err(unsupported(graph, mm, "a matmul needs two inputs".into()));
    };
    let in_place = |x: NodeIndex| if heads { read_in_place(graph, x) } else { None };
    let (a_heads, b_heads) = (in_place(a_raw), in_place(b_raw));
    let b_transposed = b_transposed || b_heads.is_some_and(|v| v.transposed);
    let gather = (heads && gathered_in_place(graph, a_raw))
        .then(|| tile_gather(graph, a_raw))
        .flatten();
    let a = match (&a_heads, &gather) {
        (Some(v), _) => v.source,
        // The gathered pixel matrix, or the normalized input.
        (None, Some(_)) => resolve(graph, graph.inputs_of(a_raw)[0]),
        (None, None) if norm_node.is_some() => resolve(graph, graph.inputs_of(a_raw)[0]),
        (None, None) => resolve(graph, a_raw),
    };
    let ProductDims {
        batches,
        b_batched,
        rows,
        k,
        n,
    } = product_dims(graph, mm, a, (a_raw, b_raw))?;
    let b = if let Some(v) = b_heads {
        v.source
    } else if b_transposed {
        graph
            .inputs_of(b_raw)
            .first()
            .map(|&x| resolve(graph, x))
            .ok_or_else(|| unsupported(graph, b_raw, "transpose without input".into()))?
    } else {
        resolve(graph, b_raw)
    };
    let space = flat2d(&graph.node(mm).ty.shape);
    let mut builder = BodyBuilder::new(graph, space);
    if heads {
        builder.read_concats_in_place();
    }
    builder.defer_normalization(deferrable_softmaxes(graph, g));
    let a_param = builder.reserve_stem(&graph.node(a).name);
    let (b_param, b_stem) = if b == a {
        (
            a_param.clone(),
            builder.reserve_stem(&format!("{}_b", graph.node(b).name)),
        )
    } else {
        let p = builder.reserve_stem(&graph.node(b).name);
        (p.clone(), p)
    };
    let a_stem = a_param.clone();
    builder.share_param(a, a_param.clone());
    builder.share_param(b, b_param.clone());
    let bt_stem = builder.reserve_stem(&format!("{}_t", graph.node(b).name));
    let mm_name = graph.node(mm).name.clone();
    let acc_stem = builder.reserve_stem(&format!("{mm_name}_acc"));
    let part_stem = builder.reserve_stem(&format!("{mm_name}_part"));
    let a_gather = gather.map(|gather| GatherInfo {
        gather,
        table_param: builder.reserve_stem(&format!("{}_gather", graph.node(a_raw).name)),
        pixels_stem: builder.reserve_stem(&format!("{}_pair", graph.node(a).name)),
    });
    let mut others = sibling_products(graph, siblings, &mut builder)?;
    let mut norm = match norm_node {
        Some(nrm) => Some(row_norm(graph, nrm, k, norm_input.is_some(), &mut builder)?),
        None => None,
    };
    // The norm's input computed in the kernel: its product's and adds' nodes lead the group.
    let input_nodes: Vec<NodeIndex> = match norm_input {
        Some(mm0) => {
            let at = g.nodes.iter().position(|&n| n == a).ok_or_else(|| {
                unsupported(
                    graph,
                    mm0,
                    "the norm's input is not the product's last add".into(),
                )
            })?;
            g.nodes[..=at].to_vec()
        }
        None => Vec::new(),
    };
    if let Some(mm0) = norm_input {
        let input = norm_input_of(graph, mm0, &input_nodes, &mut builder)?;
        if let Some(ce) = norm.as_mut().and_then(|rn| rn.kept.as_mut()) {
            ce.input = Some(input);
        }
    }
    match &norm {
        Some(rn) => builder.matmul_reading(mm, vec![rn.scaler, rn.eps]),
        None => builder.matmul(mm),
    };
    let epilogue = g
        .nodes
        .iter()
        .filter(|&&n| n != mm && Some(n) != norm_node && !input_nodes.contains(&n));
    for &node in epilogue {
        match siblings.iter().position(|&s| s == node) {
            Some(i) => others[i].value = builder.matmul(node),
            None => {
                builder.node(node)?;
            }
        }
    }
    // The reader streams the products in the order the compute thread takes them.
    others.sort_by_key(|op| op.value);
    // A computed norm input is written by the kernel's own path, not as a body output.
    let outputs: Vec<NodeIndex> = outputs
        .iter()
        .copied()
        .filter(|n| !input_nodes.contains(n))
        .collect();
    let head_write = add_outputs(graph, &mut builder, &outputs, heads)?;
    let mut body = builder.finish();
    body.head_write = head_write;
    if batches > 1 {
        share_batch_rows(graph, &mut body);
    }
    let info = MatmulInfo {
        a,
        b,
        b_transposed,
        b_batched,
        batches,
        mt: tiles(rows),
        kt: tiles(k),
        nt: tiles(n),
        a_param,
        b_param,
        a_stem,
        b_stem,
        bt_stem,
        acc_stem,
        part_stem,
        a_heads,
        b_heads,
        a_gather,
        others,
        causal: None,
        norm,
    };
    Ok((info, body))
}

/// The dimensions of a matmul kernel's product, in elements.
struct ProductDims {
    /// Batches (1 when B is one matrix for all of A's rows).
    batches: usize,
    /// Whether B has one matrix per batch.
    b_batched: bool,
    /// Output rows per batch.
    rows: usize,
    /// The inner dimension.
    k: usize,
    /// Output columns.
    n: usize,
}

/// The [`ProductDims`] of matmul `mm` of `a_raw @ b_raw` (A read from `a`), or why the
/// template does not lower it: vector operands, inner dimensions that differ, broadcast
/// batches, batches of partial tiles, a padded inner dimension whose padding may not be zero.
fn product_dims(
    graph: &Graph,
    mm: NodeIndex,
    a: NodeIndex,
    (a_raw, b_raw): (NodeIndex, NodeIndex),
) -> Result<ProductDims, PlanError> {
    let a_shape = graph.node(a_raw).ty.shape.clone();
    let b_shape = graph.node(b_raw).ty.shape.clone();
    if a_shape.len() < 2 || b_shape.len() < 2 {
        return Err(unsupported(
            graph,
            mm,
            format!("operands {a_shape:?} and {b_shape:?}: vector operands are not lowered"),
        ));
    }
    let (m, k) = (a_shape[a_shape.len() - 2], a_shape[a_shape.len() - 1]);
    let (kb, n) = (b_shape[b_shape.len() - 2], b_shape[b_shape.len() - 1]);
    if k != kb {
        return Err(unsupported(
            graph,
            mm,
            format!("inner dimensions differ: {a_shape:?} @ {b_shape:?}"),
        ));
    }
    let a_lead = &a_shape[..a_shape.len() - 2];
    let b_lead = &b_shape[..b_shape.len() - 2];
    let batch_b: usize = b_lead.iter().product();
    let (batches, b_batched, rows) = if batch_b == 1 {
        (1, false, a_lead.iter().product::<usize>() * m)
    } else if a_lead == b_lead {
        (batch_b, true, m)
    } else {
        return Err(unsupported(graph, mm, format!("batch dimensions {a_lead:?} and {b_lead:?} differ (broadcast batches are not lowered)")));
    };
    // Padding is per 2-D view, so batched operands need whole tiles per batch; a padded inner
    // dimension needs zeros in the padding of at least one operand, which bindings guarantee
    // for graph inputs and constants.
    let tiled = |x: usize| x.is_multiple_of(32);
    if batches > 1 && !(tiled(m) && tiled(k) && tiled(n)) {
        return Err(PlanError::shape(graph, mm));
    }
    if !tiled(k) && !zero_padded(graph, a) && !zero_padded(graph, resolve(graph, b_raw)) {
        return Err(unsupported(
            graph,
            mm,
            format!("inner dimension {k} is not a multiple of 32 and neither operand is a graph input or constant, whose device padding is zero"),
        ));
    }
    if layout_of(&a_shape).is_none() {
        return Err(PlanError::shape(graph, a_raw));
    }
    Ok(ProductDims {
        batches,
        b_batched,
        rows,
        k,
        n,
    })
}

/// The further products `siblings` of a matmul kernel's left operand, their parameters and
/// stems reserved in `builder`: each reads its own B (a 2-D matrix, as `group::siblings`
/// requires). Their values are set as the body computes them.
fn sibling_products(
    graph: &Graph,
    siblings: &[NodeIndex],
    builder: &mut BodyBuilder,
) -> Result<Vec<OtherProduct>, PlanError> {
    let mut others = Vec::with_capacity(siblings.len());
    for &s in siblings {
        let b2 = graph
            .inputs_of(s)
            .get(1)
            .map(|&b| resolve(graph, b))
            .ok_or_else(|| unsupported(graph, s, "a matmul needs two inputs".into()))?;
        let b_param = builder.reserve_stem(&graph.node(b2).name);
        builder.share_param(b2, b_param.clone());
        let s_name = graph.node(s).name.clone();
        others.push(OtherProduct {
            value: 0,
            b: b2,
            b_param,
            acc_stem: builder.reserve_stem(&format!("{s_name}_acc")),
        });
    }
    Ok(others)
}

/// Marks the loads of batched matmul kernel `body` that every batch shares (a causal mask or
/// table shared by every head): each block reads them at its row within its batch.
fn share_batch_rows(graph: &Graph, body: &mut Body) {
    for load in &mut body.loads {
        load.batch_shared = match load.source {
            super::body::LoadSource::WhereMask(w) => super::body::where_mask_batch_shared(graph, w),
            super::body::LoadSource::Expanded { constant, like } => {
                super::body::expanded_batch_shared(graph, like, constant)
            }
            _ => false,
        };
    }
}

/// The [`NormInput`] of matmul `mm0` and the adds after it (`nodes`, the product first, A
/// last), with its parameters and stems reserved in `builder`.
fn norm_input_of(
    graph: &Graph,
    mm0: NodeIndex,
    nodes: &[NodeIndex],
    builder: &mut BodyBuilder,
) -> Result<NormInput, PlanError> {
    let ins = graph.inputs_of(mm0);
    let (Some(&a_raw), Some(&b_raw)) = (ins.first(), ins.get(1)) else {
        return Err(unsupported(graph, mm0, "a matmul needs two inputs".into()));
    };
    let (a, b) = (resolve(graph, a_raw), resolve(graph, b_raw));
    let kt = tiles(graph.node(a).ty.shape[1]);
    let param = |builder: &mut BodyBuilder, n: NodeIndex| {
        let p = builder.reserve_stem(&graph.node(n).name);
        builder.share_param(n, p.clone());
        p
    };
    let (a_param, b_param) = (param(builder, a), param(builder, b));
    let mut adds = Vec::new();
    let mut chain = mm0;
    for &add in &nodes[1..] {
        let other = graph
            .inputs_of(add)
            .into_iter()
            .find(|&x| x != chain)
            .map(|x| resolve(graph, x))
            .ok_or_else(|| unsupported(graph, add, "an add of the chain to itself".into()))?;
        adds.push(InputAdd {
            tensor: other,
            param: param(builder, other),
            row_vector: graph.node(other).ty.shape.len() == 1,
        });
        chain = add;
    }
    let name = graph.node(mm0).name.clone();
    Ok(NormInput {
        a,
        b,
        a_param,
        b_param,
        kt,
        bk: NormInput::k_block(kt),
        adds,
        a_stem: builder.reserve_stem(&format!("{name}_a")),
        b_stem: builder.reserve_stem(&format!("{name}_b")),
        acc_stem: builder.reserve_stem(&format!("{name}_acc")),
        written_stem: builder.reserve_stem(&format!("{name}_written")),
    })
}

/// The [`RowNorm`] of RMSNorm or LayerNorm node `nrm` over `k` columns: its scaler and epsilon
/// tiles and its buffers' stems; a chunk kept in L1 for a LayerNorm, or when the kernel
/// computes the norm's input (`computed_input`).
fn row_norm(
    graph: &Graph,
    nrm: NodeIndex,
    k: usize,
    computed_input: bool,
    builder: &mut BodyBuilder,
) -> Result<RowNorm, PlanError> {
    let node = graph.node(nrm);
    let mut kept = |centered: bool| KeptChunk {
        centered,
        own_chunk_stem: builder.reserve_stem(&format!("{}_own_chunk", node.name)),
        sent_stem: builder.reserve_stem(&format!("{}_sent", node.name)),
        kept_stem: builder.reserve_stem(&format!("{}_kept", node.name)),
        input: None,
    };
    let (eps, kept) = match node.op {
        Op::RmsNorm { eps } => (eps, computed_input.then(|| kept(false))),
        Op::LayerNorm { eps } => (eps, Some(kept(true))),
        _ => {
            return Err(unsupported(
                graph,
                nrm,
                "only an RMSNorm or a LayerNorm is normalized by a matmul kernel".into(),
            ))
        }
    };
    Ok(RowNorm {
        scaler: builder.scalar(1.0 / k as f32),
        eps: builder.scalar(eps),
        squares_stem: builder.reserve_stem(&format!("{}_squares", node.name)),
        mean_square_stem: builder.reserve_stem(&format!("{}_mean_square", node.name)),
        rstd_stem: builder.reserve_stem(&format!("{}_rstd", node.name)),
        scale_stem: builder.reserve_stem(&format!("{}_scale", node.name)),
        send_stem: builder.reserve_stem(&format!("{}_send", node.name)),
        peers_stem: builder.reserve_stem(&format!("{}_peers", node.name)),
        total_stem: builder.reserve_stem(&format!("{}_total", node.name)),
        shared: false,
        kept,
    })
}
