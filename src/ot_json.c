/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>

#include "ot_json.h"

static apr_status_t json_cleanup(void *data)
{
    json_decref((json_t *)data);
    return APR_SUCCESS;
}

json_t *ot_json_own(json_t *j, apr_pool_t *p)
{
    if (j != NULL) {
        apr_pool_cleanup_register(p, j, json_cleanup, apr_pool_cleanup_null);
    }
    return j;
}

json_t *ot_json_parse(const char *buf, apr_size_t len, const char **err, apr_pool_t *p)
{
    json_error_t jerr;
    json_t *j = json_loadb(buf, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);

    if (j == NULL && err != NULL) {
        /* jansson quotes the offending input ("... near 'xyz'"): keep claims out of the log. */
        char *near = strstr(jerr.text, " near ");
        if (near) {
            *near = '\0';
        }
        *err = apr_psprintf(p, "%s at line %d, column %d", jerr.text, jerr.line, jerr.column);
    }
    return ot_json_own(j, p);
}

const char *ot_json_string(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *ot_json_dump(const json_t *j, apr_size_t *len, apr_pool_t *p)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    const char *copy;

    if (s == NULL) {
        return NULL;
    }
    if (len) {
        *len = strlen(s);
    }
    copy = apr_pstrdup(p, s);
    free(s);
    return copy;
}

int ot_json_aud_has(const json_t *aud, const char *who)
{
    const json_t *v;
    size_t i;

    if (json_is_string(aud)) {
        return strcmp(json_string_value(aud), who) == 0;
    }
    json_array_foreach(aud, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), who) == 0) {
            return 1;
        }
    }
    return 0;
}
