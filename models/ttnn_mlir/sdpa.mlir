#dram = #ttnn.buffer_type<dram>
#system_memory = #ttnn.buffer_type<system_memory>
#ttnn_layout = #ttnn.ttnn_layout<(d0, d1, d2, d3) -> (d0, d1, d2, d3), <1x1>, memref<4x1x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
#ttnn_layout1 = #ttnn.ttnn_layout<(d0, d1) -> (d0, d1), <1x1>, memref<1x1x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
module @sdpa {
  func.func @forward(%arg0: tensor<1x2x64x32xbf16, #ttnn_layout> {ttir.name = "q"}, %arg1: tensor<1x2x64x32xbf16, #ttnn_layout> {ttir.name = "k"}, %arg2: tensor<1x2x64x32xbf16, #ttnn_layout> {ttir.name = "v"}) -> tensor<1x2x64x32xbf16, #ttnn_layout> {
    %0 = "ttnn.get_device"() <{mesh_offset = #ttnn<mesh_offset 0x0>, mesh_shape = #ttnn<mesh_shape 1x1>}> : () -> !ttnn.device
    %1 = "ttnn.scaled_dot_product_attention"(%arg0, %arg1, %arg2) <{is_causal = true, operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>}> : (tensor<1x2x64x32xbf16, #ttnn_layout>, tensor<1x2x64x32xbf16, #ttnn_layout>, tensor<1x2x64x32xbf16, #ttnn_layout>) -> tensor<1x2x64x32xbf16, #ttnn_layout>
    %2 = "ttnn.full"(%0) <{dtype = #ttcore.supportedDataTypes<bf16>, fill_value = 2.0 : f32, layout = #ttnn.layout<tile>, shape = #ttnn.shape<1x1>}> : (!ttnn.device) -> tensor<1x1xbf16, #ttnn_layout1>
    %3 = "ttnn.multiply"(%1, %2) : (tensor<1x2x64x32xbf16, #ttnn_layout>, tensor<1x1xbf16, #ttnn_layout1>) -> tensor<1x2x64x32xbf16, #ttnn_layout>
    return %3 : tensor<1x2x64x32xbf16, #ttnn_layout>
  }
}
