# Sampler and initial noise (cmake/dit_sched.cmake).
foreach(t test_fm_sched test_dit_noise)
  add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/dit/${t}.c)
  target_compile_options(${t} PRIVATE ${RF_WARN})
  target_link_libraries(${t} PRIVATE rfdit PkgConfig::CMOCKA)
  add_test(NAME ${t} COMMAND ${t} ${CMAKE_SOURCE_DIR}/tests/dit/fixtures WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(${t} PROPERTIES LABELS unit TIMEOUT 300)
endforeach()
