@ttl.kernel(grid=(1, 1))
def rmsnorm_kernel(x, weight, scaler, out):
    """RMSNorm: out = x * rsqrt(sum(x²)) * weight"""
    SEQ_TILES, EMBD_TILES = 4, 4

    x_cb = ttl.make_circular_buffer_like(x, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=2)
    weight_cb = ttl.make_circular_buffer_like(weight, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=2)
    scaler_cb = ttl.make_circular_buffer_like(scaler, shape=(1, 1), buffer_factor=2)
    out_cb = ttl.make_circular_buffer_like(out, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=2)

    sq_cb = ttl.make_circular_buffer_like(x, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=2)
    reduce_cb = ttl.make_circular_buffer_like(scaler, shape=(1, 1), buffer_factor=2)
    bcast_cb = ttl.make_circular_buffer_like(x, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=2)

    @ttl.compute()
    def compute():
        with x_cb.wait() as xv, weight_cb.wait() as wv, scaler_cb.wait() as sc:
            # Square
            with sq_cb.reserve() as sq:
                sq.store(xv * xv)

            # Reduce to scalar
            with sq_cb.wait() as sqv, reduce_cb.reserve() as red:
                total = ttl.math.reduce_sum(sqv, sc, red, dims=[0, 1])
                red.store(total)

            # Rsqrt
            with reduce_cb.wait() as sumv, reduce_cb.reserve() as rsq:
                rsq.store(ttl.math.rsqrt(sumv))

            # Broadcast
            with reduce_cb.wait() as rsqv, bcast_cb.reserve() as bc:
                bc.store(ttl.math.broadcast(rsqv, bc, dims=[0, 1]))

            # Normalize: x * rsqrt * weight
            with bcast_cb.wait() as rsqrt_bcast, out_cb.reserve() as o:
                normalized = xv * rsqrt_bcast
                o.store(normalized * wv)

    @ttl.datamovement()
    def dm_read():
        with x_cb.reserve() as blk:
            tx = ttl.copy(x[0:SEQ_TILES, 0:EMBD_TILES], blk)
            tx.wait()
        with weight_cb.reserve() as blk:
            tx = ttl.copy(weight[0:SEQ_TILES, 0:EMBD_TILES], blk)
            tx.wait()
        with scaler_cb.reserve() as blk:
            tx = ttl.copy(scaler[0, 0], blk)
            tx.wait()

    @ttl.datamovement()
    def dm_write():
        with out_cb.wait() as blk:
            tx = ttl.copy(blk, out[0:SEQ_TILES, 0:EMBD_TILES])
            tx.wait()
