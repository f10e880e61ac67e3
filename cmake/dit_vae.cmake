# Wan2.1's causal 3D VAE decoder (issue #5): its convolution-family layers in
# kernels/conv.c, the model and its config in worker/dit/wan_vae*.c.
target_sources(rfdit PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/kernels/conv.c
  ${CMAKE_CURRENT_SOURCE_DIR}/worker/dit/wan_vae.c
  ${CMAKE_CURRENT_SOURCE_DIR}/worker/dit/wan_vae_config.c)
