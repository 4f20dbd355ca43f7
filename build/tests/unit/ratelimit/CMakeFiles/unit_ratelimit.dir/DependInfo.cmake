
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/tests/unit/ratelimit/memory_counter_store_test.cpp" "tests/unit/ratelimit/CMakeFiles/unit_ratelimit.dir/memory_counter_store_test.cpp.o" "gcc" "tests/unit/ratelimit/CMakeFiles/unit_ratelimit.dir/memory_counter_store_test.cpp.o.d"
  "/work/main/tests/unit/ratelimit/redis_url_test.cpp" "tests/unit/ratelimit/CMakeFiles/unit_ratelimit.dir/redis_url_test.cpp.o" "gcc" "tests/unit/ratelimit/CMakeFiles/unit_ratelimit.dir/redis_url_test.cpp.o.d"
  "/work/main/tests/unit/ratelimit/resilient_counter_store_test.cpp" "tests/unit/ratelimit/CMakeFiles/unit_ratelimit.dir/resilient_counter_store_test.cpp.o" "gcc" "tests/unit/ratelimit/CMakeFiles/unit_ratelimit.dir/resilient_counter_store_test.cpp.o.d"
  "/work/main/tests/unit/ratelimit/sliding_window_test.cpp" "tests/unit/ratelimit/CMakeFiles/unit_ratelimit.dir/sliding_window_test.cpp.o" "gcc" "tests/unit/ratelimit/CMakeFiles/unit_ratelimit.dir/sliding_window_test.cpp.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/main/build/ratelimit/CMakeFiles/floodgate_ratelimit.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
