#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_EXT_spirv_intrinsics : require
// Integer dot-product throughput (`vkinfer bench peak`): OpSDot on 4x8-bit packed operands
// (VK_KHR_shader_integer_dot_product, int_dot.glsl; the bench runs it only where the profile
// has int_dot).
// Each step's result is the next step's operand, so the chain cannot be hoisted; the host
// replays it exactly (wrapping 32-bit arithmetic).
#include "vki_abi.h"
#include "abi_peak.h"
#include "int_dot.glsl"

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
