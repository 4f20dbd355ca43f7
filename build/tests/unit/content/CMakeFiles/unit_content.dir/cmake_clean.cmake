file(REMOVE_RECURSE
  "CMakeFiles/unit_content.dir/content_fingerprint_test.cpp.o"
  "CMakeFiles/unit_content.dir/content_fingerprint_test.cpp.o.d"
  "unit_content"
  "unit_content.pdb"
  "unit_content[1]_tests.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/unit_content.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
