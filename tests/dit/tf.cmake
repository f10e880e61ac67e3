# The Wan transformer and its layers (cmake/dit_tf.cmake).
foreach(t test_nn test_wan_tf)
  add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/dit/${t}.c)
  target_compile_options(${t} PRIVATE ${RF_WARN})
  target_link_libraries(${t} PRIVATE rfdit PkgConfig::CMOCKA)
endforeach()
add_test(NAME test_nn COMMAND test_nn)
add_test(NAME test_wan_tf COMMAND test_wan_tf ${CMAKE_CURRENT_SOURCE_DIR}/dit/fixtures)
set_tests_properties(test_nn test_wan_tf PROPERTIES LABELS unit TIMEOUT 300)
