/*-------------------------------------------------------------------------
 *
 * durable.c
 *		The retry queue across a restart of PostgreSQL, and the cold start
 *		after a crash.
 *
 * A clean shutdown (smart or fast) writes what the queue still holds to
 * pg_stat/bmfredis_retry.queue, as pg_stat_statements saves its
 * statistics: the postmaster does it as it exits, when every other
 * process is gone (a backend whose COMMIT could not send has queued its
 * work by then: the send runs with interrupts held).  The next start reads
 * it back into the ring and removes it.  The file names the cluster it
 * belongs to (the system identifier) and carries a CRC; a damaged or
 * foreign file is not trusted: a WARNING, and a cold start.
 *
 * A cold start is what bmfredis does when it cannot know what was
 * pending: after a backend crashed (the postmaster then restarts every
 * process on new shared memory, and the ring is gone with the work the
 * crashed backends held), after PostgreSQL stopped without a shutdown
 * checkpoint (the control file still says "in production": a crash of
 * the whole server, an immediate shutdown, a kill), or when the saved
 * queue cannot be trusted or does not fit.  Each database's namespace
 * (bmfredis.db and bmfredis.key_prefix, as its first process sees them) is
 * then invalidated once, before that database reads from Redis: its
 * worker does it as it starts, and a backend whose first Redis call comes
 * before that does it too, for its own prefix and its settings' before
 * any SET (retry.c, RetryColdCheck).
 *
 * A standby commits nothing: it never starts cold on its own account (a
 * new standby's control file, copied from a running primary by a base
 * backup, looks like a crash) and sends no invalidation of its own.  But
 * when it leaves recovery (a promotion, or the end of a point-in-time
 * recovery), what the old primary had still to send, or what a restored
 * backup is older than, is unknown: that is a cold start (RetryColdCheck
 * notices it in whichever process runs first).
 *
 * A marker, pg_stat/bmfredis_retry.running, is written (durably) at every
 * start and removed only once a shutdown has saved the queue durably: a
 * start that finds it knows the last run ended without that save (a
 * failed write, a full disk, a machine lost before the rename reached the
 * disk), even when the control file says the shutdown was clean.
 *
 * File layout: DurableHeader, the entries as the ring holds them, the
 * namespaces waiting (BmfNamespace each), the databases done with a cold
 * start still under way (Oid each).  The CRC covers all of it, the header
 * with its crc field zeroed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "access/xlog.h"
#include "catalog/pg_control.h"
#include "common/controldata_utils.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/pg_crc32c.h"
#include "storage/fd.h"
#include "storage/ipc.h"

#include "base/shmem.h"
#include "xact/retry.h"

#define DURABLE_FILE PGSTAT_STAT_PERMANENT_DIRECTORY "/bmfredis_retry.queue"
#define RUNNING_FILE PGSTAT_STAT_PERMANENT_DIRECTORY "/bmfredis_retry.running"
#define DURABLE_MAGIC 0x51464d42	/* "BMFQ" */
#define DURABLE_VERSION 1

typedef struct DurableHeader
{
	uint32		magic;
	uint32		version;
	uint64		sysid;			/* the cluster's system identifier */
	uint32		entries;
	uint32		entry_bytes;
	uint32		nnamespaces;
	uint32		cold;			/* a cold start was under way */
	uint32		ncold_done;
	char		cold_reason[128];
	pg_crc32c	crc;
} DurableHeader;

static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* The control file: did the last run end without a shutdown checkpoint? */
static bool
control_unclean(uint64 *sysid, bool *was_recovering)
{
	bool		crc_ok;
	ControlFileData *cf = get_controlfile(DataDir, &crc_ok);
	bool		unclean;

	*sysid = cf->system_identifier;
	/* a primary that was running, stopping or recovering from a crash */
	unclean = (cf->state == DB_IN_PRODUCTION || cf->state == DB_SHUTDOWNING ||
			   cf->state == DB_IN_CRASH_RECOVERY);
	/* a standby (or an archive recovery) when it stopped */
	if (was_recovering)
		*was_recovering = (cf->state == DB_SHUTDOWNED_IN_RECOVERY ||
						   cf->state == DB_IN_ARCHIVE_RECOVERY);
	pfree(cf);
	return unclean;
}

