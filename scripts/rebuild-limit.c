/* The rebuild's physical limit: the least work any rebuild of Tally's projections must do. It scans the daemon's
 * event log in key order, folds each event into an in-memory table of 64-byte per-contact states (open addressing
 * on the contact id's bytes), then writes the states in key order with MDB_APPEND into a fresh LMDB environment,
 * in one transaction with one durable commit at the end, and prints the rate as JSON. scripts/bench divides the
 * rebuild row by it (rebuild ÷ rebuild limit).
 *   cc -O2 -o rebuild-limit scripts/rebuild-limit.c -llmdb
 *   ./rebuild-limit OUT_DIR LOG_DIR       OUT_DIR: an empty directory for the states; LOG_DIR: the daemon's
 *                                         data/log (opened read-only; the daemon may be running)
 * The record format is Docs/format.md's "Event encoding, format 1": u8 format · u8 type · i64 LE at · u8 presence
 * bits · [u8 extended bits when bit 128 is set] · LEB128 length + contact · … Events without a contact
 * (rules.published, rebuild, clock) are scanned and counted but fold into no state. */
#include "limit.h"
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What a rebuild keeps per contact, at the least: a score, when it was first and last seen, a counter per
 * behaviour type (codes 1–6) and of administrative events. 64 bytes, one cache line. */
struct state {
    int64_t points;
    int64_t first_at;
    int64_t last_at;
    uint32_t by_type[7]; /* [0] unused */
    uint32_t other;
    uint32_t events;
    uint32_t flags; /* room for what a fold marks (known, fired …): 64 bytes in all */
};
_Static_assert(sizeof(struct state) == 64, "a state is 64 bytes");

/* One slot of the open-addressing table: the contact id (in the key arena), its hash, its state's index. */
struct slot {
    uint64_t hash;
    uint32_t offset; /* into the arena */
    uint32_t length;
    uint32_t state; /* 0: empty, else index + 1 */
};

static char *arena;
static size_t arena_used, arena_capacity;
static struct slot *slots;
static size_t slot_count; /* a power of two */
static struct state *states;
static uint32_t state_count, state_capacity;

static uint64_t hash_bytes(const unsigned char *bytes, size_t length) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < length; i++) h = (h ^ bytes[i]) * 0x100000001b3ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static void grow_slots(void) {
    size_t old_count = slot_count;
    struct slot *old = slots;
    slot_count = old_count ? old_count * 2 : 1 << 16;
    slots = calloc(slot_count, sizeof *slots);
    if (!slots) exit(1);
    for (size_t i = 0; i < old_count; i++) {
        if (!old[i].state) continue;
        size_t j = old[i].hash & (slot_count - 1);
        while (slots[j].state) j = (j + 1) & (slot_count - 1);
        slots[j] = old[i];
    }
    free(old);
}

/* The state of the contact `id`, created (zeroed) when absent. */
static struct state *lookup(const unsigned char *id, size_t length) {
    uint64_t hash = hash_bytes(id, length);
    size_t j = hash & (slot_count - 1);
    for (; slots[j].state; j = (j + 1) & (slot_count - 1)) {
        if (slots[j].hash == hash && slots[j].length == length && memcmp(arena + slots[j].offset, id, length) == 0)
            return &states[slots[j].state - 1];
    }
    if (arena_used + length > arena_capacity) {
        while (arena_used + length > arena_capacity) arena_capacity *= 2;
        arena = realloc(arena, arena_capacity);
    }
    if (state_count == state_capacity) {
        state_capacity *= 2;
        states = realloc(states, state_capacity * sizeof *states);
    }
    if (!arena || !states) exit(1);
    memcpy(arena + arena_used, id, length);
    slots[j] = (struct slot){hash, (uint32_t)arena_used, (uint32_t)length, state_count + 1};
    arena_used += length;
    struct state *state = &states[state_count++];
    memset(state, 0, sizeof *state);
    if ((size_t)state_count * 2 > slot_count) grow_slots(); /* load ≤ 1/2 */
    return state;
}

/* The points of one behaviour, by type code (config/rules.yaml's deltas): what a fold adds per event at least. */
static const int64_t delta[7] = {0, 10, 1, 2, 25, 3, 5};

