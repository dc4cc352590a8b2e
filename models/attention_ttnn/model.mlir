// Scaled dot-product attention with a residual and a ReLU, in the TTNN dialect (generic form).
#dram = #ttnn.buffer_type<dram>
#ttnn_layout = #ttnn.ttnn_layout<(d0, d1) -> (d0, d1), <1x1>, memref<2x2x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
#ttnn_layout1 = #ttnn.ttnn_layout<(d0, d1) -> (d0, d1), <1x1>, memref<1x1x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
module {
  func.func @attention(%arg0: tensor<64x64xbf16, #ttnn_layout> {ttir.name = "q"},
                       %arg1: tensor<64x64xbf16, #ttnn_layout> {ttir.name = "k"},
                       %arg2: tensor<64x64xbf16, #ttnn_layout> {ttir.name = "v"},
                       %arg3: tensor<1x1xbf16, #ttnn_layout1> {ttir.name = "scale"}) -> tensor<64x64xbf16, #ttnn_layout> {
    %0 = "ttnn.get_device"() <{mesh_shape = #ttnn<mesh_shape 1x1>}> : () -> !ttnn.device
    %1 = "ttnn.matmul"(%arg0, %arg1) <{transpose_a = false, transpose_b = true}> : (tensor<64x64xbf16, #ttnn_layout>, tensor<64x64xbf16, #ttnn_layout>) -> tensor<64x64xbf16, #ttnn_layout>
    %2 = "ttnn.multiply"(%1, %arg3) : (tensor<64x64xbf16, #ttnn_layout>, tensor<1x1xbf16, #ttnn_layout1>) -> tensor<64x64xbf16, #ttnn_layout>
    "ttnn.deallocate"(%1) <{force = false}> : (tensor<64x64xbf16, #ttnn_layout>) -> ()
    %3 = "ttnn.softmax"(%2) <{dimension = -1 : si32}> : (tensor<64x64xbf16, #ttnn_layout>) -> tensor<64x64xbf16, #ttnn_layout>
    %4 = "ttnn.matmul"(%3, %arg2) <{transpose_a = false, transpose_b = false}> : (tensor<64x64xbf16, #ttnn_layout>, tensor<64x64xbf16, #ttnn_layout>) -> tensor<64x64xbf16, #ttnn_layout>
    %5 = "ttnn.add"(%4, %arg0) : (tensor<64x64xbf16, #ttnn_layout>, tensor<64x64xbf16, #ttnn_layout>) -> tensor<64x64xbf16, #ttnn_layout>
    %6 = "ttnn.relu"(%5) : (tensor<64x64xbf16, #ttnn_layout>) -> tensor<64x64xbf16, #ttnn_layout> loc(#loc1)
    return %6 : tensor<64x64xbf16, #ttnn_layout>
  }
}
