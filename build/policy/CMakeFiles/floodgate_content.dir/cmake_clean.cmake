file(REMOVE_RECURSE
  "CMakeFiles/floodgate_content.dir/content_fingerprint.cpp.o"
  "CMakeFiles/floodgate_content.dir/content_fingerprint.cpp.o.d"
  "libfloodgate_content.a"
  "libfloodgate_content.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/floodgate_content.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
