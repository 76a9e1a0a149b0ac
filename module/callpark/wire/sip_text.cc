#include "wire/sip_text.hh"
