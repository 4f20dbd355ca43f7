# Empty compiler generated dependencies file for unit_milter.
# This may be replaced when dependencies are built.
