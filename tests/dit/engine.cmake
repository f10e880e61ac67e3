# The dit engine in the farm (cmake/dit_engine.cmake): parameters, frame
# step, RGB -> I420, renders on a model directory made from the fixtures.
add_executable(test_engine_dit ${CMAKE_CURRENT_SOURCE_DIR}/dit/test_engine_dit.c)
target_compile_options(test_engine_dit PRIVATE ${RF_WARN})
target_link_libraries(test_engine_dit PRIVATE rfengine rfdit PkgConfig::CMOCKA)
add_test(NAME test_engine_dit COMMAND test_engine_dit ${CMAKE_SOURCE_DIR}/tests/dit/fixtures
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(test_engine_dit PROPERTIES LABELS unit TIMEOUT 300)
