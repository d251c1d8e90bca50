/* Internal to the CLIP tokenizer (clip_tokenizer.c: the vocabulary, BPE and A1111 prompts;
 * clip_text.c: CLIP's text clean-up). Not for apps. */
#ifndef VKINFER_CLIP_TOKENIZER_INTERNAL_H
#define VKINFER_CLIP_TOKENIZER_INTERNAL_H

#include "vkinfer_models.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A growable array, kept for the length of one call (the tokenizer is const while encoding, so
 * several threads may share it). */
typedef struct vki_clip_vec {
    void *p;
    size_t n, cap; // elements
} vki_clip_vec;

/* One call's allocator; `oom` latches the first failed allocation, after which puts do nothing
 * and the call returns VKI_ERROR_OUT_OF_HOST_MEMORY. */
typedef struct vki_clip_work {
    const vki_allocator *a;
    bool oom;
} vki_clip_work;

static inline void *clip_alloc(const vki_allocator *a, size_t count,
                               size_t elem) // NULL on overflow
{
    if (elem && count > SIZE_MAX / elem) return NULL;
    size_t bytes = count * elem;
    return a->alloc(a->user, bytes ? bytes : 1);
}

static inline void clip_free(const vki_allocator *a, void *p)
{
    if (p) a->free(a->user, p);
}

/* Makes room for `need` elements, keeping the contents. */
static inline bool clip_reserve(vki_clip_work *w, vki_clip_vec *v, size_t need, size_t elem)
{
    if (w->oom) return false;
    if (need <= v->cap) return true;
    size_t cap = v->cap ? v->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 4 ? need : cap * 2;
    void *p = clip_alloc(w->a, cap, elem);
    if (!p) {
        w->oom = true;
        return false;
    }
    if (v->n) memcpy(p, v->p, v->n * elem);
    clip_free(w->a, v->p);
    v->p = p;
    v->cap = cap;
    return true;
}

static inline void clip_vec_free(vki_clip_work *w, vki_clip_vec *v)
{
    clip_free(w->a, v->p);
    *v = (vki_clip_vec){0};
}

static inline void clip_put_cp(vki_clip_work *w, vki_clip_vec *v, uint32_t c)
{
    if (clip_reserve(w, v, v->n + 1, sizeof(uint32_t))) ((uint32_t *)v->p)[v->n++] = c;
}

static inline void clip_put_byte(vki_clip_work *w, vki_clip_vec *v, uint8_t b)
{
    if (clip_reserve(w, v, v->n + 1, 1)) ((uint8_t *)v->p)[v->n++] = b;
}

static inline void clip_put_id(vki_clip_work *w, vki_clip_vec *v, int32_t id)
{
    if (clip_reserve(w, v, v->n + 1, sizeof(int32_t))) ((int32_t *)v->p)[v->n++] = id;
}

/* Decodes the code point at s[*i] (n bytes in all) and steps past it; a maximal invalid
 * subsequence (Unicode's "best practice", Python's errors="replace") gives one U+FFFD. */
uint32_t vki_clip_utf8_next(const uint8_t *s, size_t n, size_t *i);
void vki_clip_put_utf8(vki_clip_work *w, vki_clip_vec *out, uint32_t c);

/* Python's str.isspace. */
bool vki_clip_is_space(uint32_t c);

/* CLIP's clean-up, text[0, len) -> *out (bytes): UTF-8 decoding, ftfy's fixes, html.unescape
 * twice, whitespace and lower case; what the pre-tokenizer reads. Valid UTF-8 by construction. */
void vki_clip_clean_text(vki_clip_work *w, const char *text, size_t len, vki_clip_vec *out);

#endif
