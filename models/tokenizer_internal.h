/* Internal to the tokenizer (tokenizer.c: encoding and decoding; tokenizer_vocab.c: reading the
 * vocabulary from GGUF and the hash maps). Not for apps. */
#ifndef VKINFER_TOKENIZER_INTERNAL_H
#define VKINFER_TOKENIZER_INTERNAL_H

#include "vkinfer_models.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define VKI_TOK_MAX_REGEXES 4
#define VKI_TOK_MAX_END_IDS 16
#define VKI_TOK_SPECIAL_BUCKETS (65536u + 256u)

typedef enum vki_tok_kind { VKI_TOK_BPE = 1, VKI_TOK_SPM } vki_tok_kind;

typedef struct vki_tok_token {
    uint32_t off, len; // spelling in vki_tokenizer.text
    float score;
    uint8_t type;      // vki_token_type
} vki_tok_token;

/* Spelling -> id, open addressing; slots hold id + 1 (0: empty). */
typedef struct vki_tok_map {
    uint32_t *slots;
    uint32_t mask;
    const vki_tok_token *tokens;
    const char *text;
} vki_tok_map;

/* (left id, right id) -> merge rank and the merged token's id, open addressing. */
typedef struct vki_tok_pair {
    uint64_t key;      // left << 32 | right; UINT64_MAX: empty
    uint32_t rank;
    int32_t result;
} vki_tok_pair;

typedef struct vki_tok_pairs {
    vki_tok_pair *slots;
    uint64_t mask;
} vki_tok_pairs;

/* A growable scratch array, kept between calls. */
typedef struct vki_tok_buf {
    void *p;
    size_t cap; // elements
} vki_tok_buf;

struct vki_tokenizer {
    vki_allocator alloc;
    vki_tok_kind kind;
    uint32_t n_vocab;
    vki_tok_token *tokens;
    char *text;               // every spelling, back to back
    vki_tok_map by_text;      // a later duplicate spelling wins, as in llama.cpp
    vki_tok_pairs merges;     // BPE
    uint16_t byte_cp[256];    // GPT-2's byte alphabet: byte -> code point
    int16_t cp_byte[0x144];   // and back (-1: not in the alphabet)
    int32_t byte_id[256];     // BPE: token of byte b's character; SPM: <0xXX> (-1: none)
    int32_t bos, eos, unk;
    bool add_bos, add_space_prefix, ignore_merges;
    int32_t end_ids[VKI_TOK_MAX_END_IDS];
    uint32_t n_end;
    int32_t *specials;        // CONTROL, USER_DEFINED and UNKNOWN ids, longest spelling first
    uint32_t n_specials;
    uint32_t *special_head;   // [VKI_TOK_SPECIAL_BUCKETS] first of each bucket, by rank
    uint32_t *special_next;   // [n_specials] next rank in the same bucket (UINT32_MAX: end)
    uint8_t *special_seen;    // [n_specials] scratch of find_present, all 0 between calls
    pcre2_general_context *pcre_ctx;
    pcre2_code *regex[VKI_TOK_MAX_REGEXES];
    uint32_t n_regex;
    pcre2_match_data *match;
    vki_chat_template chat_template;
    char *default_system;
    vki_tok_buf frags, present, spans_a, spans_b, symbols, heap, chars;
    char last_error[256];
};

void *vki_tok_alloc(const vki_allocator *a, size_t count, size_t elem); // NULL on overflow too
void vki_tok_free(const vki_allocator *a, void *p);

/* -1 when absent. */
int32_t vki_tok_map_find(const vki_tok_map *m, const char *s, size_t len);
bool vki_tok_pairs_find(const vki_tok_pairs *p, int32_t left, int32_t right, uint32_t *out_rank,
                        int32_t *out_result);

/* The bucket of a special token spelled `s` (len >= 1): tokens of two bytes or more by their
 * first two bytes, one-byte tokens by that byte (65536 + b). */
static inline uint32_t vki_tok_bucket(const char *s, size_t len)
{
    return len >= 2 ? (uint32_t)(uint8_t)s[0] << 8 | (uint8_t)s[1] : 65536u + (uint8_t)s[0];
}

#endif
