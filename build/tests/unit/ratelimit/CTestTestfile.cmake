# CMake generated Testfile for 
# Source directory: /work/main/tests/unit/ratelimit
# Build directory: /work/main/build/tests/unit/ratelimit
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/build/tests/unit/ratelimit/unit_ratelimit[1]_include.cmake")
