file(REMOVE_RECURSE
  "libfloodgate_content.a"
)
