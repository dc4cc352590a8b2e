module @conv {
  func.func @forward(%arg0: tensor<1x1x128x16xbf16> {ttir.name = "x"}, %arg1: tensor<32x16x3x3xbf16> {ttir.name = "weight"}, %arg2: tensor<1x1x1x32xbf16> {ttir.name = "bias"}) -> tensor<1x1x128x32xbf16> {
    %0 = "ttnn.get_device"() <{mesh_shape = #ttnn<mesh_shape 1x1>}> : () -> !ttnn.device
    %1 = "ttnn.conv2d"(%arg0, %arg1, %arg2, %0)
        <{
          batch_size = 2 : i32,
          dilation = array<i32: 1, 1>,
          groups = 1 : i32,
          in_channels = 16 : i32,
          input_height = 8 : i32,
          input_width = 8 : i32,
          kernel_size = array<i32: 3, 3>,
          out_channels = 32 : i32,
          padding = array<i32: 1, 1>,
          stride = array<i32: 1, 1>,
          dtype = #ttcore.supportedDataTypes<bf16>
        }> : (tensor<1x1x128x16xbf16>, tensor<32x16x3x3xbf16>, tensor<1x1x1x32xbf16>, !ttnn.device) -> tensor<1x1x128x32xbf16>
    %2 = "ttnn.relu"(%1) : (tensor<1x1x128x32xbf16>) -> tensor<1x1x128x32xbf16>
    return %2 : tensor<1x1x128x32xbf16>
  }
}
