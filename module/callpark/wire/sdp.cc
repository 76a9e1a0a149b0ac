#include "wire/sdp.hh"
