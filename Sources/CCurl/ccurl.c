// The libcurl functions cairn calls, forwarded to libcurl.so.4 opened on first use.
#include "ccurl.h"
#include "cairn_lazy.h"

static cairn_lazy_lib curl = CAIRN_LAZY_LIB("libcurl.so.4");

const char *ccurl_load(void) { return cairn_lazy_open(&curl); }

CAIRN_FORWARD(curl, CURLcode, curl_global_init, (long flags), (flags))
CAIRN_FORWARD(curl, CURL *, curl_easy_init, (void), ())
CAIRN_FORWARD_VOID(curl, curl_easy_cleanup, (CURL *h), (h))
CAIRN_FORWARD_VOID(curl, curl_easy_reset, (CURL *h), (h))
CAIRN_FORWARD(curl, CURLcode, curl_easy_perform, (CURL *h), (h))
CAIRN_FORWARD(curl, const char *, curl_easy_strerror, (CURLcode rc), (rc))
CAIRN_FORWARD(curl, struct curl_slist *, curl_slist_append, (struct curl_slist *l, const char *s), (l, s))
CAIRN_FORWARD_VOID(curl, curl_slist_free_all, (struct curl_slist *l), (l))

typedef CURLcode (*variadic_fn)(CURL *, int, ...);

// curl_easy_setopt and curl_easy_getinfo are variadic: called through a pointer with each wrapper's typed argument.
static variadic_fn setopt(void) { static void *fn; return (variadic_fn)cairn_lazy_cached(&curl, &fn, "curl_easy_setopt"); }
static variadic_fn getinfo(void) { static void *fn; return (variadic_fn)cairn_lazy_cached(&curl, &fn, "curl_easy_getinfo"); }

CURLcode ccurl_setopt_long(CURL *h, CURLoption o, long v) { return setopt()(h, o, v); }
CURLcode ccurl_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return setopt()(h, o, v); }
CURLcode ccurl_setopt_str(CURL *h, CURLoption o, const char *v) { return setopt()(h, o, v); }
CURLcode ccurl_setopt_ptr(CURL *h, CURLoption o, void *v) { return setopt()(h, o, v); }
CURLcode ccurl_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return setopt()(h, o, v); }
CURLcode ccurl_setopt_readfn(CURL *h, curl_read_callback f) { return setopt()(h, CURLOPT_READFUNCTION, f); }
CURLcode ccurl_setopt_writefn(CURL *h, curl_write_callback f) { return setopt()(h, CURLOPT_WRITEFUNCTION, f); }
CURLcode ccurl_setopt_headerfn(CURL *h, curl_write_callback f) { return setopt()(h, CURLOPT_HEADERFUNCTION, f); }
CURLcode ccurl_setopt_xferinfofn(CURL *h, curl_xferinfo_callback f) { return setopt()(h, CURLOPT_XFERINFOFUNCTION, f); }
CURLcode ccurl_getinfo_long(CURL *h, CURLINFO i, long *v) { return getinfo()(h, i, v); }
CURLcode ccurl_getinfo_off(CURL *h, CURLINFO i, curl_off_t *v) { return getinfo()(h, i, v); }
