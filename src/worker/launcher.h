/*-------------------------------------------------------------------------
 *
 * launcher.h
 *		One bmfredis worker per database that has the extension, started by
 *		a launcher (when the library is in shared_preload_libraries).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_LAUNCHER_H
#define BMFREDIS_LAUNCHER_H

#include "postgres.h"

#include "base/shmem.h"

/* From _PG_init when preloading: the launcher, the utility hook. */
extern void LauncherRegister(void);

/*
 * For the worker of slot slotno (worker.c): attach to the slot (false if
 * it is no longer this database's, or paused), report, and ask for a stop.
 */
extern bool LauncherAttach(int slotno, Oid dboid);
extern void LauncherReport(BmfWorkerState state, int channels, const char *note);
extern bool LauncherStopRequested(void);
/* The worker found no extension in its database: not started again. */
extern void LauncherNoExtension(void);
/* The worker exits to be started again at once (its settings changed). */
extern void LauncherRestartNow(void);

#endif							/* BMFREDIS_LAUNCHER_H */
