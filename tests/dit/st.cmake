# Weights reader and collectives (cmake/dit_st.cmake).
foreach(t test_st test_coll)
  add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/dit/${t}.c)
  target_compile_options(${t} PRIVATE ${RF_WARN})
  target_link_libraries(${t} PRIVATE rfdit PkgConfig::CMOCKA)
  add_test(NAME ${t} COMMAND ${t} WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(${t} PROPERTIES LABELS unit TIMEOUT 300)
endforeach()
