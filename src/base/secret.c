/*-------------------------------------------------------------------------
 *
 * secret.c
 *		Secrets read from files at connect time (bmfredis.password_file),
 *		so that they are in no setting: ALTER SYSTEM ... SET of a password
 *		makes PostgreSQL itself log the new value on reload ("parameter
 *		... changed to ..."), and a setting is one SHOW away for its
 *		readers.  The file must be private to the server's user, as libpq
 *		requires of a .pgpass file.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/secret.h"

bool
BmfReadSecretFile(const char *path, char *buf, size_t size, char *reason,
				  size_t reason_size)
{
	struct stat st;
	int			fd;
	ssize_t		n;
	char	   *eol;

	/* symbolic links are followed (mounted secrets are links), the target checked */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		snprintf(reason, reason_size, "could not open \"%s\": %m", path);
		return false;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
	{
		snprintf(reason, reason_size, "\"%s\" is not a regular file", path);
		close(fd);
		return false;
	}
	if (st.st_uid != geteuid() || (st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
	{
		snprintf(reason, reason_size,
				 "\"%s\" must be owned by the database server's user and readable by it alone (chmod 600)",
				 path);
		close(fd);
		return false;
	}
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
	{
		snprintf(reason, reason_size, "could not read \"%s\": %m", path);
		return false;
	}
	buf[n] = '\0';
	eol = strpbrk(buf, "\r\n");
	if (eol)
		*eol = '\0';
	else if ((size_t) n == size - 1)
	{
		explicit_bzero(buf, size);
		snprintf(reason, reason_size, "the first line of \"%s\" is longer than %d bytes",
				 path, (int) size - 2);
		return false;
	}
	if (buf[0] == '\0')
	{
		snprintf(reason, reason_size, "the first line of \"%s\" is empty", path);
		return false;
	}
	return true;
}
