/* What the raw C probes of the benchmark suite share (scripts/lmdb-limit.c, scripts/rebuild-limit.c): LMDB's
 * return codes checked, and the monotonic clock. */
#ifndef TALLY_LIMIT_H
#define TALLY_LIMIT_H

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void check(int rc, const char *what) {
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", what, mdb_strerror(rc));
        exit(1);
    }
}

static double seconds_since(const struct timespec *start) {
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    return (end.tv_sec - start->tv_sec) + (end.tv_nsec - start->tv_nsec) / 1e9;
}

#endif
