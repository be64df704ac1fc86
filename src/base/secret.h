/*-------------------------------------------------------------------------
 *
 * secret.h
 *		Reading a secret from a file private to the server's user.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_SECRET_H
#define BMFREDIS_SECRET_H

#include "postgres.h"

/*
 * Read the first line of path into buf (without its line end).  False,
 * with why in reason, when the file cannot be read, is not a regular file
 * owned by the server's user, can be read or written by its group or
 * others, or holds an empty first line.  Never puts the secret in reason.
 */
extern bool BmfReadSecretFile(const char *path, char *buf, size_t size,
							  char *reason, size_t reason_size);

#endif							/* BMFREDIS_SECRET_H */
