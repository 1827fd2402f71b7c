/* threads.c - the thread count for every parallel loop and for oneDNN.
 * One knob, set once by the program; 0 means all cores. */
#include "ganedit.h"
#include "kernels/kernels.h"

#include <omp.h>

static int n_threads = 0;

void ge_set_num_threads(int n) {
    n_threads = n > 0 ? n : 0;
    omp_set_num_threads(n_threads > 0 ? n_threads : omp_get_num_procs());
}

int ge_get_num_threads(void) { return n_threads > 0 ? n_threads : omp_get_max_threads(); }

int ge_threads(void) { return ge_get_num_threads(); }
