file(REMOVE_RECURSE
  "libfloodgate_ratelimit.a"
)
