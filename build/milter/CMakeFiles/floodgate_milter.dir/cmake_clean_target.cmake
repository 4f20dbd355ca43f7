file(REMOVE_RECURSE
  "libfloodgate_milter.a"
)
