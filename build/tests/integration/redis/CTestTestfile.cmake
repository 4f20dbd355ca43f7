# CMake generated Testfile for 
# Source directory: /work/main/tests/integration/redis
# Build directory: /work/main/build/tests/integration/redis
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/build/tests/integration/redis/integration_redis[1]_include.cmake")
