/* The C/GLSL contract of every kernel: push-constant blocks, binding indices and workgroup
 * constants, written once and read by both sides so that they cannot drift.
 *
 * A push block is an X-macro list of 4-byte scalar fields, F(type, name) with type u32, i32 or
 * f32, so that std430 push-constant layout and C layout agree. C gets a struct per block
 * (VKI_DECLARE_PUSH), checked against the 128 bytes every Vulkan device guarantees; a shader
 * declares its block with VKI_PUSH_BLOCK(list), readable as `pc.field`. GLSL includes this file
 * with VKI_GLSL defined (the build passes -DVKI_GLSL). */
#ifndef VKI_ABI_H
#define VKI_ABI_H

#ifdef VKI_GLSL
#define VKI_T_u32 uint
#define VKI_T_i32 int
#define VKI_T_f32 float
#define VKI_GLSL_FIELD(type, name) VKI_T_##type name;
#define VKI_PUSH_BLOCK(list) layout(push_constant) uniform PushBlock { list(VKI_GLSL_FIELD) } pc;
#define VKI_DECLARE_PUSH(name, list)
#else
#include <assert.h>
#include <stdint.h>
#define VKI_T_u32 uint32_t
#define VKI_T_i32 int32_t
#define VKI_T_f32 float
#define VKI_C_FIELD(type, name) VKI_T_##type name;
#define VKI_DECLARE_PUSH(name, list)                                                           \
    typedef struct name {                                                                      \
        list(VKI_C_FIELD)                                                                      \
    } name;                                                                                    \
    static_assert(sizeof(name) <= 128, #name " exceeds the 128-byte push-constant minimum");
/* Per-family kernel ABIs. */
#include "abi_elementwise.h"

#endif

/* Specialisation-constant ids shared by all kernels. */
#define VKI_SPEC_LOCAL_SIZE_X 0

/* ---- add_u32: data[i] += value for i < n -------------------------------------------------- */
#define VKI_ADD_U32_BINDING_DATA 0
#define VKI_ADD_U32_LOCAL_SIZE 64
#define VKI_PC_ADD_U32(F) F(u32, n) F(u32, value)
VKI_DECLARE_PUSH(vki_pc_add_u32, VKI_PC_ADD_U32)

/* ---- copy_u32: dst[i] = src[i] for i < n, in 16-byte elements ------------------------------ */
#define VKI_COPY_U32_BINDING_SRC 0
#define VKI_COPY_U32_BINDING_DST 1
#define VKI_COPY_U32_LOCAL_SIZE 64
#define VKI_PC_COPY_U32(F) F(u32, n)
VKI_DECLARE_PUSH(vki_pc_copy_u32, VKI_PC_COPY_U32)

/* Per-family kernel ABIs. */
#include "abi_elementwise.h"
#include "abi_attention.h"
#include "abi_norm.h"
#include "abi_unary.h"
#include "abi_matmul.h"
#include "abi_prelu.h"
#include "abi_moe.h"

#endif
