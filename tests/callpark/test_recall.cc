#include "park_env.hh"
