// implementation in progress
#include "parkway/engine/engine.hh"
#include "parkway/engine/json.hh"
