# Empty compiler generated dependencies file for unit_policy.
# This may be replaced when dependencies are built.
