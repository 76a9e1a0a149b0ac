#include "wire/bodies.hh"
