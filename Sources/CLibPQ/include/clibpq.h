#ifndef CAIRN_CLIBPQ_H
#define CAIRN_CLIBPQ_H

// libpq, opened on first use (see cairn_lazy.h).
#include <postgresql/libpq-fe.h>

/// Opens libpq; NULL when it is loaded, otherwise why it could not be.
const char *clibpq_load(void);

#endif
