# Empty dependencies file for unit_config.
# This may be replaced when dependencies are built.
