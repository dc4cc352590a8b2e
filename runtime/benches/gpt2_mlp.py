import ttl

# GPT-2 sized MLP, out = relu(x @ w_fc)^2 @ w_proj, with x 1024x768, w_fc 768x3072,
# w_proj 3072x768, on the 8x8 grid.
# Core (cx, cy) takes tile rows cy*4 .. cy*4+4 and hidden tiles cx*12 .. cx*12+12, streamed in
# chunks of 2 hidden tiles; its 4x24-tile partial product goes through a pipe to core (0, cy),
# which sums the 8 partials and writes the rows out. gather_cb carries partials: compute ->
# dm_write (pipe send) on workers, dm_write (pipe receive) -> compute on the coordinator.
ROW_TILES = 4
EMBD_TILES = 24
HIDDEN_PER_CORE = 12
CHUNK = 2
CHUNKS = 6
GRID_X = 8


@ttl.kernel(grid=(8, 8))
def gpt2_mlp(x, w_fc, w_proj, out):
    x_cb = ttl.make_circular_buffer_like(x, shape=(ROW_TILES, EMBD_TILES), buffer_factor=1)
    wfc_cb = ttl.make_circular_buffer_like(w_fc, shape=(EMBD_TILES, CHUNK), buffer_factor=2)
    wproj_cb = ttl.make_circular_buffer_like(w_proj, shape=(CHUNK, EMBD_TILES), buffer_factor=2)
    h_cb = ttl.make_circular_buffer_like(w_fc, shape=(ROW_TILES, CHUNK), buffer_factor=2)
    acc_cb = ttl.make_circular_buffer_like(out, shape=(ROW_TILES, EMBD_TILES), buffer_factor=1)
    gather_cb = ttl.make_circular_buffer_like(out, shape=(ROW_TILES, EMBD_TILES), buffer_factor=1)
    out_cb = ttl.make_circular_buffer_like(out, shape=(ROW_TILES, EMBD_TILES), buffer_factor=1)

    @ttl.compute()
    def compute():
        cx, cy = ttl.core(dims=2)
        with x_cb.wait() as xv:
            for c in range(CHUNKS):
                with wfc_cb.wait() as wfc, h_cb.reserve() as h:
                    h.store(ttl.math.matmul(xv, wfc, h))
                with h_cb.wait() as hv, h_cb.reserve() as ha:
                    r = ttl.math.relu(hv)
                    ha.store(r * r)
                if c == 0:
                    with h_cb.wait() as hav, wproj_cb.wait() as wp, acc_cb.reserve() as acc:
                        acc.store(ttl.math.matmul(hav, wp, acc))
                else:
                    with h_cb.wait() as hav, wproj_cb.wait() as wp, acc_cb.wait() as acc:
                        with acc_cb.reserve() as nacc:
                            nacc.store(ttl.math.matmul(hav, wp, acc))
        if cx == 0:
            for _ in range(GRID_X - 1):
                with gather_cb.wait() as g, acc_cb.wait() as acc, acc_cb.reserve() as nacc:
                    nacc.store(acc + g)
            with acc_cb.wait() as acc, out_cb.reserve() as o:
                o.store(acc)
        else:
            # Hand the partial to dm_write through its own CB: acc_cb has one consumer.
            with acc_cb.wait() as acc, gather_cb.reserve() as s:
                s.store(acc)

    @ttl.datamovement()
    def dm_read():
        cx, cy = ttl.core(dims=2)
        r0 = cy * ROW_TILES
        with x_cb.reserve() as blk:
            tx = ttl.copy(x[r0:r0 + ROW_TILES, 0:EMBD_TILES], blk)
            tx.wait()
        for c in range(CHUNKS):
            h0 = cx * HIDDEN_PER_CORE + c * CHUNK
            with wfc_cb.reserve() as blk:
                tx = ttl.copy(w_fc[0:EMBD_TILES, h0:h0 + CHUNK], blk)
                tx.wait()
            with wproj_cb.reserve() as blk:
                tx = ttl.copy(w_proj[h0:h0 + CHUNK, 0:EMBD_TILES], blk)
                tx.wait()

    @ttl.datamovement()
    def dm_write():
        cx, cy = ttl.core(dims=2)
        r0 = cy * ROW_TILES
        if cx == 0:
            for src in range(1, GRID_X):
                with gather_cb.reserve() as blk:
                    tx = ttl.copy(ttl.Pipe(src=(src, cy), dst=(0, cy)), blk)
                    tx.wait()
            with out_cb.wait() as blk:
                tx = ttl.copy(blk, out[r0:r0 + ROW_TILES, 0:EMBD_TILES])
                tx.wait()
        else:
            with gather_cb.wait() as blk:
                tx = ttl.copy(blk, ttl.Pipe(src=(cx, cy), dst=(0, cy)))
                tx.wait()
