# Config
MLP_TILES = 16           # Full size
MLP_CHUNK_TILES = 4      # Chunk size
NUM_MLP_CHUNKS = 4       # 16 / 4 = 4 chunks

@ttl.kernel(grid=(1, 1))
def streaming_mlp_kernel(x, w_fc, w_proj, out):
    """Stream large MLP weights through small CBs."""
    SEQ_TILES, EMBD_TILES = 4, 4

    # Input stays in L1 (loaded once)
    x_cb = ttl.make_circular_buffer_like(x, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=2)

    # Streaming weight CBs - SMALL, reused per chunk
    w_fc_chunk_cb = ttl.make_circular_buffer_like(w_fc, shape=(EMBD_TILES, MLP_CHUNK_TILES), buffer_factor=2)
    w_proj_chunk_cb = ttl.make_circular_buffer_like(w_proj, shape=(MLP_CHUNK_TILES, EMBD_TILES), buffer_factor=2)

    # MLP hidden chunk
    mlp_chunk_cb = ttl.make_circular_buffer_like(w_fc, shape=(SEQ_TILES, MLP_CHUNK_TILES), buffer_factor=2)

    # Output accumulator
    out_acc_cb = ttl.make_circular_buffer_like(out, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=2)
    partial_cb = ttl.make_circular_buffer_like(out, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=2)
    out_cb = ttl.make_circular_buffer_like(out, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=2)

    @ttl.compute()
    def compute():
        with x_cb.wait() as xv:
            # First chunk - initialize accumulator
            with w_fc_chunk_cb.wait() as wfc, mlp_chunk_cb.reserve() as mh:
                result = ttl.math.matmul(xv, wfc, mh)
                mh.store(result)
            with mlp_chunk_cb.wait() as mhv, mlp_chunk_cb.reserve() as ma:
                relu_x = ttl.math.relu(mhv)
                ma.store(relu_x * relu_x)
            with mlp_chunk_cb.wait() as mav, w_proj_chunk_cb.wait() as wpr:
                with out_acc_cb.reserve() as acc:
                    result = ttl.math.matmul(mav, wpr, acc)
                    acc.store(result)

            # Remaining chunks - accumulate
            for _ in range(NUM_MLP_CHUNKS - 1):
                with w_fc_chunk_cb.wait() as wfc, mlp_chunk_cb.reserve() as mh:
                    result = ttl.math.matmul(xv, wfc, mh)
                    mh.store(result)
                with mlp_chunk_cb.wait() as mhv, mlp_chunk_cb.reserve() as ma:
                    relu_x = ttl.math.relu(mhv)
                    ma.store(relu_x * relu_x)
                with mlp_chunk_cb.wait() as mav, w_proj_chunk_cb.wait() as wpr:
                    with partial_cb.reserve() as part:
                        result = ttl.math.matmul(mav, wpr, part)
                        part.store(result)
                with partial_cb.wait() as partv, out_acc_cb.wait() as acc:
                    with out_acc_cb.reserve() as new_acc:
                        new_acc.store(acc + partv)

            # Copy to output
            with out_acc_cb.wait() as acc, out_cb.reserve() as o:
                o.store(ttl.math.abs(acc))

    @ttl.datamovement()
    def dm_read():
        # Load x once
        with x_cb.reserve() as blk:
            tx = ttl.copy(x[0:SEQ_TILES, 0:EMBD_TILES], blk)
            tx.wait()

        # Stream weight chunks - MUST match compute loop count
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
