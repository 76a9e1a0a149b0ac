# Fails when docs/engine.md does not contain examples/engine-embed/main.cc (from its first #include on).
file(READ ${DOC} doc)
file(READ ${SRC} src)
string(FIND "${src}" "#include" start)
string(SUBSTRING "${src}" ${start} -1 body)
string(FIND "${doc}" "${body}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${DOC} no longer quotes ${SRC} verbatim; copy the program into the page again")
endif()
