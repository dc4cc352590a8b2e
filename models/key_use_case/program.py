"""The TTNN program of the TT-Lang guide's key use case: exp, add, relu."""
import torch
import ttnn

device = ttnn.open_device(device_id=0)
input = ttnn.from_torch(torch.randn(64, 64), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device)
bias = ttnn.from_torch(torch.randn(64, 64), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device)

x = ttnn.exp(input)
y = ttnn.add(x, bias)
z = ttnn.relu(y)

ttnn.close_device(device)
