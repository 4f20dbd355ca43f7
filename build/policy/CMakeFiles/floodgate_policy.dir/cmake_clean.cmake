file(REMOVE_RECURSE
  "CMakeFiles/floodgate_policy.dir/config.cpp.o"
  "CMakeFiles/floodgate_policy.dir/config.cpp.o.d"
  "CMakeFiles/floodgate_policy.dir/identity.cpp.o"
  "CMakeFiles/floodgate_policy.dir/identity.cpp.o.d"
  "CMakeFiles/floodgate_policy.dir/ip_address.cpp.o"
  "CMakeFiles/floodgate_policy.dir/ip_address.cpp.o.d"
  "CMakeFiles/floodgate_policy.dir/scoring.cpp.o"
  "CMakeFiles/floodgate_policy.dir/scoring.cpp.o.d"
  "libfloodgate_policy.a"
  "libfloodgate_policy.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/floodgate_policy.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
