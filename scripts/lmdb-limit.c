/* The raw LMDB limit for Tally's ingest: appends N records of SIZE bytes under big-endian sequence keys with
 * MDB_APPEND, BATCH records per durable transaction (the default sync mode: data pages, fsync, meta page, fsync),
 * exactly as the event log does, and prints the rate as JSON. scripts/bench compares Tally against it.
 *   cc -O2 -o lmdb-limit scripts/lmdb-limit.c -llmdb && ./lmdb-limit DIR N SIZE BATCH */
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void check(int rc, const char *what) {
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", what, mdb_strerror(rc));
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s DIR EVENTS RECORD_BYTES BATCH\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    long events = atol(argv[2]), size = atol(argv[3]), batch = atol(argv[4]);
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *txn;
    check(mdb_env_create(&env), "mdb_env_create");
    check(mdb_env_set_mapsize(env, (size_t)8 << 30), "mdb_env_set_mapsize");
    check(mdb_env_set_maxdbs(env, 4), "mdb_env_set_maxdbs");
    check(mdb_env_open(env, dir, MDB_NOTLS, 0640), "mdb_env_open");
    check(mdb_txn_begin(env, NULL, 0, &txn), "mdb_txn_begin");
    check(mdb_dbi_open(txn, "events", MDB_CREATE, &dbi), "mdb_dbi_open");
    check(mdb_txn_commit(txn), "mdb_txn_commit");
    char *value = malloc(size);
    for (long i = 0; i < size; i++) value[i] = (char)(i * 31 + 7);
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    uint64_t seq = 0;
    for (long done = 0; done < events;) {
        check(mdb_txn_begin(env, NULL, 0, &txn), "mdb_txn_begin");
        for (long n = 0; n < batch && done < events; n++, done++) {
            seq++;
            unsigned char key[8];
            for (int b = 0; b < 8; b++) key[b] = (unsigned char)(seq >> (56 - 8 * b));
            memcpy(value, &seq, sizeof seq < (size_t)size ? sizeof seq : (size_t)size);
            MDB_val k = {8, key}, v = {(size_t)size, value};
            check(mdb_put(txn, dbi, &k, &v, MDB_APPEND), "mdb_put");
        }
        check(mdb_txn_commit(txn), "mdb_txn_commit");
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    double seconds = (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9;
    printf("{\"events\":%ld,\"record_bytes\":%ld,\"batch\":%ld,\"seconds\":%.3f,\"events_per_second\":%.0f}\n", events,
           size, batch, seconds, events / seconds);
    mdb_env_close(env);
    free(value);
    return 0;
}
