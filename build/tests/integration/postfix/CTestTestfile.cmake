# CMake generated Testfile for 
# Source directory: /work/main/tests/integration/postfix
# Build directory: /work/main/build/tests/integration/postfix
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
