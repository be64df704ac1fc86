/* fuzz.h: shared by the libFuzzer targets and their PostgreSQL stubs. */
#ifndef BMFREDIS_FUZZ_H
#define BMFREDIS_FUZZ_H

#include <setjmp.h>

/* where an ereport(ERROR) lands; NULL makes an ERROR abort the run */
extern jmp_buf *fuzz_catch;
/* free everything palloc'd since the last call */
extern void fuzz_free_all(void);

#endif
