/* An actor's channels from FLOWC_CHANNELS: a parser for exactly the JSON the flowc launcher writes, and the
 * attaching of the rings it names (flowc_ring.h, flowc_channels_*).
 *
 * The shape (json.dumps of NodeView.actor_io[actor]) is
 *   {"inputs": {"<channel>": {"ring": "<segment name>", "index": <n>}, ...}, "outputs": {...}}
 * with both directions optional. The text comes from the environment, so it is treated as hostile: every read is
 * bounded by its length, names and counts have limits, and anything else (unknown or repeated keys, other value
 * types, trailing bytes, bad escapes) fails with FLOWC_EBADENV and a detail naming the byte offset.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "include/flowc_ring.h"
#include "flowc_ring_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest FLOWC_CHANNELS accepted, longest channel or ring name (a file name), most channels per direction. */
#define MAX_TEXT (1u << 20)
#define MAX_NAME 255u
#define MAX_CHANNELS 4096u

typedef struct {
    char name[MAX_NAME + 1];
    char ring_name[MAX_NAME + 1];
    uint32_t index;
    flowc_ring *ring; /* owned by flowc_channels.rings */
    flowc_producer *producer;
    flowc_consumer *consumer;
} channel;

struct flowc_channels {
    channel *dir[2]; /* inputs, outputs; sorted by name */
    uint32_t count[2];
    flowc_ring **rings; /* each segment mapped once, however many channels use it */
    uint32_t nrings;
};

typedef struct {
    const char *s;
    size_t n, i;
} parser;

static int bad(const parser *p, const char *what) {
    return flowc_fail(FLOWC_EBADENV, "FLOWC_CHANNELS: %s at byte %zu", what, p->i);
}

static void skip_ws(parser *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

/* Skips whitespace and consumes `c` if it comes next. */
static int take(parser *p, char c) {
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == c) {
        p->i++;
        return 1;
    }
    return 0;
}

static int hex4(parser *p, uint32_t *out) {
    if (p->n - p->i < 4) return 0;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* Appends code point `cp` as UTF-8; 0 when it does not fit in `cap` (which keeps room for the terminator). */
static int put_utf8(char *out, size_t cap, size_t *len, uint32_t cp) {
    unsigned char b[4];
    size_t k;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        k = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 4;
    }
    if (*len + k >= cap) return 0;
    memcpy(out + *len, b, k);
    *len += k;
    return 1;
}

/* A JSON string into `out` (NUL-terminated, at most MAX_NAME bytes, never empty, no NUL inside). */
static int string(parser *p, char out[MAX_NAME + 1]) {
    size_t len = 0;
    if (!take(p, '"')) return bad(p, "expected a string");
    for (;;) {
        if (p->i >= p->n) return bad(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->i++];
        uint32_t cp = c;
        if (c == '"') break;
        if (c < 0x20) return bad(p, "control character in a string");
        if (c == '\\') {
            if (p->i >= p->n) return bad(p, "unterminated string");
            char e = p->s[p->i++];
            switch (e) {
            case '"': case '\\': case '/': cp = (uint32_t)e; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (!hex4(p, &cp)) return bad(p, "bad \\u escape");
                if (cp >= 0xDC00 && cp <= 0xDFFF) return bad(p, "lone low surrogate");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    uint32_t lo;
                    if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') return bad(p, "lone surrogate");
                    p->i += 2;
                    if (!hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) return bad(p, "bad surrogate pair");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                break;
            default: return bad(p, "bad escape");
            }
            if (cp == 0) return bad(p, "NUL in a name");
            if (!put_utf8(out, MAX_NAME + 1, &len, cp)) return bad(p, "name longer than 255 bytes");
            continue;
        }
        /* raw bytes (UTF-8 included) are copied as they are */
        if (len >= MAX_NAME) return bad(p, "name longer than 255 bytes");
        out[len++] = (char)c;
    }
    if (len == 0) return bad(p, "empty name");
    out[len] = 0;
    return FLOWC_OK;
}

/* A non-negative decimal below FLOWC_MAX_ENDS (no sign, fraction, exponent or leading zero). */
static int index_value(parser *p, uint32_t *out) {
    skip_ws(p);
    size_t start = p->i;
    uint32_t v = 0;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        v = v * 10u + (uint32_t)(p->s[p->i++] - '0');
        if (v >= FLOWC_MAX_ENDS) return bad(p, "index out of range");
    }
    if (p->i == start) return bad(p, "expected an index");
    if (p->i - start > 1 && p->s[start] == '0') return bad(p, "leading zero in an index");
    *out = v;
    return FLOWC_OK;
}

