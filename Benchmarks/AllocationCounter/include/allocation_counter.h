#ifndef PERFGATE_ALLOCATION_COUNTER_H
#define PERFGATE_ALLOCATION_COUNTER_H

#include <stdint.h>

/// Allocations made (malloc, calloc, realloc, the aligned forms) and bytes asked for, by every
/// thread, since the process started counting.
typedef struct {
    uint64_t allocations;
    uint64_t bytes;
} allocation_totals;

/// Starts counting (nothing is counted before), adding to the totals so far.
void allocation_counter_start(void);

/// Stops counting, so that timed code pays nothing for it.
void allocation_counter_stop(void);

/// The totals so far.
allocation_totals allocation_counter_read(void);

#endif
