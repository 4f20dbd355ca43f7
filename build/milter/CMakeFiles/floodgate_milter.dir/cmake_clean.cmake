file(REMOVE_RECURSE
  "CMakeFiles/floodgate_milter.dir/daemon.cpp.o"
  "CMakeFiles/floodgate_milter.dir/daemon.cpp.o.d"
  "CMakeFiles/floodgate_milter.dir/log_escape.cpp.o"
  "CMakeFiles/floodgate_milter.dir/log_escape.cpp.o.d"
  "CMakeFiles/floodgate_milter.dir/milter_callbacks.cpp.o"
  "CMakeFiles/floodgate_milter.dir/milter_callbacks.cpp.o.d"
  "CMakeFiles/floodgate_milter.dir/session.cpp.o"
  "CMakeFiles/floodgate_milter.dir/session.cpp.o.d"
  "libfloodgate_milter.a"
  "libfloodgate_milter.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/floodgate_milter.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
