file(REMOVE_RECURSE
  "CMakeFiles/unit_config.dir/config_loader_test.cpp.o"
  "CMakeFiles/unit_config.dir/config_loader_test.cpp.o.d"
  "unit_config"
  "unit_config.pdb"
  "unit_config[1]_tests.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/unit_config.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
