#dram = #ttnn.buffer_type<dram>
#system_memory = #ttnn.buffer_type<system_memory>
#ttnn_layout = #ttnn.ttnn_layout<(d0, d1) -> (d0, d1), <1x1>, memref<64x128xbf16, #system_memory>>
#ttnn_layout1 = #ttnn.ttnn_layout<(d0, d1) -> (d0, d1), <1x1>, memref<2x4x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
#ttnn_layout2 = #ttnn.ttnn_layout<(d0, d1) -> (d0, d1), <1x1>, memref<4x8x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
#ttnn_layout3 = #ttnn.ttnn_layout<(d0, d1) -> (d0, d1), <1x1>, memref<1x8x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
#ttnn_layout4 = #ttnn.ttnn_layout<(d0, d1) -> (d0, d1), <1x1>, memref<2x8x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
#ttnn_layout5 = #ttnn.ttnn_layout<(d0, d1) -> (d0, d1), <1x1>, memref<1x4x!ttcore.tile<32x32, bf16>, #dram>, <interleaved>>
module @mlp attributes {ttcore.meshes = #ttcore.meshes<[<"mesh" = 1x1>]>} {
  func.func @forward(%arg0: tensor<64x128xbf16, #ttnn_layout> {ttir.name = "x"}, %arg1: tensor<128x256xbf16, #ttnn_layout2> {ttir.name = "w1"}, %arg2: tensor<1x256xbf16, #ttnn_layout3> {ttir.name = "b1"},
                     %arg3: tensor<128x256xbf16, #ttnn_layout2> {ttir.name = "w2"}, %arg4: tensor<1x128xbf16, #ttnn_layout5> {ttir.name = "b2"}) -> tensor<64x128xbf16, #ttnn_layout> {
    %0 = "ttnn.get_device"() <{mesh_offset = #ttnn<mesh_offset 0x0>, mesh_shape = #ttnn<mesh_shape 1x1>}> : () -> !ttnn.device
    %1 = "ttnn.to_layout"(%arg0) <{dtype = #ttcore.supportedDataTypes<bf16>, layout = #ttnn.layout<tile>}> : (tensor<64x128xbf16, #ttnn_layout>) -> tensor<64x128xbf16, #ttnn_layout1>
    %2 = "ttnn.to_device"(%1, %0) <{memory_config = #ttnn.memory_config<#dram, <interleaved>>}> : (tensor<64x128xbf16, #ttnn_layout1>, !ttnn.device) -> tensor<64x128xbf16, #ttnn_layout1>
    "ttnn.deallocate"(%1) <{force = false}> : (tensor<64x128xbf16, #ttnn_layout1>) -> ()
    %3 = "ttnn.linear"(%2, %arg1, %arg2) <{transpose_a = false, transpose_b = false}> : (tensor<64x128xbf16, #ttnn_layout1>, tensor<128x256xbf16, #ttnn_layout2>, tensor<1x256xbf16, #ttnn_layout3>) -> tensor<64x256xbf16, #ttnn_layout4> loc(#loc1)
    "ttnn.deallocate"(%2) <{force = false}> : (tensor<64x128xbf16, #ttnn_layout1>) -> ()
    %4 = "ttnn.relu"(%3) : (tensor<64x256xbf16, #ttnn_layout4>) -> tensor<64x256xbf16, #ttnn_layout4> loc(#loc2)
    "ttnn.deallocate"(%3) <{force = false}> : (tensor<64x256xbf16, #ttnn_layout4>) -> ()
    %5 = "ttnn.linear"(%4, %arg3, %arg4) <{transpose_a = false, transpose_b = true}> : (tensor<64x256xbf16, #ttnn_layout4>, tensor<128x256xbf16, #ttnn_layout2>, tensor<1x128xbf16, #ttnn_layout5>) -> tensor<64x128xbf16, #ttnn_layout1> loc(#loc3)
    "ttnn.deallocate"(%4) <{force = false}> : (tensor<64x256xbf16, #ttnn_layout4>) -> ()
    %6 = "ttnn.from_device"(%5) : (tensor<64x128xbf16, #ttnn_layout1>) -> tensor<64x128xbf16, #ttnn_layout1>
    %7 = "ttnn.to_layout"(%6) <{dtype = #ttcore.supportedDataTypes<bf16>, layout = #ttnn.layout<row_major>}> : (tensor<64x128xbf16, #ttnn_layout1>) -> tensor<64x128xbf16, #ttnn_layout>
    return %7 : tensor<64x128xbf16, #ttnn_layout>
  }
}
#loc1 = loc("fc1")
#loc2 = loc("relu")
#loc3 = loc("fc2")
