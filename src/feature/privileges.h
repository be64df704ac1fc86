/*-------------------------------------------------------------------------
 *
 * privileges.h
 *		What a role may do beyond EXECUTE on a function: the channels it is
 *		confined to, and the change events of tables it may not read.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_PRIVILEGES_H
#define BMFREDIS_PRIVILEGES_H

#include "postgres.h"

typedef struct PrivListen PrivListen;

/* ERROR unless the current role may publish on channel (without prefix). */
extern void PrivCheckPublish(const char *channel, size_t len);

/* What the current role may receive, read once per redis_listen call. */
extern PrivListen *PrivListenStart(void);

/* Whether a message on channel (as Redis names it, prefix included) may be returned. */
extern bool PrivListenAllows(const PrivListen *pl, const char *channel, size_t len);

/* A hint naming redis_grant on "permission denied" for bmfredis' objects. */
extern void PrivInstallHook(void);

#endif							/* BMFREDIS_PRIVILEGES_H */
