# The Wan transformer (issue #5): its layers in kernels/nn.c, the model in
# worker/dit/wan_tf*.c.
target_sources(rfdit PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/kernels/nn.c
  ${CMAKE_CURRENT_SOURCE_DIR}/worker/dit/wan_tf.c
  ${CMAKE_CURRENT_SOURCE_DIR}/worker/dit/wan_tf_load.c)