static void
start_cold(BmfSharedState *sh, const char *reason)
{
	RetryColdBegin(sh, reason, false);
	ereport(LOG,
			(errmsg("bmfredis: the cache starts cold: %s", reason),
			 errdetail("Each database's namespace (bmfredis.key_prefix) will be invalidated once Redis answers, before the database reads from it.")));
}

/* The marker of a run whose queue is not saved yet (see the top) */
static void
write_marker(void)
{
	int			fd = OpenTransientFile(RUNNING_FILE, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);

	if (fd < 0 || pg_fsync(fd) != 0 || CloseTransientFile(fd) != 0 ||
		fsync_fname_ext(PGSTAT_STAT_PERMANENT_DIRECTORY, true, false, LOG) != 0)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("bmfredis: could not write \"%s\": %m", RUNNING_FILE),
				 errdetail("A shutdown that fails to save the retry queue will not be noticed at the next start.")));
}

static void
remove_marker(void)
{
	if (unlink(RUNNING_FILE) == 0)
		(void) fsync_fname_ext(PGSTAT_STAT_PERMANENT_DIRECTORY, true, false, LOG);
}

static pg_crc32c
durable_crc(const DurableHeader *hdr, const char *payload, Size len)
{
	DurableHeader h = *hdr;
	pg_crc32c	crc;

	h.crc = 0;
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, &h, sizeof(h));
	COMP_CRC32C(crc, payload, len);
	FIN_CRC32C(crc);
	return crc;
}

/* ---- at shutdown ---- */

static bool
write_file(const DurableHeader *hdr, const StringInfoData *payload)
{
	const char *tmp = DURABLE_FILE ".tmp";
	FILE	   *f = AllocateFile(tmp, PG_BINARY_W);

	if (f == NULL ||
		fwrite(hdr, sizeof(*hdr), 1, f) != 1 ||
		(payload->len > 0 && fwrite(payload->data, payload->len, 1, f) != 1) ||
		fflush(f) != 0 || pg_fsync(fileno(f)) != 0)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("bmfredis: could not write \"%s\": %m", tmp)));
		if (f)
			FreeFile(f);
		unlink(tmp);
		return false;
	}
	if (FreeFile(f) != 0)
	{
		unlink(tmp);
		return false;
	}
	return durable_rename(tmp, DURABLE_FILE, LOG) == 0;
}

/* Will this start recover as a standby, or to a target (its end a promotion)? */
static bool
recovering_from_signal(void)
{
	struct stat st;

	return stat(STANDBY_SIGNAL_FILE, &st) == 0 || stat(RECOVERY_SIGNAL_FILE, &st) == 0;
}

