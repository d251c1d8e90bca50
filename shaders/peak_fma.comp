#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#if FP16
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif
// Vector FMA throughput (`vkinfer bench peak`): long chains in registers, CHAINS of them per
// thread so that the FMA latency hides behind independent work, no memory traffic but one store
// per thread. a and b come from push constants, so no compiler can fold the chain. The start
// values are small integers and the bench uses a = +-1 and integer b: every step is exact,
// fused or not, so the host checks the sum exactly (abi_peak.h).
#include "vki_abi.h"
#include "abi_peak.h"

layout(local_size_x = VKI_PEAK_LOCAL_SIZE, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
layout(std430, set = 0, binding = 0) writeonly buffer Out { float outv[]; };

VKI_PUSH_BLOCK(VKI_PC_PEAK_FMA)

#if FP16
#define VEC f16vec4
#define SCALAR float16_t
#else
#define VEC vec4
#define SCALAR float
#endif

void main()
{
    const uint gid = gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    // init(gid, j) lane l = (gid % 16) + 4 j + l: at most 46, exact in fp16.
    const float base = float(gid % 16u);
    VEC x[VKI_PEAK_FMA_CHAINS];
    [[unroll]] for (uint j = 0u; j < VKI_PEAK_FMA_CHAINS; j++)
        x[j] = VEC(vec4(base + float(4u * j)) + vec4(0.0, 1.0, 2.0, 3.0));
    const VEC a = VEC(SCALAR(pc.a)), b = VEC(SCALAR(pc.b));
    for (uint i = 0u; i < pc.iters; i++) {
        [[unroll]] for (uint u = 0u; u < VKI_PEAK_FMA_UNROLL; u++) {
            [[unroll]] for (uint j = 0u; j < VKI_PEAK_FMA_CHAINS; j++)
                x[j] = fma(x[j], a, b);
        }
    }
    vec4 s = vec4(0.0);
    [[unroll]] for (uint j = 0u; j < VKI_PEAK_FMA_CHAINS; j++) s += vec4(x[j]);
    outv[gid] = s.x + s.y + s.z + s.w;
}
