
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/policy/config.cpp" "policy/CMakeFiles/floodgate_policy.dir/config.cpp.o" "gcc" "policy/CMakeFiles/floodgate_policy.dir/config.cpp.o.d"
  "/work/main/policy/identity.cpp" "policy/CMakeFiles/floodgate_policy.dir/identity.cpp.o" "gcc" "policy/CMakeFiles/floodgate_policy.dir/identity.cpp.o.d"
  "/work/main/policy/ip_address.cpp" "policy/CMakeFiles/floodgate_policy.dir/ip_address.cpp.o" "gcc" "policy/CMakeFiles/floodgate_policy.dir/ip_address.cpp.o.d"
  "/work/main/policy/scoring.cpp" "policy/CMakeFiles/floodgate_policy.dir/scoring.cpp.o" "gcc" "policy/CMakeFiles/floodgate_policy.dir/scoring.cpp.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
