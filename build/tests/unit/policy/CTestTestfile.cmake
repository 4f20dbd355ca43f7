# CMake generated Testfile for 
# Source directory: /work/main/tests/unit/policy
# Build directory: /work/main/build/tests/unit/policy
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/build/tests/unit/policy/unit_policy[1]_include.cmake")
