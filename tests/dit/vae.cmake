# The VAE decoder's layers (test_conv) and the decoder against diffusers'
# golden outputs (test_wan_vae, given the fixture directory); see
# cmake/dit_vae.cmake.
foreach(t test_conv test_wan_vae)
  add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/dit/${t}.c)
  target_compile_options(${t} PRIVATE ${RF_WARN})
  target_link_libraries(${t} PRIVATE rfdit PkgConfig::CMOCKA)
endforeach()
add_test(NAME test_conv COMMAND test_conv WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
add_test(NAME test_wan_vae COMMAND test_wan_vae ${CMAKE_SOURCE_DIR}/tests/dit/fixtures
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(test_conv test_wan_vae PROPERTIES LABELS unit TIMEOUT 300)
