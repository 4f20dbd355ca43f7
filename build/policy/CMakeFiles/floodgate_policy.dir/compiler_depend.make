# Empty compiler generated dependencies file for floodgate_policy.
# This may be replaced when dependencies are built.
