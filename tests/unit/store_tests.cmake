# libckpt store tests (included from tests/unit/CMakeLists.txt).
if(TARGET ckpt_store)
  # Host tests: io_uring on regular files in /tmp, crash enumeration, corrupted stores.
  foreach(t store_test store_region_test store_crash_test store_corrupt_test store_safety_test)
    add_executable(${t} ${t}.cc hang_watchdog.cc)
    target_link_libraries(${t} PRIVATE ckpt_store_crash GTest::gtest_main Threads::Threads)
    # A test still running at 540 s prints its threads' stacks before CTest kills it at 600.
    gtest_discover_tests(${t} DISCOVERY_TIMEOUT 30 PROPERTIES TIMEOUT 600
                         ENVIRONMENT CKPT_TEST_WATCHDOG=540)
  endforeach()
  # ckpt-tool inspect/verify on stores whose regions changed (when the tool is built).
  if(TARGET ckpt-tool)
    find_package(nlohmann_json 3 REQUIRED)
    target_compile_definitions(store_region_test PRIVATE CKPT_TOOL="$<TARGET_FILE:ckpt-tool>")
    target_link_libraries(store_region_test PRIVATE nlohmann_json::nlohmann_json)
    add_dependencies(store_region_test ckpt-tool)
  endif()
  # The fuzz target's entry point, run over a deterministic corpus by store_corrupt_test.
  target_sources(store_corrupt_test PRIVATE ${PROJECT_SOURCE_DIR}/tests/fuzz/store_fuzz.cc)
  # DAX: needs /dev/dax0.0 and /mnt/pmem, so it runs in the VM (tests/e2e/vm-store-dax.sh),
  # not under CTest.
  add_executable(store_dax_test store_dax_test.cc)
  target_link_libraries(store_dax_test PRIVATE ckpt_store_crash GTest::gtest_main Threads::Threads)
  if(EXISTS ${PROJECT_SOURCE_DIR}/tests/fuzz/CMakeLists.txt)
    add_subdirectory(${PROJECT_SOURCE_DIR}/tests/fuzz ${CMAKE_BINARY_DIR}/fuzz)
  endif()
endif()
