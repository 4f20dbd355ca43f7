# Empty compiler generated dependencies file for floodgate_content.
# This may be replaced when dependencies are built.
