/*-------------------------------------------------------------------------
 *
 * worker.h
 *		A database's bmfredis worker (started by the launcher).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_WORKER_H
#define BMFREDIS_WORKER_H

#include "postgres.h"

/* the entry point the launcher names */
extern PGDLLEXPORT void bmfredis_worker_main(Datum arg);

#endif							/* BMFREDIS_WORKER_H */
