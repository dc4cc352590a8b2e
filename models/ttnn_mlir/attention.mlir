#dram = #ttnn.buffer_type<dram>
#system_memory = #ttnn.buffer_type<system_memory>
#ttnn_layout = #ttnn.ttnn_layout<(d0, d1) -> (d0, d1), <1x1>, memref<2x4x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
#ttnn_layout1 = #ttnn.ttnn_layout<(d0, d1) -> (d0, d1), <1x1>, memref<4x4x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
#ttnn_layout2 = #ttnn.ttnn_layout<(d0, d1, d2) -> (d0, d1, d2), <1x1>, memref<2x4x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
#ttnn_layout3 = #ttnn.ttnn_layout<(d0, d1, d2) -> (d0, d1, d2), <1x1>, memref<2x2x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
#ttnn_layout4 = #ttnn.ttnn_layout<(d0, d1, d2) -> (d0, d1, d2), <1x1>, memref<1x1x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
#ttnn_layout5 = #ttnn.ttnn_layout<(d0, d1) -> (d0, d1), <1x1>, memref<2x2x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
#ttnn_layout6 = #ttnn.ttnn_layout<(d0, d1) -> (d0, d1), <1x1>, memref<1x1x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
module @attention {
  func.func @forward(%arg0: tensor<64x128xbf16, #ttnn_layout> {ttir.name = "x"}, %arg1: tensor<128xbf16> {ttir.name = "gamma"},
                     %arg2: tensor<128x128xbf16, #ttnn_layout1> {ttir.name = "wq"}, %arg3: tensor<128x128xbf16, #ttnn_layout1> {ttir.name = "wk"},
                     %arg4: tensor<128x128xbf16, #ttnn_layout1> {ttir.name = "wv"}, %arg5: tensor<128x128xbf16, #ttnn_layout1> {ttir.name = "wo"}) -> tensor<64x128xbf16, #ttnn_layout> {
    %0 = "ttnn.get_device"() <{mesh_offset = #ttnn<mesh_offset 0x0>, mesh_shape = #ttnn<mesh_shape 1x1>}> : () -> !ttnn.device
    %1 = "ttnn.to_memory_config"(%arg0) <{memory_config = #ttnn.memory_config<#dram, <interleaved>>}> : (tensor<64x128xbf16, #ttnn_layout>) -> tensor<64x128xbf16, #ttnn_layout>
    %2 = "ttnn.rms_norm"(%1, %arg1) <{epsilon = 9.99999974E-6 : f32, operandSegmentSizes = array<i32: 1, 1, 0>}> : (tensor<64x128xbf16, #ttnn_layout>, tensor<128xbf16>) -> tensor<64x128xbf16, #ttnn_layout>
    %3 = "ttnn.matmul"(%2, %arg2) <{transpose_a = false, transpose_b = false}> : (tensor<64x128xbf16, #ttnn_layout>, tensor<128x128xbf16, #ttnn_layout1>) -> tensor<64x128xbf16, #ttnn_layout>
    %4 = "ttnn.rms_norm"(%3) <{epsilon = 9.99999974E-6 : f32, operandSegmentSizes = array<i32: 1, 0, 0>}> : (tensor<64x128xbf16, #ttnn_layout>) -> tensor<64x128xbf16, #ttnn_layout>
    %5 = "ttnn.matmul"(%2, %arg3) <{transpose_a = false, transpose_b = false}> : (tensor<64x128xbf16, #ttnn_layout>, tensor<128x128xbf16, #ttnn_layout1>) -> tensor<64x128xbf16, #ttnn_layout>
    %6 = "ttnn.rms_norm"(%5) <{epsilon = 9.99999974E-6 : f32, operandSegmentSizes = array<i32: 1, 0, 0>}> : (tensor<64x128xbf16, #ttnn_layout>) -> tensor<64x128xbf16, #ttnn_layout>
    %7 = "ttnn.matmul"(%2, %arg4) <{transpose_a = false, transpose_b = false}> : (tensor<64x128xbf16, #ttnn_layout>, tensor<128x128xbf16, #ttnn_layout1>) -> tensor<64x128xbf16, #ttnn_layout>
    %8 = "ttnn.matmul"(%4, %6) <{transpose_a = false, transpose_b = true}> : (tensor<64x128xbf16, #ttnn_layout>, tensor<64x128xbf16, #ttnn_layout>) -> tensor<64x64xbf16, #ttnn_layout5>
    %9 = "ttnn.full"(%0) <{dtype = #ttcore.supportedDataTypes<bf16>, fill_value = 8.838835e-02 : f32, layout = #ttnn.layout<tile>, shape = #ttnn.shape<1x1>}> : (!ttnn.device) -> tensor<1x1xbf16, #ttnn_layout6>
    %10 = "ttnn.multiply"(%8, %9) : (tensor<64x64xbf16, #ttnn_layout5>, tensor<1x1xbf16, #ttnn_layout6>) -> tensor<64x64xbf16, #ttnn_layout5>
    "ttnn.deallocate"(%8) <{force = false}> : (tensor<64x64xbf16, #ttnn_layout5>) -> ()
    %11 = "ttnn.softmax"(%10) <{dimension = -1 : si32, numericStable = true}> : (tensor<64x64xbf16, #ttnn_layout5>) -> tensor<64x64xbf16, #ttnn_layout5>
    %12 = "ttnn.matmul"(%11, %7) <{transpose_a = false, transpose_b = false}> : (tensor<64x64xbf16, #ttnn_layout5>, tensor<64x128xbf16, #ttnn_layout>) -> tensor<64x128xbf16, #ttnn_layout>
    %13 = "ttnn.matmul"(%12, %arg5) <{transpose_a = false, transpose_b = false}> : (tensor<64x128xbf16, #ttnn_layout>, tensor<128x128xbf16, #ttnn_layout1>) -> tensor<64x128xbf16, #ttnn_layout>
    %14 = "ttnn.add"(%13, %arg0) : (tensor<64x128xbf16, #ttnn_layout>, tensor<64x128xbf16, #ttnn_layout>) -> tensor<64x128xbf16, #ttnn_layout>
    return %14 : tensor<64x128xbf16, #ttnn_layout>
  }
}
