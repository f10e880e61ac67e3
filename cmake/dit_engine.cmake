# The dit engine in the farm (issue #5): the engine (worker/engine_dit.c, in
# rfengine's table, which therefore links rfdit), the model directory loader
# and segment runner (dit_model.c), the worker's model cache (dit_cache.c)
# and the RGB -> I420 kernel (kernels/yuv.c).
target_sources(rfdit PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/worker/dit/dit_model.c
  ${CMAKE_CURRENT_SOURCE_DIR}/worker/dit/dit_cache.c
  ${CMAKE_CURRENT_SOURCE_DIR}/kernels/yuv.c)
target_sources(rfengine PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/worker/engine_dit.c)
target_link_libraries(rfengine PRIVATE rfdit)
