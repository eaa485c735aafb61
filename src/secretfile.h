/*
 * secretfile: reading the small files that hold secrets (the AWS secret key,
 * the MQTT password) and the other small files credential sources read.
 *
 * The permission rule for secrets: a file that its group or others may read
 * is refused ("chmod 600 it"), because anyone who can read it can act as the
 * gateway. One exception: a file under $CREDENTIALS_DIRECTORY, where systemd
 * puts what LoadCredential= hands over. systemd guarantees that only the
 * service can read that directory, even when it gives the file mode 0440
 * plus an ACL; the path is resolved first, so a symbolic link out of the
 * directory does not count as inside it.
 *
 * Buffers that held secret bytes are wiped (OPENSSL_cleanse) before they are
 * released.
 */
#ifndef CMDGATE_SECRETFILE_H
#define CMDGATE_SECRETFILE_H

#include <stddef.h>

#include "err.h"
#include "sbuf.h"

/*
 * Read the secret in path into buf (len bytes, NUL-terminated): its first
 * line without the line ending and trailing blanks. Applies the permission
 * rule. CG_CONFIG when the file is readable by others or longer than buf;
 * CG_IO when it cannot be read. buf holds "" on failure. The caller wipes
 * buf with OPENSSL_cleanse once the secret has been used.
 */
enum cg_err secretfile_read(const char *path, char *buf, size_t len, char *err);

/*
 * The whole file (at most 1 MiB) appended to out. With private set, the
 * permission rule applies. The caller wipes out (sbuf_wipe) when it held a
 * secret.
 */
enum cg_err secretfile_slurp(const char *path, int private, struct sbuf *out, char *err);

/* Whether path lies inside $CREDENTIALS_DIRECTORY (after resolving links). */
int secretfile_in_credentials_dir(const char *path);

#endif
