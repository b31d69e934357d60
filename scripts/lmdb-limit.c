/* The raw LMDB limit for Tally's ingest: appends N records under big-endian sequence keys with MDB_APPEND,
 * BATCH records per durable transaction (the default sync mode: data pages, fsync, meta page, fsync), exactly as
 * the event log does, then scans them with a cursor, and prints both rates as JSON. scripts/bench compares Tally
 * against it.
 *   cc -O2 -o lmdb-limit scripts/lmdb-limit.c -llmdb
 *   ./lmdb-limit DIR N SIZE BATCH          records of SIZE bytes
 *   ./lmdb-limit DIR N LOG BATCH           the first N records of the daemon's event log LOG (a directory), so
 *                                          that the records have exactly the sizes Tally wrote */
#include "limit.h"
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Reads up to `events` records of the log in directory `log` into one buffer; returns their count. */
static long load_records(const char *log, long events, char **data, size_t **offsets) {
    MDB_env *env = open_log(log);
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cursor;
    MDB_val k, v;
    check(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin");
    check(mdb_dbi_open(txn, "events", 0, &dbi), "mdb_dbi_open events");
    check(mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open");
    size_t capacity = 1 << 20, used = 0;
    *data = malloc(capacity);
    *offsets = malloc(sizeof(size_t) * (events + 1));
    long n = 0;
    for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0 && n < events;
         rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
        while (used + v.mv_size > capacity) *data = realloc(*data, capacity *= 2);
        memcpy(*data + used, v.mv_data, v.mv_size);
        (*offsets)[n++] = used;
        used += v.mv_size;
    }
    (*offsets)[n] = used;
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return n;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s DIR EVENTS RECORD_BYTES|LOG_DIR BATCH\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    long events = atol(argv[2]), batch = atol(argv[4]);
    struct stat info;
    char *records = NULL;
    size_t *offsets = NULL;
    long size = 0;
    if (stat(argv[3], &info) == 0 && S_ISDIR(info.st_mode)) {
        events = load_records(argv[3], events, &records, &offsets);
        if (events == 0) {
            fprintf(stderr, "no events in %s\n", argv[3]);
            return 1;
        }
    } else {
        size = atol(argv[3]);
    }
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
    char *value = malloc(size > 0 ? size : 1);
    for (long i = 0; i < size; i++) value[i] = (char)(i * 31 + 7);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    uint64_t seq = 0;
    for (long done = 0; done < events;) {
        check(mdb_txn_begin(env, NULL, 0, &txn), "mdb_txn_begin");
        for (long n = 0; n < batch && done < events; n++, done++) {
            seq++;
            unsigned char key[8];
            for (int b = 0; b < 8; b++) key[b] = (unsigned char)(seq >> (56 - 8 * b));
            MDB_val k = {8, key}, v = {(size_t)size, value};
            if (records) {
                v.mv_size = offsets[done + 1] - offsets[done];
                v.mv_data = records + offsets[done];
            } else {
                memcpy(value, &seq, sizeof seq < (size_t)size ? sizeof seq : (size_t)size);
            }
            check(mdb_put(txn, dbi, &k, &v, MDB_APPEND), "mdb_put");
        }
        check(mdb_txn_commit(txn), "mdb_txn_commit");
    }
    double append_seconds = seconds_since(&start);

    /* The scan: every record read in key order, touching its bytes (what a replay starts from). */
    MDB_cursor *cursor;
    MDB_val k, v;
    uint64_t sum = 0;
    long scanned = 0;
    clock_gettime(CLOCK_MONOTONIC, &start);
    check(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin");
    check(mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open");
    for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
        sum += ((unsigned char *)v.mv_data)[v.mv_size - 1];
        scanned++;
    }
    mdb_txn_abort(txn);
    double scan_seconds = seconds_since(&start);
    double bytes = records ? (double)offsets[events] : (double)size * events;
    printf("{\"events\":%ld,\"record_bytes\":%.1f,\"batch\":%ld,\"seconds\":%.3f,\"events_per_second\":%.0f,"
           "\"scan_events_per_second\":%.0f,\"checksum\":%llu}\n",
           events, bytes / events, batch, append_seconds, events / append_seconds, scanned / scan_seconds,
           (unsigned long long)sum);
    mdb_env_close(env);
    free(value);
    free(records);
    free(offsets);
    return 0;
}