/* Folds one record; returns 0 when it is not a format-1 event. */
static int fold(const unsigned char *p, size_t size) {
    if (size < 12 || p[0] != 1) return 0;
    unsigned type = p[1];
    int64_t at;
    memcpy(&at, p + 2, 8); /* little-endian, as x86 and arm64 are */
    size_t i = 11 + ((p[10] & 0x80) ? 1 : 0);
    uint64_t length = 0;
    for (int shift = 0; i < size; shift += 7) {
        unsigned char b = p[i++];
        length |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
    }
    if (length == 0) return 1;
    if (i + length > size) return 0;
    struct state *state = lookup(p + i, (size_t)length);
    if (!state->first_at) state->first_at = at;
    state->last_at = at;
    state->events++;
    if (type >= 1 && type <= 6) {
        state->by_type[type]++;
        state->points += delta[type];
    } else {
        state->other++;
    }
    return 1;
}

/* LMDB's default key order: bytes, then the shorter first. */
static int by_key(const void *a, const void *b) {
    const struct slot *x = a, *y = b;
    size_t n = x->length < y->length ? x->length : y->length;
    int c = memcmp(arena + x->offset, arena + y->offset, n);
    return c ? c : (int)x->length - (int)y->length;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s OUT_DIR LOG_DIR\n", argv[0]);
        return 2;
    }
    arena_capacity = 1 << 20;
    arena = malloc(arena_capacity);
    state_capacity = 1 << 15;
    states = malloc(state_capacity * sizeof *states);
    grow_slots();

    MDB_env *log = open_log(argv[2]);
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cursor;
    MDB_val k, v;

    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    check(mdb_txn_begin(log, NULL, MDB_RDONLY, &txn), "mdb_txn_begin");
    check(mdb_dbi_open(txn, "events", 0, &dbi), "mdb_dbi_open events");
    check(mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open");
    long events = 0;
    for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
        if (!fold(v.mv_data, v.mv_size)) {
            fprintf(stderr, "record %ld is not a format-1 event\n", events + 1);
            return 1;
        }
        events++;
    }
    mdb_txn_abort(txn);
    double fold_seconds = seconds_since(&start);
    if (events == 0) {
        fprintf(stderr, "no events in %s\n", argv[2]);
        return 1;
    }

    /* The contacts in key order, each written once with MDB_APPEND; one commit, one sync. */
    size_t used = 0;
    for (size_t j = 0; j < slot_count; j++)
        if (slots[j].state) slots[used++] = slots[j];
    qsort(slots, used, sizeof *slots, by_key);
    MDB_env *out;
    check(mdb_env_create(&out), "mdb_env_create");
    check(mdb_env_set_mapsize(out, (size_t)8 << 30), "mdb_env_set_mapsize");
    check(mdb_env_set_maxdbs(out, 4), "mdb_env_set_maxdbs");
    check(mdb_env_open(out, argv[1], MDB_NOTLS, 0640), "mdb_env_open out");
    check(mdb_txn_begin(out, NULL, 0, &txn), "mdb_txn_begin");
    check(mdb_dbi_open(txn, "contacts", MDB_CREATE, &dbi), "mdb_dbi_open contacts");
    for (size_t j = 0; j < used; j++) {
        MDB_val key = {slots[j].length, arena + slots[j].offset};
        MDB_val value = {sizeof(struct state), &states[slots[j].state - 1]};
        check(mdb_put(txn, dbi, &key, &value, MDB_APPEND), "mdb_put");
    }
    check(mdb_txn_commit(txn), "mdb_txn_commit");
    mdb_env_close(out);
    double seconds = seconds_since(&start);
    int64_t points = 0;
    for (uint32_t s = 0; s < state_count; s++) points += states[s].points;
    printf("{\"events\":%ld,\"contacts\":%u,\"state_bytes\":%zu,\"seconds\":%.3f,\"fold_seconds\":%.3f,"
           "\"events_per_second\":%.0f,\"checksum\":%lld}\n",
           events, state_count, sizeof(struct state), seconds, fold_seconds, events / seconds, (long long)points);
    mdb_env_close(log);
    return 0;
}
