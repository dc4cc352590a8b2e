@ttl.kernel(grid=(1, 1))
def fused_block_kernel(attn_concat, x, wo, ln2_w, w_fc, w_proj, scaler, out):
    """
    Fused: attn_proj -> residual1 -> RMSNorm -> MLP -> residual2
    """
    SEQ_TILES, EMBD_TILES, MLP_TILES = 4, 4, 16
    MLP_CHUNK_TILES, NUM_MLP_CHUNKS = 4, 4

    # Input CBs - buffer_factor=1 for single-use weights
    attn_cb = ttl.make_circular_buffer_like(attn_concat, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=1)
    x_cb = ttl.make_circular_buffer_like(x, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=1)
    wo_cb = ttl.make_circular_buffer_like(wo, shape=(EMBD_TILES, EMBD_TILES), buffer_factor=1)
    ln2_w_cb = ttl.make_circular_buffer_like(ln2_w, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=1)
    scaler_cb = ttl.make_circular_buffer_like(scaler, shape=(1, 1), buffer_factor=1)

    # Streaming MLP weight chunks
    w_fc_chunk_cb = ttl.make_circular_buffer_like(w_fc, shape=(EMBD_TILES, MLP_CHUNK_TILES), buffer_factor=2)
    w_proj_chunk_cb = ttl.make_circular_buffer_like(w_proj, shape=(MLP_CHUNK_TILES, EMBD_TILES), buffer_factor=2)

    # Intermediate CBs
    act_cb = ttl.make_circular_buffer_like(x, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=2)
    hidden1_cb = ttl.make_circular_buffer_like(x, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=2)
    ln2_out_cb = ttl.make_circular_buffer_like(x, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=2)
    mlp_chunk_cb = ttl.make_circular_buffer_like(w_fc, shape=(SEQ_TILES, MLP_CHUNK_TILES), buffer_factor=2)
    mlp_acc_cb = ttl.make_circular_buffer_like(x, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=2)
    partial_cb = ttl.make_circular_buffer_like(x, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=2)
    reduce_cb = ttl.make_circular_buffer_like(scaler, shape=(1, 1), buffer_factor=1)
    bcast_cb = ttl.make_circular_buffer_like(x, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=1)
    out_cb = ttl.make_circular_buffer_like(out, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=1)

    @ttl.compute()
    def compute():
        with scaler_cb.wait() as sc:
            # Step 1: attn_concat @ Wo -> attn_proj
            with attn_cb.wait() as attn, wo_cb.wait() as wo:
                with act_cb.reserve() as ap:
                    result = ttl.math.matmul(attn, wo, ap)
                    ap.store(result)

            # Step 2: attn_proj + x -> hidden1 (Residual 1)
            with act_cb.wait() as ap, x_cb.wait() as xv:
                with hidden1_cb.reserve() as h1:
                    h1.store(ap + xv)

            # Keep hidden1 in scope for residual 2!
            with hidden1_cb.wait() as h1v, ln2_w_cb.wait() as ln2_wv:
                # Step 3: RMSNorm
                with act_cb.reserve() as sq:
                    sq.store(h1v * h1v)
                with act_cb.wait() as sqv, reduce_cb.reserve() as red:
                    total = ttl.math.reduce_sum(sqv, sc, red, dims=[0, 1])
                    red.store(total)
                with reduce_cb.wait() as sumv, reduce_cb.reserve() as rsq:
                    rsq.store(ttl.math.rsqrt(sumv))
                with reduce_cb.wait() as rsqv, bcast_cb.reserve() as bc:
                    bc.store(ttl.math.broadcast(rsqv, bc, dims=[0, 1]))
                with bcast_cb.wait() as rsqrt_bcast, ln2_out_cb.reserve() as ln2:
                    normalized = h1v * rsqrt_bcast
                    ln2.store(normalized * ln2_wv)

                # Step 4: Streaming MLP (see Pattern 4 below)
                with ln2_out_cb.wait() as ln2v:
                    # First chunk
                    with w_fc_chunk_cb.wait() as wfc, mlp_chunk_cb.reserve() as mh:
                        result = ttl.math.matmul(ln2v, wfc, mh)
                        mh.store(result)
                    with mlp_chunk_cb.wait() as mhv, mlp_chunk_cb.reserve() as ma:
                        relu_x = ttl.math.relu(mhv)
                        ma.store(relu_x * relu_x)
                    with mlp_chunk_cb.wait() as mav, w_proj_chunk_cb.wait() as wpr:
                        with mlp_acc_cb.reserve() as acc:
                            result = ttl.math.matmul(mav, wpr, acc)
                            acc.store(result)

                    # Remaining chunks with accumulation
                    for _ in range(NUM_MLP_CHUNKS - 1):
                        with w_fc_chunk_cb.wait() as wfc, mlp_chunk_cb.reserve() as mh:
                            result = ttl.math.matmul(ln2v, wfc, mh)
                            mh.store(result)
                        with mlp_chunk_cb.wait() as mhv, mlp_chunk_cb.reserve() as ma:
                            relu_x = ttl.math.relu(mhv)
                            ma.store(relu_x * relu_x)
                        with mlp_chunk_cb.wait() as mav, w_proj_chunk_cb.wait() as wpr:
                            with partial_cb.reserve() as part:
                                result = ttl.math.matmul(mav, wpr, part)
                                part.store(result)
                        with partial_cb.wait() as partv, mlp_acc_cb.wait() as acc:
                            with mlp_acc_cb.reserve() as new_acc:
                                new_acc.store(acc + partv)

                # Step 5: Residual 2 - h1v still in scope!
                with mlp_acc_cb.wait() as mlp_out, out_cb.reserve() as o:
                    o.store(mlp_out + h1v)

    @ttl.datamovement()
    def dm_read():
        # Load fixed inputs once
        with attn_cb.reserve() as blk:
            tx = ttl.copy(attn_concat[0:SEQ_TILES, 0:EMBD_TILES], blk)
            tx.wait()
        with x_cb.reserve() as blk:
            tx = ttl.copy(x[0:SEQ_TILES, 0:EMBD_TILES], blk)
            tx.wait()
        with wo_cb.reserve() as blk:
            tx = ttl.copy(wo[0:EMBD_TILES, 0:EMBD_TILES], blk)
            tx.wait()
        with ln2_w_cb.reserve() as blk:
            tx = ttl.copy(ln2_w[0:SEQ_TILES, 0:EMBD_TILES], blk)
            tx.wait()
        with scaler_cb.reserve() as blk:
            tx = ttl.copy(scaler[0, 0], blk)
            tx.wait()

        # Stream MLP weight chunks - loop syncs with compute
        for chunk in range(NUM_MLP_CHUNKS):
            col_start = chunk * MLP_CHUNK_TILES
            col_end = col_start + MLP_CHUNK_TILES
            with w_fc_chunk_cb.reserve() as blk:
                tx = ttl.copy(w_fc[0:EMBD_TILES, col_start:col_end], blk)
                tx.wait()
            with w_proj_chunk_cb.reserve() as blk:
                tx = ttl.copy(w_proj[col_start:col_end, 0:EMBD_TILES], blk)
                tx.wait()

    @ttl.datamovement()
    def dm_write():
        with out_cb.wait() as blk:
            tx = ttl.copy(blk, out[0:SEQ_TILES, 0:EMBD_TILES])
            tx.wait()
