# Empty dependencies file for floodgate.
# This may be replaced when dependencies are built.
