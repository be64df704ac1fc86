/*-------------------------------------------------------------------------
 *
 * bmfredis.c
 *		The module's entry point: PG_MODULE_MAGIC and _PG_init, which
 *		defines the settings and then initializes each layer, bottom up.
 *
 * The layers (src/<layer>/, see docs/design.md) are, from the bottom:
 * base, wire, pool, client, xact, feature, worker.  A file includes
 * headers of its own layer or of layers below it only (test/layers.pl
 * checks it); this file, above them all, is the one place that knows
 * every layer's init.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "base/guc.h"
#include "base/shmem.h"
#include "base/stats.h"
#include "feature/privileges.h"
#include "pool/pool.h"
#include "worker/launcher.h"
#include "xact/retry.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	BmfGucInit();
	PoolInit();
	RetryInstallHook();
	PrivInstallHook();
	if (process_shared_preload_libraries_in_progress)
	{
		BmfShmemInit();
		BmfStatsShmemInit();
		RetryColdInit();		/* after both: it reads and fills them */
		LauncherRegister();
	}
}
