# CMake generated Testfile for 
# Source directory: /work/main/tests/unit/content
# Build directory: /work/main/build/tests/unit/content
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/build/tests/unit/content/unit_content[1]_include.cmake")