static void
save_queue(int code, Datum arg)
{
	BmfSharedState *sh = BmfShared();
	DurableHeader hdr;
	StringInfoData payload;
	uint64		sysid;

	(void) arg;
	if (code != 0 || sh == NULL)
		return;					/* a crash: the next start is cold anyway */
	memset(&hdr, 0, sizeof(hdr));
	initStringInfo(&payload);
	hdr.entries = RetrySerialize(&payload);
	hdr.entry_bytes = payload.len;
	hdr.nnamespaces = sh->nnamespaces;
	appendBinaryStringInfo(&payload, (const char *) sh->namespaces,
						   sizeof(BmfNamespace) * sh->nnamespaces);
	/* promoted, and stopped before any process began the cold start */
	if (sh->cold_at_promotion && !recovering_from_signal())
	{
		sh->cold_at_promotion = false;
		RetryColdBegin(sh, "this server left recovery (a standby promoted, or a point-in-time recovery ended)", true);
	}
	if (sh->cold && !recovering_from_signal())
	{
		hdr.cold = 1;
		hdr.ncold_done = sh->ncold_done;
		strlcpy(hdr.cold_reason, sh->cold_reason, sizeof(hdr.cold_reason));
		appendBinaryStringInfo(&payload, (const char *) sh->cold_done,
							   sizeof(Oid) * sh->ncold_done);
	}
	if (hdr.entries == 0 && hdr.nnamespaces == 0 && !hdr.cold)
	{
		if (unlink(DURABLE_FILE) == 0 || errno == ENOENT)
			remove_marker();
		return;
	}
	(void) control_unclean(&sysid, NULL);
	hdr.magic = DURABLE_MAGIC;
	hdr.version = DURABLE_VERSION;
	hdr.sysid = sysid;
	hdr.crc = durable_crc(&hdr, payload.data, payload.len);
	if (write_file(&hdr, &payload))
	{
		remove_marker();
		ereport(LOG,
				(errmsg("bmfredis: saved %u invalidations and messages still to send, and %u namespaces to invalidate, in \"%s\"",
						hdr.entries, hdr.nnamespaces, DURABLE_FILE),
				 errdetail("They are sent once PostgreSQL has started again and Redis answers.")));
	}
	else
		ereport(LOG,
				(errmsg("bmfredis: could not save the retry queue (%u invalidations and messages, %u namespaces)",
						hdr.entries, hdr.nnamespaces),
				 errdetail("The next start finds \"%s\" and starts the cache cold.", RUNNING_FILE)));
}

/* ---- at start ---- */

typedef enum LoadResult
{
	LOAD_NONE,
	LOAD_OK,
	LOAD_DAMAGED
} LoadResult;

/* Check what the file holds and put it back; why not, in *why. */
static LoadResult
restore(BmfSharedState *sh, const char *buf, Size len, uint64 sysid,
		const char **why)
{
	DurableHeader hdr;
	const char *payload = buf + sizeof(hdr);
	Size		plen = len - sizeof(hdr);
	Size		ns_bytes;
	int			lost;

	if (len < sizeof(hdr))
		return (*why = "it is too short", LOAD_DAMAGED);
	memcpy(&hdr, buf, sizeof(hdr));
	if (hdr.magic != DURABLE_MAGIC || hdr.version != DURABLE_VERSION)
		return (*why = "it is not a bmfredis queue of this version", LOAD_DAMAGED);
	if (hdr.sysid != sysid)
		return (*why = "it belongs to another database cluster", LOAD_DAMAGED);
	if (durable_crc(&hdr, payload, plen) != hdr.crc)
		return (*why = "its checksum does not match", LOAD_DAMAGED);
	ns_bytes = sizeof(BmfNamespace) * (Size) hdr.nnamespaces;
	if (hdr.nnamespaces > BMF_MAX_NAMESPACES || hdr.ncold_done > BMF_MAX_COLD ||
		(Size) hdr.entry_bytes + ns_bytes + sizeof(Oid) * (Size) hdr.ncold_done != plen)
		return (*why = "its sizes do not add up", LOAD_DAMAGED);
	if (!RetryRestore(payload, hdr.entry_bytes, (int) hdr.entries, &lost))
		return (*why = "an entry is malformed", LOAD_DAMAGED);
	memcpy(sh->namespaces, payload + hdr.entry_bytes, ns_bytes);
	sh->nnamespaces = hdr.nnamespaces;
	if (hdr.cold)
	{
		sh->cold = true;
		sh->cold_epoch++;
		hdr.cold_reason[sizeof(hdr.cold_reason) - 1] = '\0';
		strlcpy(sh->cold_reason, hdr.cold_reason, sizeof(sh->cold_reason));
		sh->ncold_done = hdr.ncold_done;
		memcpy(sh->cold_done, payload + hdr.entry_bytes + ns_bytes,
			   sizeof(Oid) * hdr.ncold_done);
	}
	ereport(LOG,
			(errmsg("bmfredis: %u invalidations and messages saved at the last shutdown are queued again, with %u namespaces to invalidate",
					hdr.entries - lost, hdr.nnamespaces)));
	if (lost > 0)
		start_cold(sh, psprintf("%d entries saved at the last shutdown did not fit bmfredis.retry_queue_size", lost));
	return LOAD_OK;
}

