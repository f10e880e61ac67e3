# Weights (safetensors reader) and collectives (CPU ranks-as-threads backend).
target_sources(rfdit PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/worker/dit/st.c
  ${CMAKE_CURRENT_SOURCE_DIR}/worker/dit/coll.c
  ${CMAKE_CURRENT_SOURCE_DIR}/worker/dit/coll_cpu.c)
