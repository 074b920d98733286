// Counts heap allocations of the benchmark process by defining the allocator's entry points in the
// executable itself: the dynamic linker binds every library's calls (the Swift runtime's included)
// to these, which count and hand over to glibc's own implementations. No preloaded library is
// needed, so the benchmark counts the same way wherever it runs. Linux with glibc only.
#define _GNU_SOURCE
#include "allocation_counter.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void *pointer);

static atomic_bool counting;
static atomic_uint_fast64_t allocations;
static atomic_uint_fast64_t bytes;

static inline void count(size_t size) {
    if (atomic_load_explicit(&counting, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&bytes, size, memory_order_relaxed);
    }
}

void allocation_counter_start(void) { atomic_store(&counting, 1); }

void allocation_counter_stop(void) { atomic_store(&counting, 0); }

allocation_totals allocation_counter_read(void) {
    allocation_totals totals = {atomic_load(&allocations), atomic_load(&bytes)};
    return totals;
}

void *malloc(size_t size) {
    count(size);
    return __libc_malloc(size);
}

void *calloc(size_t count_, size_t size) {
    count(count_ * size);
    return __libc_calloc(count_, size);
}

// A reallocation is counted as an allocation: it may move the block, and growing arrays are what
// the counts are meant to show.
void *realloc(void *pointer, size_t size) {
    count(size);
    return __libc_realloc(pointer, size);
}

void free(void *pointer) { __libc_free(pointer); }

void *memalign(size_t alignment, size_t size) {
    count(size);
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    count(size);
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **result, size_t alignment, size_t size) {
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
    count(size);
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL) return ENOMEM;
    *result = pointer;
    return 0;
}
