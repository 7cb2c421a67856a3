/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file mod_offtok_status_html.h
 * @brief The counters as an HTML page (offtok-status?format=html); the server-status section,
 *        mod_status's status_hook, is registered from mod_offtok.c (declared in mod_offtok.h).
 */
#ifndef MOD_OFFTOK_STATUS_HTML_H
#define MOD_OFFTOK_STATUS_HTML_H

#include <httpd.h>

#include "mod_offtok_counters.h"

/** The HTML page of offtok-status?format=html. */
int offtok_status_html(request_rec *r, const offtok_status_t *st);

#endif
