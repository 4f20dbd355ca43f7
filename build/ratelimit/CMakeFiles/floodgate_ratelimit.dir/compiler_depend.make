# Empty compiler generated dependencies file for floodgate_ratelimit.
# This may be replaced when dependencies are built.
