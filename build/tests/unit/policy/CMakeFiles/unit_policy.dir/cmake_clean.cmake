file(REMOVE_RECURSE
  "CMakeFiles/unit_policy.dir/identity_test.cpp.o"
  "CMakeFiles/unit_policy.dir/identity_test.cpp.o.d"
  "CMakeFiles/unit_policy.dir/ip_address_test.cpp.o"
  "CMakeFiles/unit_policy.dir/ip_address_test.cpp.o.d"
  "CMakeFiles/unit_policy.dir/scoring_test.cpp.o"
  "CMakeFiles/unit_policy.dir/scoring_test.cpp.o.d"
  "unit_policy"
  "unit_policy.pdb"
  "unit_policy[1]_tests.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/unit_policy.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
