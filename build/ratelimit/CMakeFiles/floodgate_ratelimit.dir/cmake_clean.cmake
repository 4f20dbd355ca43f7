file(REMOVE_RECURSE
  "CMakeFiles/floodgate_ratelimit.dir/memory_counter_store.cpp.o"
  "CMakeFiles/floodgate_ratelimit.dir/memory_counter_store.cpp.o.d"
  "CMakeFiles/floodgate_ratelimit.dir/redis_counter_store.cpp.o"
  "CMakeFiles/floodgate_ratelimit.dir/redis_counter_store.cpp.o.d"
  "CMakeFiles/floodgate_ratelimit.dir/redis_url.cpp.o"
  "CMakeFiles/floodgate_ratelimit.dir/redis_url.cpp.o.d"
  "CMakeFiles/floodgate_ratelimit.dir/resilient_counter_store.cpp.o"
  "CMakeFiles/floodgate_ratelimit.dir/resilient_counter_store.cpp.o.d"
  "CMakeFiles/floodgate_ratelimit.dir/sliding_window.cpp.o"
  "CMakeFiles/floodgate_ratelimit.dir/sliding_window.cpp.o.d"
  "libfloodgate_ratelimit.a"
  "libfloodgate_ratelimit.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/floodgate_ratelimit.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
