# CMake generated Testfile for 
# Source directory: /work/main/tests/unit/milter
# Build directory: /work/main/build/tests/unit/milter
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/build/tests/unit/milter/unit_milter[1]_include.cmake")
