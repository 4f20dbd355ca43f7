# Empty dependencies file for unit_milter.
# This may be replaced when dependencies are built.
