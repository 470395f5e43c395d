// The libpq functions cairn calls, forwarded to libpq.so.5 opened on first use.
#include "clibpq.h"
#include "cairn_lazy.h"

static cairn_lazy_lib pq = CAIRN_LAZY_LIB("libpq.so.5");

const char *clibpq_load(void) { return cairn_lazy_open(&pq); }

CAIRN_FORWARD(pq, PGconn *, PQconnectdbParams, (const char *const *k, const char *const *v, int expand), (k, v, expand))
CAIRN_FORWARD(pq, ConnStatusType, PQstatus, (const PGconn *c), (c))
CAIRN_FORWARD(pq, char *, PQerrorMessage, (const PGconn *c), (c))
CAIRN_FORWARD_VOID(pq, PQfinish, (PGconn *c), (c))
CAIRN_FORWARD(pq, int, PQserverVersion, (const PGconn *c), (c))
CAIRN_FORWARD(pq, PGresult *, PQexecParams,
              (PGconn *c, const char *cmd, int n, const Oid *types, const char *const *values, const int *lengths,
               const int *formats, int resultFormat),
              (c, cmd, n, types, values, lengths, formats, resultFormat))
CAIRN_FORWARD(pq, int, PQsendQuery, (PGconn *c, const char *q), (c, q))
CAIRN_FORWARD(pq, PGresult *, PQgetResult, (PGconn *c), (c))
CAIRN_FORWARD(pq, int, PQgetCopyData, (PGconn *c, char **buffer, int async), (c, buffer, async))
CAIRN_FORWARD_VOID(pq, PQclear, (PGresult *r), (r))
CAIRN_FORWARD(pq, ExecStatusType, PQresultStatus, (const PGresult *r), (r))
CAIRN_FORWARD(pq, char *, PQresultErrorMessage, (const PGresult *r), (r))
CAIRN_FORWARD(pq, int, PQntuples, (const PGresult *r), (r))
CAIRN_FORWARD(pq, int, PQnfields, (const PGresult *r), (r))
CAIRN_FORWARD(pq, int, PQgetisnull, (const PGresult *r, int row, int field), (r, row, field))
CAIRN_FORWARD(pq, char *, PQgetvalue, (const PGresult *r, int row, int field), (r, row, field))
CAIRN_FORWARD_VOID(pq, PQfreemem, (void *p), (p))
CAIRN_FORWARD(pq, PQconninfoOption *, PQconninfoParse, (const char *s, char **err), (s, err))
CAIRN_FORWARD_VOID(pq, PQconninfoFree, (PQconninfoOption *o), (o))
