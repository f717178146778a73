#include "ckernels.h"

#include <stdlib.h>

#if defined(__GLIBC__) || __has_include(<malloc.h>)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

// glibc keeps freed heap memory (below its mmap threshold, which rises to 32 MiB as large blocks are freed)
// for reuse; malloc_trim also hands back the free pages in the middle of its heaps, not just the top.
int ck_return_free_pages(void) {
#if defined(__GLIBC__)
    return malloc_trim(0);
#else
    return 0;
#endif
}

enum { ck_huge_page = 2 << 20, ck_huge_buffer = 4 << 20 };

// -1: not read yet; 0 or 1: FARM_HUGEPAGES ("0" turns the advice off, to measure it).
static int ck_huge_pages_on = -1;

int ck_huge_pages(void) {
    if (ck_huge_pages_on < 0) {
        const char *setting = getenv("FARM_HUGEPAGES");
        ck_huge_pages_on = !(setting && setting[0] == '0');
    }
    return ck_huge_pages_on;
}

// Buffers of 4 MiB and more start on a 2 MiB boundary and ask for transparent huge pages (Linux's THP in its
// usual "madvise" mode gives them only on request): a fresh buffer faults in a 2 MiB page at a time instead of
// 512 small ones (the first steps after a VAE decode, which returned the pool's large buffers, refaulted
// ~0.5 s worth), and the products that stream activations miss the TLB less. Only the whole huge pages inside
// the buffer are advised, so the resident size does not grow past the request.
void *ck_alloc_buffer(size_t bytes) {
    void *pointer = NULL;
    int huge = bytes >= ck_huge_buffer && ck_huge_pages();
    if (posix_memalign(&pointer, huge ? ck_huge_page : 64, bytes ? bytes : 1) != 0) return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (huge) madvise(pointer, bytes & ~(size_t)(ck_huge_page - 1), MADV_HUGEPAGE);
#endif
    return pointer;
}

void ck_free_buffer(void *pointer) { free(pointer); }
