
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/ratelimit/memory_counter_store.cpp" "ratelimit/CMakeFiles/floodgate_ratelimit.dir/memory_counter_store.cpp.o" "gcc" "ratelimit/CMakeFiles/floodgate_ratelimit.dir/memory_counter_store.cpp.o.d"
  "/work/main/ratelimit/redis_counter_store.cpp" "ratelimit/CMakeFiles/floodgate_ratelimit.dir/redis_counter_store.cpp.o" "gcc" "ratelimit/CMakeFiles/floodgate_ratelimit.dir/redis_counter_store.cpp.o.d"
  "/work/main/ratelimit/redis_url.cpp" "ratelimit/CMakeFiles/floodgate_ratelimit.dir/redis_url.cpp.o" "gcc" "ratelimit/CMakeFiles/floodgate_ratelimit.dir/redis_url.cpp.o.d"
  "/work/main/ratelimit/resilient_counter_store.cpp" "ratelimit/CMakeFiles/floodgate_ratelimit.dir/resilient_counter_store.cpp.o" "gcc" "ratelimit/CMakeFiles/floodgate_ratelimit.dir/resilient_counter_store.cpp.o.d"
  "/work/main/ratelimit/sliding_window.cpp" "ratelimit/CMakeFiles/floodgate_ratelimit.dir/sliding_window.cpp.o" "gcc" "ratelimit/CMakeFiles/floodgate_ratelimit.dir/sliding_window.cpp.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
