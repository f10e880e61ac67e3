# One segment's denoising loop (cmake/dit_pipe.cmake).
add_executable(test_dit_pipe ${CMAKE_CURRENT_SOURCE_DIR}/dit/test_dit_pipe.c)
target_compile_options(test_dit_pipe PRIVATE ${RF_WARN})
target_link_libraries(test_dit_pipe PRIVATE rfdit PkgConfig::CMOCKA)
add_test(NAME test_dit_pipe COMMAND test_dit_pipe ${CMAKE_SOURCE_DIR}/tests/dit/fixtures
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(test_dit_pipe PROPERTIES LABELS unit TIMEOUT 300)
