// F32 or F16 tensors bound as arrays of 32-bit words, the dtype a push-constant flag instead of
// a variant. Kernels that read several operands of independent dtypes (attention's q, k, v and
// mask; conv2d's x and w) stay one SPIR-V module each, and need no 16-bit storage: an F16
// element is half of a word, unpacked exactly with unpackHalf2x16. A binding starts at an
// aligned byte offset and its size is rounded up to 16 bytes, so the word holding the last
// half of a tensor is inside it.
#ifndef VKI_WORDS_GLSL
#define VKI_WORDS_GLSL

// Element `i` (a uint variable, in elements of the tensor's dtype) of word array `buf`.
#define VKI_LOAD_WORD(buf, i, is_f16) \
    ((is_f16) ? unpackHalf2x16(buf[(i) >> 1] >> (((i) & 1u) << 4)).x : uintBitsToFloat(buf[i]))

#endif
