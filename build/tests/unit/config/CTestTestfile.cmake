# CMake generated Testfile for 
# Source directory: /work/main/tests/unit/config
# Build directory: /work/main/build/tests/unit/config
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/build/tests/unit/config/unit_config[1]_include.cmake")
