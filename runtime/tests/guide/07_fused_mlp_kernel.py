@ttl.kernel(grid=(1, 1))
def fused_mlp_kernel(x, w_fc, w_proj, out):
    """
    Fused MLP: out = relu²(x @ w_fc) @ w_proj

    x: (4, 4) tiles
    w_fc: (4, 16) tiles
    w_proj: (16, 4) tiles
    out: (4, 4) tiles
    """
    SEQ_TILES, EMBD_TILES, MLP_TILES = 4, 4, 16

    x_cb = ttl.make_circular_buffer_like(x, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=2)
    w_fc_cb = ttl.make_circular_buffer_like(w_fc, shape=(EMBD_TILES, MLP_TILES), buffer_factor=2)
    w_proj_cb = ttl.make_circular_buffer_like(w_proj, shape=(MLP_TILES, EMBD_TILES), buffer_factor=2)
    mlp_hidden_cb = ttl.make_circular_buffer_like(w_fc, shape=(SEQ_TILES, MLP_TILES), buffer_factor=2)
    mlp_act_cb = ttl.make_circular_buffer_like(w_fc, shape=(SEQ_TILES, MLP_TILES), buffer_factor=2)
    out_cb = ttl.make_circular_buffer_like(out, shape=(SEQ_TILES, EMBD_TILES), buffer_factor=2)

    @ttl.compute()
    def compute():
        # Step 1: x @ w_fc -> mlp_hidden
        with x_cb.wait() as xv, w_fc_cb.wait() as wfc:
            with mlp_hidden_cb.reserve() as mh:
                result = ttl.math.matmul(xv, wfc, mh)
                mh.store(result)

        # Step 2: relu²(mlp_hidden) -> mlp_act
        with mlp_hidden_cb.wait() as mhv, mlp_act_cb.reserve() as ma:
            relu_x = ttl.math.relu(mhv)
            ma.store(relu_x * relu_x)

        # Step 3: mlp_act @ w_proj -> out
        with mlp_act_cb.wait() as mav, w_proj_cb.wait() as wproj:
            with out_cb.reserve() as o:
                result = ttl.math.matmul(mav, wproj, o)
                o.store(result)

    @ttl.datamovement()
    def dm_read():
        with x_cb.reserve() as blk:
            tx = ttl.copy(x[0:SEQ_TILES, 0:EMBD_TILES], blk)
            tx.wait()
        with w_fc_cb.reserve() as blk:
            tx = ttl.copy(w_fc[0:EMBD_TILES, 0:MLP_TILES], blk)
            tx.wait()
        with w_proj_cb.reserve() as blk:
            tx = ttl.copy(w_proj[0:MLP_TILES, 0:EMBD_TILES], blk)
            tx.wait()

    @ttl.datamovement()
    def dm_write():
        with out_cb.wait() as blk:
            tx = ttl.copy(blk, out[0:SEQ_TILES, 0:EMBD_TILES])
            tx.wait()
