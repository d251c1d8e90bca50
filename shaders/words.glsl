// F32 or F16 tensors bound as arrays of 32-bit words, the dtype a push-constant flag instead of
// a variant. Kernels that read several operands of independent dtypes (attention's q, k, v and
// mask; conv2d's x and w) stay one SPIR-V module each, and need no 16-bit storage: an F16
// element is half of a word, unpacked exactly with unpackHalf2x16. A binding starts at an
// aligned byte offset and its size is rounded up to 16 bytes, so the word holding the last
// half of a tensor is inside it.
//
// A load is one word read and selects, never a branch on the dtype: a branch per element puts
// each load in a basic block of its own, across which compilers do not hoist loads, and the
// loads then wait for each other (F16 K/V tiles staged 8x slower than F32 on an H200).
#ifndef VKI_WORDS_GLSL
#define VKI_WORDS_GLSL

// Word holding element `i` (a uint, in elements of the tensor's dtype: halves for F16).
#define VKI_WORD_INDEX(i, is_f16) ((i) >> ((is_f16) ? 1u : 0u))
// Element `i` from the word that holds it.
#define VKI_WORD_VALUE(word, i, is_f16) \
    ((is_f16) ? unpackHalf2x16((word) >> (((i) & 1u) << 4)).x : uintBitsToFloat(word))
// Element `i` of word array `buf`.
#define VKI_LOAD_WORD(buf, i, is_f16) VKI_WORD_VALUE(buf[VKI_WORD_INDEX(i, is_f16)], i, is_f16)

#endif
