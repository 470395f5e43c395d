#ifndef CAIRN_LAZY_H
#define CAIRN_LAZY_H

#include <pthread.h>

/// A shared library that is opened when it is first used, not when cairn starts: most runs of
/// `cairn wal-push` (PostgreSQL starts one per WAL file) need neither libcurl nor libpq, and loading them with
/// their dependencies cost about half of the process's CPU.
typedef struct cairn_lazy_lib {
    const char *soname;
    pthread_mutex_t lock;
    void *handle;
    int tried;
    char error[512];
} cairn_lazy_lib;

#define CAIRN_LAZY_LIB(name) { (name), PTHREAD_MUTEX_INITIALIZER, 0, 0, { 0 } }

/// Opens the library once. Returns NULL when it is loaded, otherwise why it could not be (dlerror's text).
const char *cairn_lazy_open(cairn_lazy_lib *lib);

/// The address of `name` in the library. Callers check `cairn_lazy_open` first; should the library or the
/// symbol still be missing, this prints one line naming both and ends the process with exit code 70.
void *cairn_lazy_symbol(cairn_lazy_lib *lib, const char *name);

/// `cairn_lazy_symbol`, remembered in `*slot` (a function's own static): looked up once, then one atomic load.
void *cairn_lazy_cached(cairn_lazy_lib *lib, void **slot, const char *name);

/// Defines `ret name params` to call the library's own `name`, looked up on first use. The definition is
/// hidden: it is cairn's own symbol, never exported to (and so never interposed on) the library itself.
#define CAIRN_FORWARD(lib, ret, name, params, args)                                  \
    __attribute__((visibility("hidden"))) ret name params {                          \
        static void *fn;                                                             \
        return ((ret (*) params)cairn_lazy_cached(&(lib), &fn, #name)) args;         \
    }

/// As CAIRN_FORWARD, for functions that return nothing.
#define CAIRN_FORWARD_VOID(lib, name, params, args)                                  \
    __attribute__((visibility("hidden"))) void name params {                         \
        static void *fn;                                                             \
        ((void (*) params)cairn_lazy_cached(&(lib), &fn, #name)) args;               \
    }

#endif
