# One segment's denoising loop: noise, transformer passes, guidance, sampler.
target_sources(rfdit PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/worker/dit/dit_pipe.c)
