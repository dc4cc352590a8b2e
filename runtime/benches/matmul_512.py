import ttl

# 512x512x512 bf16 matmul on one core: B (16x16 tiles) stays in L1, A and the output stream
# through in row blocks of BM tiles.
M_TILES = 16
K_TILES = 16
N_TILES = 16
BM = 4


@ttl.kernel(grid=(1, 1))
def matmul_512(a, b, out):
    a_cb = ttl.make_circular_buffer_like(a, shape=(BM, K_TILES), buffer_factor=2)
    b_cb = ttl.make_circular_buffer_like(b, shape=(K_TILES, N_TILES), buffer_factor=1)
    out_cb = ttl.make_circular_buffer_like(out, shape=(BM, N_TILES), buffer_factor=2)

    @ttl.compute()
    def compute():
        with b_cb.wait() as bv:
            for _ in range(M_TILES // BM):
                with a_cb.wait() as av, out_cb.reserve() as o:
                    o.store(ttl.math.matmul(av, bv, o))

    @ttl.datamovement()
    def dm_read():
        with b_cb.reserve() as blk:
            tx = ttl.copy(b[0:K_TILES, 0:N_TILES], blk)
            tx.wait()
        for i in range(M_TILES // BM):
            with a_cb.reserve() as blk:
                tx = ttl.copy(a[i * BM:(i + 1) * BM, 0:K_TILES], blk)
                tx.wait()

    @ttl.datamovement()
    def dm_write():
        for i in range(M_TILES // BM):
            with out_cb.wait() as blk:
                tx = ttl.copy(blk, out[i * BM:(i + 1) * BM, 0:N_TILES])
                tx.wait()
