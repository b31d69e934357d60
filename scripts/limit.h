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

/* The daemon's log environment (`data/log`), opened read-only: the daemon may be running. */
static MDB_env *open_log(const char *path) {
    MDB_env *env;
    check(mdb_env_create(&env), "mdb_env_create");
    check(mdb_env_set_maxdbs(env, 16), "mdb_env_set_maxdbs");
    check(mdb_env_set_mapsize(env, 0), "mdb_env_set_mapsize");
    check(mdb_env_open(env, path, MDB_NOTLS | MDB_RDONLY, 0640), "mdb_env_open log");
    return env;
}

#endif
