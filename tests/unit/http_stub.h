/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file http_stub.h
 * @brief A stub HTTP server inside the test process, for the tests of ot_http.c: a thread
 *        accepting on 127.0.0.1 (a port of the kernel's choice) and one thread per connection,
 *        answering as its mode says and counting accepted connections and requests.
 */
#ifndef HTTP_STUB_H
#define HTTP_STUB_H

#include <pthread.h>

/** How the stub answers every request. */
typedef enum {
    STUB_OK,           /* 200 with STUB_BODY (JSON), connection kept */
    STUB_REDIRECT,     /* 302 with a Location */
    STUB_500,          /* 500 with a body, connection kept */
    STUB_HUGE,         /* 200 announcing and sending 4 MB */
    STUB_HUGE_CHUNKED, /* 200, 4 MB in chunks, no length announced */
    STUB_HANG,         /* read the request, never answer */
    STUB_CLOSE,        /* 200, then close the connection without announcing it */
    STUB_CUT_REUSED,   /* first request on a connection: 200; later ones: half an answer, close */
    STUB_CUT           /* every answer cut in half, then close */
} http_stub_mode_t;

/** The body of a STUB_OK answer (15 bytes, application/json). */
#define STUB_BODY "{\"active\":true}"

/** One stub server. The counters are read and written with __atomic builtins. */
typedef struct {
    int fd;
    int port;          /* where it listens on 127.0.0.1 */
    int mode;          /* an http_stub_mode_t */
    int stop;
    int accepted;      /* connections accepted */
    int requests;      /* requests read */
    int active;        /* connection threads alive */
    pthread_t acceptor;
    char last[4096];   /* the last request received, headers and body */
    pthread_mutex_t last_lock;
} http_stub_t;

/** Listen and start accepting, in STUB_OK mode (fails the test if it cannot). */
void http_stub_start(http_stub_t *st);

/** Stop accepting and wait (up to 2 s) for the connection threads; once only, so callable twice. */
void http_stub_stop(http_stub_t *st);

/** Stop it (if not yet) and release what it holds: a test fixture's teardown. */
void http_stub_destroy(http_stub_t *st);

/** Answer every request from now on as mode says. */
void http_stub_mode(http_stub_t *st, http_stub_mode_t mode);

/** Connections accepted, and requests read, so far. */
int http_stub_accepted(http_stub_t *st);
int http_stub_requests(http_stub_t *st);

#endif