static LoadResult
load_queue(BmfSharedState *sh, uint64 sysid)
{
	struct stat st;
	FILE	   *f;
	char	   *buf;
	const char *why = NULL;
	LoadResult	r;
	Size		limit = (Size) sh->ring_size * 2 + sizeof(DurableHeader) +
		sizeof(BmfNamespace) * BMF_MAX_NAMESPACES + sizeof(Oid) * BMF_MAX_COLD;

	if (stat(DURABLE_FILE, &st) != 0)
		return LOAD_NONE;
	f = AllocateFile(DURABLE_FILE, PG_BINARY_R);
	if (f == NULL)
		why = "it cannot be opened";
	else if ((Size) st.st_size > limit)
		why = "it is larger than any queue bmfredis writes";
	else
	{
		buf = palloc(Max(st.st_size, 1));
		if (fread(buf, 1, st.st_size, f) != (size_t) st.st_size)
			why = "it cannot be read";
		else if ((r = restore(sh, buf, st.st_size, sysid, &why)) == LOAD_OK)
		{
			FreeFile(f);
			pfree(buf);
			(void) unlink(DURABLE_FILE);
			return LOAD_OK;
		}
		pfree(buf);
	}
	if (f)
		FreeFile(f);
	ereport(WARNING,
			(errmsg("bmfredis: ignoring \"%s\": %s", DURABLE_FILE, why),
			 errdetail("What it held is not trusted; the cache starts cold instead.")));
	(void) durable_rename(DURABLE_FILE, DURABLE_FILE ".damaged", LOG);
	return LOAD_DAMAGED;
}


static void
durable_startup(void)
{
	static bool started = false;
	BmfSharedState *sh;
	uint64		sysid;
	bool		unclean;
	bool		was_recovering;
	bool		standby;
	struct stat st;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	if (IsUnderPostmaster || (sh = BmfShared()) == NULL)
		return;
	unclean = control_unclean(&sysid, &was_recovering);
	standby = recovering_from_signal();
	if (standby)
	{
		/*
		 * A standby has nothing to invalidate until it is promoted (a base
		 * backup's control file looks like a crash: it is not one of ours).
		 */
		sh->cold_at_promotion = true;
		if (!started)
			(void) load_queue(sh, sysid);
		/* a cold state saved by a primary this was made from is not ours */
		sh->cold = false;
		ereport(LOG,
				(errmsg("bmfredis: this server starts in recovery: its cache starts cold when it is promoted, not before")));
	}
	else if (started)
	{
		/* new shared memory after a crash: the old ring is gone */
		if (unclean)
			start_cold(sh, "a PostgreSQL process crashed and the server restarted its processes");
	}
	else
	{
		bool		saved = stat(RUNNING_FILE, &st) != 0;

		if (load_queue(sh, sysid) == LOAD_DAMAGED)
			start_cold(sh, "the retry queue saved at the last shutdown cannot be trusted");
		if (!saved)
			start_cold(sh, "the last shutdown did not save the retry queue");
		if (unclean)
			start_cold(sh, "PostgreSQL did not shut down cleanly (a crash, or an immediate shutdown)");
		else if (was_recovering)
			start_cold(sh, "this server was a standby (or in recovery) when it stopped, and starts as a primary");
	}
	if (!started)
		write_marker();
	started = true;
	on_shmem_exit(save_queue, (Datum) 0);
}

void
RetryColdInit(void)
{
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = durable_startup;
}
