# The transformer's forward-pass benchmark (bench/bench_dit.py runs it beside
# diffusers on torch); built with the engine, run by hand.
add_executable(rf-bench-dit ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_dit.c)
target_compile_options(rf-bench-dit PRIVATE ${RF_WARN})
# Its sgemm baseline calls OpenBLAS directly.
target_link_libraries(rf-bench-dit PRIVATE rfdit PkgConfig::OPENBLAS)
