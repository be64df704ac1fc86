/*-------------------------------------------------------------------------
 *
 * inbox.h
 *		Redis Streams consumed into PostgreSQL by the database's worker.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_INBOX_H
#define BMFREDIS_INBOX_H

/*
 * One pass over bmfredis.stream_consumers: each stream's pending, then new
 * entries, stored and acknowledged.  Outside a transaction; starts its
 * own.  Quiet about Redis faults (the next pass tries again).
 */
extern void InboxPass(void);

#endif							/* BMFREDIS_INBOX_H */
