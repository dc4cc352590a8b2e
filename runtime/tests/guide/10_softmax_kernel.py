@ttl.kernel(grid=(1, 1))
def softmax_kernel(x, scaler, out):
    """softmax(x) = exp(x - max(x)) / sum(exp(x - max(x)))"""
    SEQ_TILES = 4

    x_cb = ttl.make_circular_buffer_like(x, shape=(SEQ_TILES, SEQ_TILES), buffer_factor=2)
    scaler_cb = ttl.make_circular_buffer_like(scaler, shape=(1, 1), buffer_factor=2)
    out_cb = ttl.make_circular_buffer_like(out, shape=(SEQ_TILES, SEQ_TILES), buffer_factor=2)

    max_cb = ttl.make_circular_buffer_like(scaler, shape=(1, 1), buffer_factor=2)
    max_bcast_cb = ttl.make_circular_buffer_like(x, shape=(SEQ_TILES, SEQ_TILES), buffer_factor=2)
    exp_cb = ttl.make_circular_buffer_like(x, shape=(SEQ_TILES, SEQ_TILES), buffer_factor=2)
    sum_cb = ttl.make_circular_buffer_like(scaler, shape=(1, 1), buffer_factor=2)
    sum_bcast_cb = ttl.make_circular_buffer_like(x, shape=(SEQ_TILES, SEQ_TILES), buffer_factor=2)

    @ttl.compute()
    def compute():
        # Keep x and scaler in scope for entire function
        with x_cb.wait() as xv, scaler_cb.wait() as sc:
            # Step 1: Find max
            with max_cb.reserve() as mx:
                max_val = ttl.math.reduce_max(xv, sc, mx, dims=[0, 1])
                mx.store(max_val)

            # Step 2: Broadcast max
            with max_cb.wait() as mxv, max_bcast_cb.reserve() as mxb:
                bcast = ttl.math.broadcast(mxv, mxb, dims=[0, 1])
                mxb.store(bcast)

            # Keep max_bcast in scope for both exp computations
            with max_bcast_cb.wait() as mxbv:
                # Step 3: Exp for sum
                with exp_cb.reserve() as ex:
                    shifted = xv - mxbv
                    ex.store(ttl.math.exp(shifted))

                # Step 4: Sum
                with exp_cb.wait() as exv, sum_cb.reserve() as sm:
                    sum_val = ttl.math.reduce_sum(exv, sc, sm, dims=[0, 1])
                    sm.store(sum_val)

                # Step 5: Broadcast sum
                with sum_cb.wait() as smv, sum_bcast_cb.reserve() as smb:
                    sum_bcast = ttl.math.broadcast(smv, smb, dims=[0, 1])
                    smb.store(sum_bcast)

                # Step 6: Final softmax = exp(x - max) / sum
                # xv and mxbv still in scope!
                with sum_bcast_cb.wait() as smbv, out_cb.reserve() as o:
                    shifted2 = xv - mxbv
                    exp_val2 = ttl.math.exp(shifted2)
                    o.store(exp_val2 / smbv)

    @ttl.datamovement()
    def dm_read():
        with x_cb.reserve() as blk:
            tx = ttl.copy(x[0:SEQ_TILES, 0:SEQ_TILES], blk)
            tx.wait()
        with scaler_cb.reserve() as blk:
            tx = ttl.copy(scaler[0, 0], blk)
            tx.wait()

    @ttl.datamovement()
    def dm_write():
        with out_cb.wait() as blk:
            tx = ttl.copy(blk, out[0:SEQ_TILES, 0:SEQ_TILES])
            tx.wait()
