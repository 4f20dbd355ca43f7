# Empty compiler generated dependencies file for floodgate_config_yaml.
# This may be replaced when dependencies are built.
