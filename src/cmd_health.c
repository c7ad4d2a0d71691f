/* cmd_health.c — `eltd health [--url URL]`: GET URL/health of a running instance and exit 0
 * when it answers 200, 1 otherwise; for container health checks in images without curl.
 * A short-lived process of its own, so the blocking libcurl easy API is right here. The
 * default URL comes from http.listen in the config (0.0.0.0 and :: mean this host). */
#include "cli.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEALTH_TIMEOUT_MS 5000L
#define HEALTH_BODY_MAX   4096

typedef struct body {
    char buf[HEALTH_BODY_MAX];
    size_t len;
} body_t;

static size_t on_data(char *ptr, size_t size, size_t n, void *ud)
{
    body_t *b = ud;
    size_t len = size * n, room = sizeof b->buf - 1 - b->len;
    memcpy(b->buf + b->len, ptr, len < room ? len : room);
    b->len += len < room ? len : room;
    b->buf[b->len] = '\0';
    return len;
}

/* http://HOST:PORT from http.listen, or false when it names no fixed port. */
static bool url_from_config(const char *file, char *url, size_t len)
{
    config_t cfg;
    char err[1024];
    if (!config_load(&cfg, file, err, sizeof err)) {
        fprintf(stderr, "eltd: %s\n", err);
        return false;
    }
    const char *listen = cfg.http.listen;
    const char *colon = strrchr(listen, ':');
    char host[256];
    snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - listen) : 0, listen);
    const char *port = colon ? colon + 1 : "";
    if (!strcmp(host, "") || !strcmp(host, "0.0.0.0") || !strcmp(host, "localhost"))
        snprintf(host, sizeof host, "127.0.0.1");
    else if (!strcmp(host, "[::]"))
        snprintf(host, sizeof host, "[::1]");
    bool ok = atoi(port) > 0;
    if (ok)
        snprintf(url, len, "http://%s:%s", host, port);
    else
        fprintf(stderr, "eltd: http.listen '%s' names no fixed port: use --url\n", listen);
    config_free(&cfg);
    return ok;
}

int cmd_health(const cli_t *c, config_t *unused)
{
    (void)unused;
    char base[1024], url[1100];
    if (c->url)
        snprintf(base, sizeof base, "%s", c->url);
    else if (!url_from_config(c->config, base, sizeof base))
        return EXIT_RUN_FAILED;
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        base[--n] = '\0';
    if (n >= 7 && !strcmp(base + n - 7, "/health"))
        snprintf(url, sizeof url, "%s", base);
    else
        snprintf(url, sizeof url, "%s/health", base);

    CURL *h = curl_easy_init();
    if (!h) {
        fprintf(stderr, "eltd: cannot initialise libcurl\n");
        return EXIT_RUN_FAILED;
    }
    body_t body = {.len = 0};
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, HEALTH_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, HEALTH_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        fprintf(stderr, "eltd: health: %s: %s\n", url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return EXIT_RUN_FAILED;
    }
    if (status != 200) {
        fprintf(stderr, "eltd: health: %s answered %ld: %s\n", url, status, body.buf);
        return EXIT_RUN_FAILED;
    }
    printf("%s\n", body.buf);
    return EXIT_OK;
}