/* {"ring": "<name>", "index": <n>}, each key exactly once, in any order. */
static int entry(parser *p, channel *ch) {
    int have_ring = 0, have_index = 0, rc;
    char key[MAX_NAME + 1];
    if (!take(p, '{')) return bad(p, "expected '{'");
    do {
        if ((rc = string(p, key)) != FLOWC_OK) return rc;
        if (!take(p, ':')) return bad(p, "expected ':'");
        if (!strcmp(key, "ring") && !have_ring) {
            if ((rc = string(p, ch->ring_name)) != FLOWC_OK) return rc;
            have_ring = 1;
        } else if (!strcmp(key, "index") && !have_index) {
            if ((rc = index_value(p, &ch->index)) != FLOWC_OK) return rc;
            have_index = 1;
        } else {
            return bad(p, "unknown or repeated key in a channel entry");
        }
    } while (take(p, ','));
    if (!take(p, '}')) return bad(p, "expected ',' or '}'");
    if (!have_ring || !have_index) return bad(p, "channel entry without 'ring' or 'index'");
    return FLOWC_OK;
}

/* {"<channel>": <entry>, ...} into a freshly allocated array. */
static int direction(parser *p, channel **out, uint32_t *count) {
    uint32_t cap = 0;
    if (!take(p, '{')) return bad(p, "expected '{'");
    if (take(p, '}')) return FLOWC_OK;
    do {
        if (*count == MAX_CHANNELS) return bad(p, "too many channels");
        if (*count == cap) {
            cap = cap ? cap * 2 : 8;
            channel *grown = realloc(*out, cap * sizeof **out);
            if (grown == NULL) return flowc_fail(FLOWC_ENOMEM, "out of memory");
            *out = grown;
        }
        channel *ch = &(*out)[*count];
        memset(ch, 0, sizeof *ch);
        int rc = string(p, ch->name);
        if (rc != FLOWC_OK) return rc;
        if (!take(p, ':')) return bad(p, "expected ':'");
        if ((rc = entry(p, ch)) != FLOWC_OK) return rc;
        for (uint32_t k = 0; k < *count; k++)
            if (!strcmp((*out)[k].name, ch->name)) return bad(p, "repeated channel");
        (*count)++;
    } while (take(p, ','));
    if (!take(p, '}')) return bad(p, "expected ',' or '}'");
    return FLOWC_OK;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const channel *)a)->name, ((const channel *)b)->name);
}

static int document(parser *p, flowc_channels *ch) {
    int seen[2] = {0, 0};
    char key[MAX_NAME + 1];
    if (!take(p, '{')) return bad(p, "expected '{'");
    if (!take(p, '}')) {
        do {
            int rc = string(p, key);
            if (rc != FLOWC_OK) return rc;
            int d = !strcmp(key, "inputs") ? 0 : !strcmp(key, "outputs") ? 1 : -1;
            if (d < 0 || seen[d]) return bad(p, "expected the key 'inputs' or 'outputs' (once each)");
            seen[d] = 1;
            if (!take(p, ':')) return bad(p, "expected ':'");
            if ((rc = direction(p, &ch->dir[d], &ch->count[d])) != FLOWC_OK) return rc;
        } while (take(p, ','));
        if (!take(p, '}')) return bad(p, "expected ',' or '}'");
    }
    skip_ws(p);
    if (p->i != p->n) return bad(p, "trailing bytes");
    for (int d = 0; d < 2; d++)
        if (ch->count[d]) qsort(ch->dir[d], ch->count[d], sizeof(channel), by_name);
    return FLOWC_OK;
}

/* Records a failure of channel `c`, keeping the detail of the call that failed. */
static int channel_failed(const channel *c, int rc) {
    char why[200];
    snprintf(why, sizeof why, "%s", flowc_last_error());
    return flowc_fail(rc, "channel '%s': %s", c->name, why);
}

