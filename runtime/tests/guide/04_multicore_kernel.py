# 256x256 tensor across 8x8 grid = 1 tile per core
@ttl.kernel(grid=(8, 8))
def multicore_kernel(lhs, rhs, out):
    lhs_cb = ttl.make_circular_buffer_like(lhs, shape=(1, 1), buffer_factor=2)
    rhs_cb = ttl.make_circular_buffer_like(rhs, shape=(1, 1), buffer_factor=2)
    out_cb = ttl.make_circular_buffer_like(out, shape=(1, 1), buffer_factor=2)

    @ttl.compute()
    def compute():
        with lhs_cb.wait() as l, rhs_cb.wait() as r:
            with out_cb.reserve() as o:
                result = l + r
                o.store(result)

    @ttl.datamovement()
    def dm_read():
        # Get this core's coordinates
        x, y = ttl.core(dims=2)  # x=column, y=row

        with lhs_cb.reserve() as blk:
            # Tensor indexing is [row, col] = [y, x]
            tx = ttl.copy(lhs[y, x], blk)
            tx.wait()

        with rhs_cb.reserve() as blk:
            tx = ttl.copy(rhs[y, x], blk)
            tx.wait()

    @ttl.datamovement()
    def dm_write():
        x, y = ttl.core(dims=2)
        with out_cb.wait() as blk:
            tx = ttl.copy(blk, out[y, x])
            tx.wait()

# Call: multicore_kernel(lhs, rhs, out)
