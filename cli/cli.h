/* cli — what the `rfarm` command's files share: the connection to the
 * coordinator and the exit statuses.
 *   rfarm.c     main, submit (a job or a batch), wait, pause/resume/cancel
 *   cli_show.c  status, watch, workers, logs: what people and scripts read
 */
#ifndef CLI_H
#define CLI_H

#include <stdio.h>

#include "rfarm.pb-c.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_TIMEOUT 3

typedef struct cli {
    const char *endpoint;
    void *zctx;
} cli;

/* One request, one reply within tmo_ms (the caller frees the reply with
 * rfarm__client_reply__free_unpacked). NULL with a message printed. */
Rfarm__ClientReply *cli_request(cli *c, const Rfarm__ClientRequest *req, int tmo_ms);
#define CLI_REPLY_TIMEOUT_MS 10000

/* Status of a job, a batch (its jobs and totals) or recent work (id NULL).
 * With `transient`, failures a retry may cure (no answer, Redis away) only
 * set *transient and print nothing. NULL otherwise with a message printed. */
Rfarm__ClientReply *cli_get_status(cli *c, const char *id, int *transient);

int cli_status(cli *c, int argc, char **argv);
int cli_watch(cli *c, int argc, char **argv);
int cli_workers(cli *c, int argc, char **argv);
int cli_logs(cli *c, int argc, char **argv);

#endif
