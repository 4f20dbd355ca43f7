file(REMOVE_RECURSE
  "libfloodgate_config_yaml.a"
)
