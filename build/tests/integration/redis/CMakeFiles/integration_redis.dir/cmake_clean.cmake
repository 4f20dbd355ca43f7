file(REMOVE_RECURSE
  "CMakeFiles/integration_redis.dir/redis_counter_store_test.cpp.o"
  "CMakeFiles/integration_redis.dir/redis_counter_store_test.cpp.o.d"
  "integration_redis"
  "integration_redis.pdb"
  "integration_redis[1]_tests.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/integration_redis.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
