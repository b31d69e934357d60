#ifndef TALLY_CGLIBC_SHIM_H
#define TALLY_CGLIBC_SHIM_H
// What the Swift Glibc module does not export: malloc tuning (mallopt, M_ARENA_MAX, malloc_trim) and a thread's
// nice value.
#include <malloc.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/// Sets the calling thread's nice value (Linux schedules threads, not processes).
static inline int tally_set_thread_nice(int nice) {
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
}
#endif
