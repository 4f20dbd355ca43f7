# Empty compiler generated dependencies file for unit_ratelimit.
# This may be replaced when dependencies are built.