/* Maps each channel's ring (once per segment: an actor may read and write the same ring) and opens its endpoint. */
static int attach_all(flowc_channels *ch) {
    ch->rings = calloc((size_t)ch->count[0] + ch->count[1] + 1, sizeof *ch->rings);
    if (ch->rings == NULL) return flowc_fail(FLOWC_ENOMEM, "out of memory");
    for (int d = 0; d < 2; d++) {
        for (uint32_t k = 0; k < ch->count[d]; k++) {
            channel *c = &ch->dir[d][k];
            for (int d2 = 0; d2 < 2 && c->ring == NULL; d2++)
                for (uint32_t k2 = 0; k2 < ch->count[d2] && c->ring == NULL; k2++)
                    if (ch->dir[d2][k2].ring && !strcmp(ch->dir[d2][k2].ring_name, c->ring_name))
                        c->ring = ch->dir[d2][k2].ring;
            if (c->ring == NULL) {
                int rc = flowc_ring_attach(c->ring_name, &c->ring);
                if (rc != FLOWC_OK) return channel_failed(c, rc);
                ch->rings[ch->nrings++] = c->ring;
            }
            int rc = d == 0 ? flowc_consumer_open(c->ring, c->index, &c->consumer)
                            : flowc_producer_open(c->ring, c->index, &c->producer);
            if (rc != FLOWC_OK) return channel_failed(c, rc);
        }
    }
    return FLOWC_OK;
}

int flowc_channels_parse(const char *json, size_t len, flowc_channels **out) {
    if (out == NULL) return flowc_fail(FLOWC_EINVAL, "no output handle");
    *out = NULL;
    if (json == NULL) return flowc_fail(FLOWC_EBADENV, "FLOWC_CHANNELS is not set");
    if (len > MAX_TEXT) return flowc_fail(FLOWC_EBADENV, "FLOWC_CHANNELS is longer than %u bytes", MAX_TEXT);
    flowc_channels *ch = calloc(1, sizeof *ch);
    if (ch == NULL) return flowc_fail(FLOWC_ENOMEM, "out of memory");
    parser p = {json, len, 0};
    int rc = document(&p, ch);
    if (rc == FLOWC_OK) rc = attach_all(ch);
    if (rc != FLOWC_OK) {
        flowc_channels_free(ch);
        return rc;
    }
    *out = ch;
    return FLOWC_OK;
}

int flowc_channels_from_env(flowc_channels **out) {
    const char *text = getenv("FLOWC_CHANNELS");
    return flowc_channels_parse(text, text ? strnlen(text, MAX_TEXT + 1) : 0, out);
}

static const channel *find(const flowc_channels *ch, int d, const char *name) {
    if (ch == NULL || name == NULL) return NULL;
    for (uint32_t k = 0; k < ch->count[d]; k++)
        if (!strcmp(ch->dir[d][k].name, name)) return &ch->dir[d][k];
    return NULL;
}

int flowc_channels_input(const flowc_channels *ch, const char *channel_name, flowc_consumer **out) {
    const channel *c = find(ch, 0, channel_name);
    if (c == NULL || out == NULL) return flowc_fail(FLOWC_ENOENT, "no input channel '%s'", channel_name ? channel_name : "");
    *out = c->consumer;
    return FLOWC_OK;
}

int flowc_channels_output(const flowc_channels *ch, const char *channel_name, flowc_producer **out) {
    const channel *c = find(ch, 1, channel_name);
    if (c == NULL || out == NULL) return flowc_fail(FLOWC_ENOENT, "no output channel '%s'", channel_name ? channel_name : "");
    *out = c->producer;
    return FLOWC_OK;
}

uint32_t flowc_channels_count(const flowc_channels *ch, int outputs) { return ch ? ch->count[outputs != 0] : 0; }

const char *flowc_channels_name(const flowc_channels *ch, int outputs, uint32_t i) {
    if (ch == NULL || i >= ch->count[outputs != 0]) return NULL;
    return ch->dir[outputs != 0][i].name;
}

void flowc_channels_free(flowc_channels *ch) {
    if (ch == NULL) return;
    for (int d = 0; d < 2; d++) {
        for (uint32_t k = 0; k < ch->count[d]; k++) {
            flowc_consumer_close(ch->dir[d][k].consumer);
            flowc_producer_close(ch->dir[d][k].producer);
        }
        free(ch->dir[d]);
    }
    for (uint32_t r = 0; r < ch->nrings; r++) flowc_ring_close(ch->rings[r]);
    free(ch->rings);
    free(ch);
}
