file(REMOVE_RECURSE
  "libfloodgate_policy.a"
)
