#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_EXT_spirv_intrinsics : require
// Integer dot-product throughput (`vkinfer bench peak`): OpSDot on 4x8-bit packed operands
// (VK_KHR_shader_integer_dot_product; the bench runs it only where the profile has int_dot).
// glslang 12 has no GL_EXT_integer_dot_product, so the instruction is declared through
// GL_EXT_spirv_intrinsics: OpSDot = 4450, capabilities DotProduct (6019) and
// DotProductInput4x8BitPacked (6018), packed-vector-format literal 0 = 4x8Bit.
// Each step's result is the next step's operand, so the chain cannot be hoisted; the host
// replays it exactly (wrapping 32-bit arithmetic).
#include "vki_abi.h"
#include "abi_peak.h"

spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018],
                  id = 4450)
int sdot4x8(int a, int b, spirv_literal int packed_format);

layout(local_size_x = VKI_PEAK_LOCAL_SIZE, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
layout(std430, set = 0, binding = 0) writeonly buffer Out { int outv[]; };

VKI_PUSH_BLOCK(VKI_PC_PEAK_DOT)

void main()
{
    const uint gid = gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    int x[VKI_PEAK_DOT_CHAINS];
    // init(gid, j) = (gid * 2654435761 + j * 40503) as int: every byte differs between chains.
    [[unroll]] for (uint j = 0u; j < VKI_PEAK_DOT_CHAINS; j++)
        x[j] = int(gid * 2654435761u + j * 40503u);
    for (uint i = 0u; i < pc.iters; i++) {
        [[unroll]] for (uint u = 0u; u < VKI_PEAK_DOT_UNROLL; u++) {
            [[unroll]] for (uint j = 0u; j < VKI_PEAK_DOT_CHAINS; j++)
                x[j] = sdot4x8(x[j], pc.w, 0) + pc.c;
        }
    }
    int s = 0;
    [[unroll]] for (uint j = 0u; j < VKI_PEAK_DOT_CHAINS; j++) s += x[j];
    outv[gid] = s;
}
