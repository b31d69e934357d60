#ifndef TALLY_CMALLOC_SHIM_H
#define TALLY_CMALLOC_SHIM_H
// glibc's malloc tuning (mallopt, M_ARENA_MAX), which the Glibc module does not export.
#include <malloc.h>
#endif
