/* A growable byte buffer with a hard maximum (every buffer that grows from
 * input has one). Big-endian integer helpers for wire protocols. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"

struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t max; /* 0: no growth past what is reserved explicitly */
};

#define BUF_INIT(maxbytes) { .data = NULL, .len = 0, .cap = 0, .max = (maxbytes) }

/* Make room for n more bytes; -EMSGSIZE past max, -ENOMEM. */
int buf_reserve(struct buf *b, size_t n) WUR;
int buf_append(struct buf *b, const void *p, size_t n) WUR;
int buf_put_u8(struct buf *b, uint8_t v) WUR;
int buf_put_u16(struct buf *b, uint16_t v) WUR;
int buf_put_u32(struct buf *b, uint32_t v) WUR;
/* Appends s and its terminating NUL. */
int buf_put_cstr(struct buf *b, const char *s) WUR;
/* Overwrite a big-endian u32 at offset (for length fields filled in last). */
void buf_set_u32(struct buf *b, size_t off, uint32_t v);
/* Drop the first n bytes. */
void buf_consume(struct buf *b, size_t n);
/* Forget the contents; keeps the allocation. */
static inline void buf_clear(struct buf *b) { b->len = 0; }
/* Free the allocation (wiping it first when wipe is set). */
void buf_release(struct buf *b, int wipe);

static inline uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static inline void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}
