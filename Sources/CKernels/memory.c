#include "ckernels.h"

#if defined(__GLIBC__) || __has_include(<malloc.h>)
#include <malloc.h>
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
