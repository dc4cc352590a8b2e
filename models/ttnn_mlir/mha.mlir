#dram = #ttnn.buffer_type<dram>
#system_memory = #ttnn.buffer_type<system_memory>
#ttnn_layout = #ttnn.ttnn_layout<(d0, d1) -> (d0, d1), <1x1>, memref<2x4x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
#ttnn_layout1 = #ttnn.ttnn_layout<(d0, d1) -> (d0, d1), <1x1>, memref<4x4x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
#ttnn_layout2 = #ttnn.ttnn_layout<(d0, d1, d2) -> (d0, d1, d2), <1x1>, memref<4x2x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
#ttnn_layout3 = #ttnn.ttnn_layout<(d0, d1, d2) -> (d0, d1, d2), <1x1>, memref<4x2x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
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
    %4 = "ttnn.reshape"(%3) <{shape = [64 : i32, 2 : i32, 64 : i32]}> : (tensor<64x128xbf16, #ttnn_layout>) -> tensor<64x2x64xbf16, #ttnn_layout2>
    "ttnn.deallocate"(%3) <{force = false}> : (tensor<64x128xbf16, #ttnn_layout>) -> ()
    %5 = "ttnn.permute"(%4) <{pad_value = 0.000000e+00 : f32, permutation = array<i64: 1, 0, 2>}> : (tensor<64x2x64xbf16, #ttnn_layout2>) -> tensor<2x64x64xbf16, #ttnn_layout3>
    %6 = "ttnn.rms_norm"(%5) <{epsilon = 9.99999974E-6 : f32, operandSegmentSizes = array<i32: 1, 0, 0>}> : (tensor<2x64x64xbf16, #ttnn_layout3>) -> tensor<2x64x64xbf16, #ttnn_layout3>
    %7 = "ttnn.matmul"(%2, %arg3) <{transpose_a = false, transpose_b = false}> : (tensor<64x128xbf16, #ttnn_layout>, tensor<128x128xbf16, #ttnn_layout1>) -> tensor<64x128xbf16, #ttnn_layout>
    %8 = "ttnn.reshape"(%7) <{shape = [64 : i32, 2 : i32, 64 : i32]}> : (tensor<64x128xbf16, #ttnn_layout>) -> tensor<64x2x64xbf16, #ttnn_layout2>
    "ttnn.deallocate"(%7) <{force = false}> : (tensor<64x128xbf16, #ttnn_layout>) -> ()
    %9 = "ttnn.permute"(%8) <{pad_value = 0.000000e+00 : f32, permutation = array<i64: 1, 0, 2>}> : (tensor<64x2x64xbf16, #ttnn_layout2>) -> tensor<2x64x64xbf16, #ttnn_layout3>
    %10 = "ttnn.rms_norm"(%9) <{epsilon = 9.99999974E-6 : f32, operandSegmentSizes = array<i32: 1, 0, 0>}> : (tensor<2x64x64xbf16, #ttnn_layout3>) -> tensor<2x64x64xbf16, #ttnn_layout3>
    %11 = "ttnn.matmul"(%2, %arg4) <{transpose_a = false, transpose_b = false}> : (tensor<64x128xbf16, #ttnn_layout>, tensor<128x128xbf16, #ttnn_layout1>) -> tensor<64x128xbf16, #ttnn_layout>
    %12 = "ttnn.reshape"(%11) <{shape = [64 : i32, 2 : i32, 64 : i32]}> : (tensor<64x128xbf16, #ttnn_layout>) -> tensor<64x2x64xbf16, #ttnn_layout2>
    "ttnn.deallocate"(%11) <{force = false}> : (tensor<64x128xbf16, #ttnn_layout>) -> ()
    %13 = "ttnn.permute"(%12) <{pad_value = 0.000000e+00 : f32, permutation = array<i64: 1, 0, 2>}> : (tensor<64x2x64xbf16, #ttnn_layout2>) -> tensor<2x64x64xbf16, #ttnn_layout3>
    %14 = "ttnn.matmul"(%6, %10) <{transpose_a = false, transpose_b = true}> : (tensor<2x64x64xbf16, #ttnn_layout3>, tensor<2x64x64xbf16, #ttnn_layout3>) -> tensor<2x64x64xbf16, #ttnn_layout3>
    %15 = "ttnn.full"(%0) <{dtype = #ttcore.supportedDataTypes<bf16>, fill_value = 1.250000e-01 : f32, layout = #ttnn.layout<tile>, shape = #ttnn.shape<1x1x1>}> : (!ttnn.device) -> tensor<1x1x1xbf16, #ttnn_layout4>
    %16 = "ttnn.multiply"(%14, %15) : (tensor<2x64x64xbf16, #ttnn_layout3>, tensor<1x1x1xbf16, #ttnn_layout4>) -> tensor<2x64x64xbf16, #ttnn_layout3>
    "ttnn.deallocate"(%14) <{force = false}> : (tensor<2x64x64xbf16, #ttnn_layout3>) -> ()
    %17 = "ttnn.softmax"(%16) <{dimension = -1 : si32, numericStable = true}> : (tensor<2x64x64xbf16, #ttnn_layout3>) -> tensor<2x64x64xbf16, #ttnn_layout3>
    %18 = "ttnn.matmul"(%17, %13) <{transpose_a = false, transpose_b = false}> : (tensor<2x64x64xbf16, #ttnn_layout3>, tensor<2x64x64xbf16, #ttnn_layout3>) -> tensor<2x64x64xbf16, #ttnn_layout3>
    %19 = "ttnn.permute"(%18) <{permutation = array<i64: 1, 0, 2>}> : (tensor<2x64x64xbf16, #ttnn_layout3>) -> tensor<64x2x64xbf16, #ttnn_layout2>
    %20 = "ttnn.reshape"(%19) <{shape = [64 : i32, 128 : i32]}> : (tensor<64x2x64xbf16, #ttnn_layout2>) -> tensor<64x128xbf16, #ttnn_layout>
    %21 = "ttnn.matmul"(%20, %arg5) <{transpose_a = false, transpose_b = false}> : (tensor<64x128xbf16, #ttnn_layout>, tensor<128x128xbf16, #ttnn_layout1>) -> tensor<64x128xbf16, #ttnn_layout>
    %22 = "ttnn.add"(%21, %arg0) : (tensor<64x128xbf16, #ttnn_layout>, tensor<64x128xbf16, #ttnn_layout>) -> tensor<64x128xbf16, #ttnn_layout>
    return %22 : tensor<64x128xbf16, #ttnn_layout>
  }
}
