#ifndef CAIRN_CCURL_H
#define CAIRN_CCURL_H

// libcurl, opened on first use (see cairn_lazy.h). Swift cannot call C variadic functions, so
// curl_easy_setopt/getinfo get one typed wrapper per argument type.
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

/// Opens libcurl; NULL when it is loaded, otherwise why it could not be.
const char *ccurl_load(void);

CURLcode ccurl_setopt_long(CURL *h, CURLoption o, long v);
CURLcode ccurl_setopt_off(CURL *h, CURLoption o, curl_off_t v);
CURLcode ccurl_setopt_str(CURL *h, CURLoption o, const char *v);
CURLcode ccurl_setopt_ptr(CURL *h, CURLoption o, void *v);
CURLcode ccurl_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v);
CURLcode ccurl_setopt_readfn(CURL *h, curl_read_callback f);
CURLcode ccurl_setopt_writefn(CURL *h, curl_write_callback f);
CURLcode ccurl_setopt_headerfn(CURL *h, curl_write_callback f);
CURLcode ccurl_setopt_xferinfofn(CURL *h, curl_xferinfo_callback f);
CURLcode ccurl_getinfo_long(CURL *h, CURLINFO i, long *v);
CURLcode ccurl_getinfo_off(CURL *h, CURLINFO i, curl_off_t *v);

#endif
