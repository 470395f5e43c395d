#include "cairn_lazy.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *cairn_lazy_open(cairn_lazy_lib *lib) {
    pthread_mutex_lock(&lib->lock);
    if (!lib->tried) {
        lib->tried = 1;
        lib->handle = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
        if (!lib->handle) {
            const char *why = dlerror();
            snprintf(lib->error, sizeof lib->error, "%s", why ? why : lib->soname);
        }
    }
    void *handle = lib->handle;
    pthread_mutex_unlock(&lib->lock);
    return handle ? NULL : lib->error;
}

void *cairn_lazy_symbol(cairn_lazy_lib *lib, const char *name) {
    const char *why = cairn_lazy_open(lib);
    void *p = why ? NULL : dlsym(lib->handle, name);
    if (!p) {
        char line[768];
        int n = snprintf(line, sizeof line, "cairn: error: cannot use %s from %s: %s [internal]\n", name, lib->soname,
                         why ? why : "the symbol is missing");
        if (n > 0) { ssize_t ignored = write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1); (void)ignored; }
        _exit(70);
    }
    return p;
}

void *cairn_lazy_cached(cairn_lazy_lib *lib, void **slot, const char *name) {
    void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!f) {
        f = cairn_lazy_symbol(lib, name);
        __atomic_store_n(slot, f, __ATOMIC_RELEASE);
    }
    return f;
}
