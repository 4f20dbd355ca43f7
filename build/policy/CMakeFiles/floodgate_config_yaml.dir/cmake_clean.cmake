file(REMOVE_RECURSE
  "CMakeFiles/floodgate_config_yaml.dir/config_loader.cpp.o"
  "CMakeFiles/floodgate_config_yaml.dir/config_loader.cpp.o.d"
  "libfloodgate_config_yaml.a"
  "libfloodgate_config_yaml.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/floodgate_config_yaml.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
