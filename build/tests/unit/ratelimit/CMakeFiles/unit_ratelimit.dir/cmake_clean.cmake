file(REMOVE_RECURSE
  "CMakeFiles/unit_ratelimit.dir/memory_counter_store_test.cpp.o"
  "CMakeFiles/unit_ratelimit.dir/memory_counter_store_test.cpp.o.d"
  "CMakeFiles/unit_ratelimit.dir/redis_url_test.cpp.o"
  "CMakeFiles/unit_ratelimit.dir/redis_url_test.cpp.o.d"
  "CMakeFiles/unit_ratelimit.dir/resilient_counter_store_test.cpp.o"
  "CMakeFiles/unit_ratelimit.dir/resilient_counter_store_test.cpp.o.d"
  "CMakeFiles/unit_ratelimit.dir/sliding_window_test.cpp.o"
  "CMakeFiles/unit_ratelimit.dir/sliding_window_test.cpp.o.d"
  "unit_ratelimit"
  "unit_ratelimit.pdb"
  "unit_ratelimit[1]_tests.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/unit_ratelimit.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
