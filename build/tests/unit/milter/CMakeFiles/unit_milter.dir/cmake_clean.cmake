file(REMOVE_RECURSE
  "CMakeFiles/unit_milter.dir/log_escape_test.cpp.o"
  "CMakeFiles/unit_milter.dir/log_escape_test.cpp.o.d"
  "CMakeFiles/unit_milter.dir/session_test.cpp.o"
  "CMakeFiles/unit_milter.dir/session_test.cpp.o.d"
  "unit_milter"
  "unit_milter.pdb"
  "unit_milter[1]_tests.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/unit_milter.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
