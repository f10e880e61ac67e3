# Sampler (flow-matching schedule, Euler and UniPC steps, guidance) and the
# initial latent noise.
target_sources(rfdit PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/worker/dit/fm_sched.c
  ${CMAKE_CURRENT_SOURCE_DIR}/worker/dit/fm_config.c
  ${CMAKE_CURRENT_SOURCE_DIR}/worker/dit/dit_noise.c)
