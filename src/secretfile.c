/* secretfile: small files holding secrets, and the rule for who may read them. */
#include "secretfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SLURP_MAX (1024 * 1024)

int secretfile_in_credentials_dir(const char *path)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char rdir[PATH_MAX], rpath[PATH_MAX];
	if (!dir || !*dir || !realpath(dir, rdir) || !realpath(path, rpath))
		return 0;
	size_t n = strlen(rdir);
	return strncmp(rpath, rdir, n) == 0 && rpath[n] == '/';
}

enum cg_err secretfile_slurp(const char *path, int private, struct sbuf *out, char *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cg_fail(err, CG_IO, "cannot open %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return cg_fail(err, CG_IO, "cannot stat %s: %s", path, strerror(e));
	}
	if (private && (st.st_mode & 077) && !secretfile_in_credentials_dir(path)) {
		close(fd);
		return cg_fail(err, CG_CONFIG,
		               "%s is readable by group or others (mode %03o); chmod 600 it", path,
		               (unsigned)(st.st_mode & 0777));
	}
	char buf[4096];
	ssize_t n;
	enum cg_err rc = CG_OK;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (out->len + (size_t)n > SLURP_MAX) {
			rc = cg_fail(err, CG_CONFIG, "%s is larger than %d bytes", path, SLURP_MAX);
			break;
		}
		sbuf_append(out, buf, (size_t)n);
	}
	if (n < 0)
		rc = cg_fail(err, CG_IO, "cannot read %s: %s", path, strerror(errno));
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return rc;
}

enum cg_err secretfile_read(const char *path, char *buf, size_t len, char *err)
{
	struct sbuf b;
	sbuf_init(&b);
	if (len)
		buf[0] = '\0';
	enum cg_err rc = secretfile_slurp(path, 1, &b, err);
	if (rc == CG_OK) {
		size_t n = strcspn(b.data, "\r\n");
		while (n && (b.data[n - 1] == ' ' || b.data[n - 1] == '\t'))
			n--;
		if (n >= len) {
			rc = cg_fail(err, CG_CONFIG, "%s: the secret is longer than %zu bytes",
			             path, len ? len - 1 : 0);
		} else {
			memcpy(buf, b.data, n);
			buf[n] = '\0';
		}
	}
	sbuf_wipe(&b);
	return rc;
}
