
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/tests/unit/milter/log_escape_test.cpp" "tests/unit/milter/CMakeFiles/unit_milter.dir/log_escape_test.cpp.o" "gcc" "tests/unit/milter/CMakeFiles/unit_milter.dir/log_escape_test.cpp.o.d"
  "/work/main/tests/unit/milter/session_test.cpp" "tests/unit/milter/CMakeFiles/unit_milter.dir/session_test.cpp.o" "gcc" "tests/unit/milter/CMakeFiles/unit_milter.dir/session_test.cpp.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/main/build/milter/CMakeFiles/floodgate_milter.dir/DependInfo.cmake"
  "/work/main/build/policy/CMakeFiles/floodgate_content.dir/DependInfo.cmake"
  "/work/main/build/policy/CMakeFiles/floodgate_config_yaml.dir/DependInfo.cmake"
  "/work/main/build/policy/CMakeFiles/floodgate_policy.dir/DependInfo.cmake"
  "/work/main/build/ratelimit/CMakeFiles/floodgate_ratelimit.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
