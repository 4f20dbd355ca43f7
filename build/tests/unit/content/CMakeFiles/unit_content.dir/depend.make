# Empty dependencies file for unit_content.
# This may be replaced when dependencies are built.
