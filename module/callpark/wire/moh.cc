#include "wire/moh.hh"
