# Empty compiler generated dependencies file for floodgate_milter.
# This may be replaced when dependencies are built.
