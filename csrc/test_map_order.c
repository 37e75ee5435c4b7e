/* test_map_order.c -- a failing map names the lowest failing row, however
 * the threads interleave (pg_tape_map's contract).
 *
 * Built with -DPG_TEST_TAKEN=pg_test_taken (make test-c), so map.c calls
 * pg_test_taken right after a thread takes a block: here the thread that
 * takes block 0 sleeps 2 ms there, standing in for a preemption at that
 * point, while the other threads run the later blocks and fail first.  The
 * block it took must still run, or the error would name a row of block 1.
 */
#include <stdio.h>
#include <time.h>
#include "pygrad.h"

void pg_test_taken(size_t block);

void pg_test_taken(size_t block)
{
    if (block == 0) {
        struct timespec ms2 = {0, 2000000};
        nanosleep(&ms2, NULL);
    }
}

int main(void)
{
    int failures = 0, calls = 0;
    pg_arena *a = pg_arena_new();
    int64_t x = pg_leaf(a, 1.0);
    int64_t y = x >= 0 ? pg_op1(a, PG_MULC, (pg_index)x, 1.0) : -1;
    int64_t root = y >= 0 ? pg_op1(a, PG_LOG, (pg_index)y, 0.0) : -1;
    pg_tape *t = NULL;
    pg_index r = (pg_index)root, in = (pg_index)x;
    if (root < 0 || pg_compile(a, &r, 1, &t) != PG_OK) {
        fprintf(stderr, "test_map_order: could not build the tape\n");
        return 1;
    }
    enum { B = 2048 };
    static double rows[B];
    for (int j = 0; j < B; j++)
        rows[j] = -1.0;                 /* log of a negative number: every row fails */
    for (int threads = 2; threads <= 4; threads++)
        for (int k = 0; k < 10; k++) {
            int64_t bad[2] = {-1, -1};
            double red = 0.0;
            int rc = pg_tape_map(t, &in, 1, rows, B, -1, 1, 0, NULL, &red, NULL, threads, bad);
            calls++;
            if (rc == PG_OK || bad[0] != 0 || bad[1] != PG_LOG) {
                if (failures++ < 5)
                    fprintf(stderr, "test_map_order: %d threads: rc %d, row %lld, op %lld "
                            "(want an error at row 0, op log)\n", threads, rc,
                            (long long)bad[0], (long long)bad[1]);
            }
        }
    pg_tape_free(t);
    pg_arena_free(a);
    printf("test_map_order: %d of %d maps named row 0\n", calls - failures, calls);
    return failures != 0;
}
