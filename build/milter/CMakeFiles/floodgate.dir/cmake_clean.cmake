file(REMOVE_RECURSE
  "CMakeFiles/floodgate.dir/main.cpp.o"
  "CMakeFiles/floodgate.dir/main.cpp.o.d"
  "floodgate"
  "floodgate.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/floodgate.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
