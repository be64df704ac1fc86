/*-------------------------------------------------------------------------
 *
 * worker.h
 *		The bmfredis background worker.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_WORKER_H
#define BMFREDIS_WORKER_H

extern char *bmf_worker_database;
extern int	bmf_worker_naptime;

extern void BmfWorkerRegister(void);

#endif							/* BMFREDIS_WORKER_H */
